"""The help text the client prints for `fanampiana`, `\\h` or `?`.

Students read this at the prompt: it is a short bilingual (Malagasy /
English) tour of the language with one working example per statement.
`topic_help(word)` gives the lines about one keyword (`fanampiana alaivo`),
also asked in English (`fanampiana select`: engine/language/english.py).
Accounts have a topic of their own (`fanampiana mpampiasa`, also asked as
`fanampiana .login` or `fanampiana accounts`): logging in, the account
statements and the rights (docs/LANGUAGE.md, "Accounts and rights").
"""

from __future__ import annotations

from engine.language.english import SQL_TYPES, english_keyword, topic_of, written_otherwise

GENERAL = """\
Tahiry — fanampiana / help

Baiko ao amin'ny mpanjifa / client commands  (\\? lists them all)
  fanampiana, \\h, ?        ity fanampiana ity / this help
  fanampiana alaivo        fanampiana momba ny teny iray / help on one keyword
  \\d naoty                 tsanganana sy efitra / columns and domains of naoty
  \\x, \\timing, \\o FILE     mivelatra, fotoana, rakitra / expanded, timing, output
  \\i FILE                  hanatanteraka rakitra / run the statements of FILE (as -f)
  miala, \\q, Ctrl-D        hiala / quit
  Ctrl-C                   hanafoana ny baiko an-tsoratra / cancel the input

Ny baiko rehetra dia mifarana amin'ny ';' — every statement ends with ';'
(a statement may span several lines; the prompt waits for the ';').

Tahiry / databases
  manamboara tahiry sekoly;                 create database
  ampiasao sekoly;                          use it (shown in the prompt)
  asehoy ny tahiry;                         list databases (also: tabilao, efitra, jery)
  asehoy ny tsanganana ao@ mpianatra;       a table's columns, domains (\\d mpianatra)
  ravao ny tahiry sekoly;                   drop database

Tabilao sy efitra / tables and domains
  manamboara efitra kilasy ( TANISA("L3","M1") );
  manamboara tabilao mpianatra ( id LAHATSORATRA(2,5), anarana LAHATSORATRA(null,null),
                                 taona ISA(16,null), kilasy kilasy, teraka DATY );
  ravao ny tabilao mpianatra;
  Karazana / types: ISA(min,max) number · LAHATSORATRA(min,max) text length ·
                    DATY 'YYYY-MM-DD' · TANISA(v1,v2,...) one of · A:B either

Fanovana / changing data
  manampia ao@ mpianatra (id, anarana) sanda ("E1","Alice"), ("E2","Bob");   insert
  manampia ao@ naoty alaivo * ao@ naoty_taloha;                             insert a query
  havaozy naoty ova naoty = naoty + 1 rehefa taranja = "BD";                update ... set ... where
  fafao ao@ naoty rehefa naoty dia null;                                    delete ... where

Fakana / queries  (alaivo = select, ao@ = from, rehefa = where)
  alaivo * ao@ mpianatra;
  alaivo anarana antso n ao@ mpianatra rehefa taona >= 18 ary kilasy = "L3";
  alaivo anarana, count(*), avg(naoty) ao@ mpianatra #tonona:natoraly@ naoty
         #vondrona (anarana) alaharo anarana midina fetra 10;
  alaivo * ao@ a #tonona:avia@ b #ka a.id = b.id;     joins: (anatiny) avia avanana feno natoraly
  alaivo id ao@ a ankambana alaivo id ao@ b;           union  (also + ; analana/- except ; \
atifitra/^ intersect)
  alaivo 1 + 1;                                        no table needed
  manamboara jery tsara @ alaivo * ao@ naoty rehefa naoty >= 15;   view

Mpampiasa / accounts  (fanampiana mpampiasa)
  .login rabe "...";   or ./tahiry client --user rabe   log in first, on a cluster with accounts
  omeo rabe zo mamaky ao@ sekoly;           grant read (manoratra: write); esory: revoke

Teny / words
  ary and · na or · ! not · dia null is null · dia tsy null is not null
  antso as · tonona join · ka on · vondrona group by · alaharo order by
  miakatra asc · midina desc · fetra N limit · fetra A B rows A..B-1
  count sum avg min max · comments: -- ... or // ...
  '#' may precede a clause keyword (#rehefa, #tonona) and '@' may follow ao,
  joins and set operators: both are optional.
"""

# One entry per keyword a student may ask about: (meaning, example).
TOPICS: dict[str, tuple[str, str]] = {
    "alaivo": ("SELECT: fakana angona / query rows",
               "alaivo anarana, taona ao@ mpianatra rehefa taona > 18 alaharo taona midina;"),
    "ao": ("FROM / INTO: ny loharano / the source (written ao@)",
           "alaivo * ao@ mpianatra;"),
    "rehefa": ("WHERE: sivana / filter rows",
               "alaivo * ao@ naoty rehefa naoty >= 10 ary taranja = 'BD';"),
    "tonona": ("JOIN: (anatiny) inner, avia left, avanana right, feno full, natoraly natural",
               "alaivo * ao@ mpianatra m #tonona:avia@ naoty n #ka m.id = n.id;"),
    "vondrona": ("GROUP BY: vondrona (col, ...)",
                 "alaivo taranja, avg(naoty) ao@ naoty #vondrona (taranja);"),
    "alaharo": ("ORDER BY: miakatra ascending, midina descending",
                "alaivo * ao@ naoty alaharo naoty midina, id;"),
    "fetra": ("LIMIT: fetra N (first N rows), fetra A B (rows A..B-1)",
              "alaivo * ao@ naoty fetra 5;"),
    "antso": ("AS: anarana hafa / alias", "alaivo count(*) antso isa ao@ naoty;"),
    "ankambana": ("UNION (also +): distinct rows of both",
                  "alaivo id ao@ a ankambana alaivo id ao@ b;"),
    "analana": ("EXCEPT (also -): rows of the left not in the right",
                "alaivo id ao@ a analana alaivo id ao@ b;"),
    "atifitra": ("INTERSECT (also ^): rows in both", "alaivo id ao@ a atifitra alaivo id ao@ b;"),
    "manampia": ("INSERT", "manampia ao@ naoty (id, taranja, naoty) sanda ('E1', 'BD', 12);"),
    "havaozy": ("UPDATE ... ova (SET) ... rehefa (WHERE)",
                "havaozy naoty ova naoty = naoty + 1 rehefa taranja = 'BD';"),
    "fafao": ("DELETE", "fafao ao@ naoty rehefa naoty < 5;"),
    "manamboara": ("CREATE: tahiry (database), tabilao (table), efitra (domain), jery (view)",
                   "manamboara tabilao naoty ( id LAHATSORATRA(2,5), naoty ISA(0,20) );"),
    "ravao": ("DROP: ravao ny tahiry|tabilao|efitra|jery NAME", "ravao ny tabilao naoty;"),
    "asehoy": ("SHOW: asehoy ny tahiry|tabilao|efitra|jery; columns (describe): "
               "asehoy ny tsanganana [ao@ T] (\\d T)", "asehoy ny tsanganana ao@ naoty;"),
    "ampiasao": ("USE a database", "ampiasao sekoly;"),
    "efitra": ("DOMAIN: a named type to reuse in tables",
               "manamboara efitra kilasy ( TANISA('L3','M1','L2') );"),
    "jery": ("VIEW: a stored query", "manamboara jery tsara @ alaivo * ao@ naoty rehefa naoty >= 15;"),
    "dia": ("IS [NOT] NULL: dia null, dia tsy null", "alaivo * ao@ naoty rehefa naoty dia tsy null;"),
    "ka": ("ON: the condition of a join (tonona ... ka)",
           "alaivo * ao@ mpianatra m #tonona naoty n #ka m.id = n.id;"),
    "sanda": ("VALUES: the rows manampia adds, one ( ... ) each",
              "manampia ao@ naoty sanda ('E1', 'BD', 12), ('E2', 'BD', 15);"),
    "ova": ("SET: havaozy T ova col = expr, col = expr [rehefa ...]",
            "havaozy naoty ova naoty = naoty + 1, taranja = 'Algo' rehefa id = 'E1';"),
    "ary": ("AND: both conditions (ary binds tighter than na)",
            "alaivo * ao@ naoty rehefa naoty >= 10 ary taranja = 'BD';"),
    "na": ("OR: either condition", "alaivo * ao@ naoty rehefa naoty < 5 na naoty > 15;"),
    "!": ("NOT: !(condition); 'tsy' only in 'dia tsy null'",
          "alaivo * ao@ naoty rehefa !(taranja = 'BD');"),
    "null": ("NULL: no value; test it with dia null / dia tsy null ('= null' is never true)",
             "alaivo * ao@ naoty rehefa naoty dia null;"),
    "ny": ("the word after asehoy and ravao: asehoy ny tabilao; ravao ny tabilao T",
           "asehoy ny tabilao;"),
    "tahiry": ("DATABASE: manamboara tahiry, ampiasao, asehoy ny tahiry, ravao ny tahiry",
               "manamboara tahiry sekoly;"),
    "tabilao": ("TABLE: manamboara tabilao T ( col DOMAIN, ... ); asehoy ny tabilao",
                "manamboara tabilao naoty ( id LAHATSORATRA(2,5), naoty ISA(0,20) );"),
    "isa": ("ISA(min,max): numbers from min to max (null: no bound)",
            "manamboara tabilao t ( naoty ISA(0,20), vola ISA(null,null) );"),
    "lahatsoratra": ("LAHATSORATRA(min,max): texts of min to max characters (null: no bound)",
                     "manamboara tabilao t ( anarana LAHATSORATRA(1,50) );"),
    "daty": ("DATY: dates written 'YYYY-MM-DD', compared as dates",
             "manamboara tabilao t ( teraka DATY );"),
    "tanisa": ("TANISA(v1, v2, ...): exactly one of the values ('1' is not 1)",
               "manamboara tabilao t ( kilasy TANISA('L3','M1','L2') );"),
    "count": ("AGGREGATES: count(*), count(x), sum, avg, min, max; NULLs are skipped; "
              "per vondrona group, or one row for all",
              "alaivo taranja, count(*), avg(naoty), max(naoty) ao@ naoty vondrona taranja;"),
    "mpampiasa": (
        "ACCOUNTS: mpampiasa sy zo / accounts and rights (a cluster with accounts)\n"
        "  midira aloha / log in first:  .login NAME \"PW\";  (or: ./tahiry client --user NAME,\n"
        "    the password from TAHIRY_PASSWORD or asked; never an option)\n"
        "  manamboara mpampiasa NAME tenimiafina \"PW\" [mpitantana];   create (administrator)\n"
        "  ovay ny tenimiafina NAME \"PW\";    change a password (your own; any: administrator)\n"
        "  ravao ny mpampiasa NAME;          drop an account (administrator)\n"
        "  asehoy ny mpampiasa;              list accounts (yours; all: administrator)\n"
        "  .stop NAME;                       stop what NAME runs now on this server (administrator;\n"
        "    on every server: ./tahiry accounts stop NAME)\n"
        "  omeo|esory NAME zo mamaky|manoratra ao@ DB;   give / take away read or write\n"
        "  zo / rights: a database is its creator's (tompony, owner); the owner and the\n"
        "    administrators (mpitantana) do anything in it, others only what they are given\n"
        "    (mamaky: read; manoratra: write, implies read). Passwords: 8 to 1024 characters.",
        'manamboara mpampiasa rabe tenimiafina "Rabe-pass-2024";'),
    "omeo": ("GRANT: omeo NAME zo mamaky (read) | manoratra (write, implies read) ao@ DB;\n"
             "  by the database's owner or an administrator (fanampiana mpampiasa)",
             "omeo rabe zo mamaky ao@ sekoly;"),
    "esory": ("REVOKE: esory NAME zo manoratra (write goes, read stays) | mamaky (all goes) ao@ DB",
              "esory rabe zo manoratra ao@ sekoly;"),
    "ovay": ("change a password: ovay ny tenimiafina NAME \"PW\" (your own; any: administrator)",
             'ovay ny tenimiafina rabe "Vaovao-tsara-1";'),
}
# Other words asked about, and the topic that answers them.
SEE_TOPIC = {".login": "mpampiasa", "login": "mpampiasa", "accounts": "mpampiasa",
             "account": "mpampiasa", "user": "mpampiasa", "users": "mpampiasa",
             "rights": "mpampiasa", "zo": "mpampiasa", "tenimiafina": "ovay",
             "password": "ovay",
             "miakatra": "alaharo", "midina": "alaharo", "tsy": "dia",
             "anatiny": "tonona", "avia": "tonona", "ankavia": "tonona", "avanana": "tonona",
             "ankavanana": "tonona", "feno": "tonona", "natoraly": "tonona",
             "sum": "count", "avg": "count", "min": "count", "max": "count"}


def topic_help(word: str) -> str | None:
    """The help lines for one keyword, or None if it is not a topic.

    An English SQL keyword (`fanampiana select`) answers with the Malagasy
    word it is written with, then that word's help; one Tahiry has no word
    for (`fanampiana distinct`), with how a query does the same.
    """
    key = word.strip().lstrip("#").rstrip("@;").lower()
    key = SEE_TOPIC.get(key, key)
    topic = TOPICS.get(key)
    if topic is not None:
        meaning, example = topic
        return f"{key}: {meaning}\n  ohatra / example: {example}"
    instead = written_otherwise(key)
    if instead is not None:
        return (f"{key}: tsy misy amin'ny Tahiry / Tahiry has no '{key}'\n"
                f"  ohatra / example: {instead};")
    domain = SQL_TYPES.get(key)   # `fanampiana int`: the Tahiry domain, then its help
    if domain is not None:
        said = f"{key}: amin'ny Tahiry / in Tahiry, '{key}' is written '{domain}'"
        return f"{said}\n{topic_help(domain.split('(')[0])}"
    malagasy, filed_under = english_keyword(key), topic_of(key)
    if key == "not":   # `!`; `tsy` only after `dia` (the engine's hint says the same)
        malagasy, filed_under = "!", "!"
    if malagasy is None or filed_under is None:
        return None
    said = f"{key}: amin'ny Tahiry / in Tahiry, '{key}' is written '{malagasy}'"
    more = topic_help(filed_under) if filed_under in TOPICS else None
    return said if more is None else f"{said}\n{more}"
