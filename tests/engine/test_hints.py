""""Did you mean" hints at the end of errors (engine/language/hints.py, LANGUAGE.md 5b)."""

from __future__ import annotations

import re

import pytest

from engine.language.english import ENGLISH_KEYWORDS, WRITTEN_OTHERWISE, english_keyword, topic_of
from engine.language.hints import closest, syntax_hint
from engine.language.lexer import KEYWORDS
from engine.language.messages import translate
from tests.engine.sessionkit import one, prepared_session, run

SETUP = """\
manamboara tahiry s; ampiasao s;
manamboara tabilao mpianatra (id ISA(0,10), anarana LAHATSORATRA(null,null));
manamboara jery tsara @ alaivo * ao@ mpianatra;
manamboara tabilao naoty (id ISA(0,10), taranja LAHATSORATRA(null,null), naoty ISA(0,20));
"""


def did_you_mean(suggestion: str, word: str) -> str:
    return f" Angamba '{suggestion}' no tianao hosoratana (fa tsy '{word}')?"


def in_tahiry(keyword: str, word: str) -> str:
    return f" Amin'ny Tahiry, '{keyword}' no ilazana ny '{word}'."


def written_otherwise(word: str) -> str:
    return (f" Tsy misy '{word}' amin'ny Tahiry ; toy izao no anoratana azy : "
            f"{WRITTEN_OTHERWISE[word.lower()]}")


def forgot_semicolon(word: str) -> str:
    return f" Hadino angamba ny ';' teo alohan'ny '{word}'?"


SUBQUERY = (" Ny fangatahana (alaivo ...) dia tsy azo atao ao anaty fanehoana : ataovy ho "
            "tabilao nalaina aorian'ny 'ao@' na 'tonona' (ohatra : alaivo n.id ao@ naoty n "
            "tonona (alaivo avg(naoty) antso m ao@ naoty) x ka n.naoty > x.m)")


COMMA_JOIN = (" Ny faingo (,) dia tsy mampitambatra tabilao amin'ny Tahiry : 'tonona' no "
              "ampiasaina (ohatra : alaivo * ao@ a tonona b ka a.id = b.id ; tsy misy 'ka' : "
              "ny vokatra kartezianina)")


def quoted(word: str) -> str:
    return f" Raha lahatsoratra no tianao, soraty eo anelanelan'ny ' : '{word}'."


GROUP_FILTER = (" Ny 'rehefa' dia mialoha ny 'vondrona' ; ny vondrona kosa dia sivanina toy "
                "izao : " + WRITTEN_OTHERWISE["having"])


TSY = " Ny 'tsy' dia ao amin'ny 'dia tsy null' ihany : '!' no ilazana ny NOT (ohatra : rehefa !(a = 1))."


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return prepared_session(tmp_path_factory, "hints", SETUP)


@pytest.mark.parametrize("text, hint", [
    # The case: `rehefaa` is read as an alias; the error lands on `id`.
    ("alaivo * ao@ mpianatra rehefaa id = 1;", did_you_mean("rehefa", "rehefaa")),
    ("alivo * ao@ mpianatra;", did_you_mean("alaivo", "alivo")),
    ("alaivo * ao@ mpianatra fetr 3;", did_you_mean("fetra", "fetr")),
    ("asehoy ny tsangannana;", did_you_mean("tsanganana", "tsangannana")),
    # The other words `asehoy ny` takes are hinted too, as after `ravao ny` (only
    # 'tsanganana' was a candidate).
    ("asehoy ny tabilaoo;", did_you_mean("tabilao", "tabilaoo")),
    ("asehoy ny efitraa;", did_you_mean("efitra", "efitraa")),
    ("alaivo * ao@ mpianatra #rehefaa id = 1;", did_you_mean("rehefa", "rehefaa")),
    ("alaivo * #from mpianatra;", in_tahiry("ao@", "from")),
    ("select * from mpianatra;", in_tahiry("alaivo", "select")),
    ("SELECT * ao@ mpianatra;", in_tahiry("alaivo", "SELECT")),
    ("alaivo * from mpianatra;", in_tahiry("ao@", "from")),
    ("alaivo id from mpianatra;", in_tahiry("ao@", "from")),      # `from` read as an alias
    ("alaivo * ao@ mpianatra where id = 1;", in_tahiry("rehefa", "where")),
    # SQL's `LEFT JOIN` (`left` read as the table's alias): the kind's join, not `tonona`.
    ("alaivo * ao@ mpianatra left join naoty ka mpianatra.id = naoty.id;",
     in_tahiry("tonona:avia", "left join")),
    ("alaivo * ao@ mpianatra RIGHT JOIN naoty ka mpianatra.id = naoty.id;",
     in_tahiry("tonona:avanana", "RIGHT JOIN")),
    ("alaivo * ao@ mpianatra join naoty ka mpianatra.id = naoty.id;",
     in_tahiry("tonona", "join")),
    ("alaivo id ao@ mpianatra group by id;", in_tahiry("vondrona", "group")),
    ("alaivo id ao@ mpianatra rehefa id = 1 order by id;", in_tahiry("alaharo", "order")),
    ("manampia into mpianatra values (1, 'a');", in_tahiry("ao@", "into")),
    ("manampia ao@ mpianatra values (1, 'a');", in_tahiry("sanda", "values")),
    ("create table t (a ISA(0,1));", in_tahiry("manamboara", "create")),
    ("insert ao@ mpianatra sanda (1, 'a');", in_tahiry("manampia", "insert")),
    ("update mpianatra ova id = 1;", in_tahiry("havaozy", "update")),
    ("delete ao@ mpianatra;", in_tahiry("fafao", "delete")),
    ("drop table t;", in_tahiry("ravao ny", "drop")),
    ("use s;", in_tahiry("ampiasao", "use")),
    ("alaivo * ao@ mpianatra a tonona mpianatra b on a.id = b.id;", in_tahiry("ka", "on")),
    ("alaivo * ao@ mpianatra rehefa id is null;", in_tahiry("dia", "is")),
    # NOT is `!`; `tsy` only after `dia` (IS NOT NULL).
    ("alaivo * ao@ mpianatra rehefa not id > 1;", in_tahiry("!", "not")),
    ("alaivo * ao@ mpianatra rehefa not (id > 1);", in_tahiry("!", "not")),
    ("alaivo * ao@ mpianatra rehefa id dia not null;", in_tahiry("tsy", "not")),
    # Tables, views, columns, functions.
    ("alaivo * ao@ mpianatr;", did_you_mean("mpianatra", "mpianatr")),
    ("alaivo * ao@ tsar;", did_you_mean("tsara", "tsar")),
    ("fafao ao@ mpianatraa;", did_you_mean("mpianatra", "mpianatraa")),
    ("alaivo anaran ao@ mpianatra;", did_you_mean("anarana", "anaran")),
    ("alaivo m.anaran ao@ mpianatra m;", did_you_mean("m.anarana", "m.anaran")),
    ("havaozy mpianatra ova anaran = 'x';", did_you_mean("anarana", "anaran")),
    ("manampia ao@ mpianatra (id, anaran) sanda (1, 'x');", did_you_mean("anarana", "anaran")),
    ("alaivo cout(id) ao@ mpianatra;", did_you_mean("count", "cout")),
    # Names are case-sensitive: one differing only in case is the best suggestion (it was
    # the one candidate left out), whatever its length.
    ("alaivo Anarana ao@ mpianatra;", did_you_mean("anarana", "Anarana")),
    ("alaivo ID ao@ mpianatra;", did_you_mean("id", "ID")),
    ("alaivo * ao@ MPIANATRA;", did_you_mean("mpianatra", "MPIANATRA")),
    ("alaivo M.id ao@ mpianatra m;", did_you_mean("m.id", "M.id")),
    # A table renamed by its alias is qualified with the alias (LANGUAGE.md 4b): said
    # only that 'mpianatra.anarana' does not exist.
    ("alaivo mpianatra.anarana ao@ mpianatra m;", did_you_mean("m.anarana", "mpianatra.anarana")),
    ("alaivo m.id ao@ tsara m tonona mpianatra n ka tsara.id = n.id;",
     did_you_mean("m.id", "tsara.id")),
    # An `alaharo` key may name an output column (its alias): those are candidates too.
    ("alaivo count(*) antso isa_rehetra ao@ mpianatra alaharo isa_rehetr;",
     did_you_mean("isa_rehetra", "isa_rehetr")),
    ("alaivo id antso laharana ao@ mpianatra alaharo laharan midina;",
     did_you_mean("laharana", "laharan")),
    # A statement's first word where the `;` before it could stand: it was forgotten
    # (said "'alaivo' is a reserved word, not a name").
    ("alaivo * ao@ mpianatra\nalaivo 2;", forgot_semicolon("alaivo")),
    ("manampia ao@ mpianatra sanda (1, 'a')\nalaivo * ao@ mpianatra;", forgot_semicolon("alaivo")),
    ("alaivo id ao@ mpianatra alaharo id fafao ao@ mpianatra;", forgot_semicolon("fafao")),
    # A query inside an expression (SQL's scalar subquery) was called "'alaivo' is a
    # reserved word, not a name": a query stands only as a derived table.
    ("alaivo id ao@ mpianatra rehefa id > (alaivo avg(id) ao@ mpianatra);", SUBQUERY),
    ("alaivo (alaivo 1);", SUBQUERY),
    ("manampia ao@ mpianatra sanda ((alaivo 1), 'x');", SUBQUERY),
    # `+ (alaivo` reads as a set operator (LANGUAGE.md 4b); where none may stand, it was
    # arithmetic on a query: the error fell on the `+` with no word of why.
    ("havaozy mpianatra ova id = id + (alaivo max(id) ao@ mpianatra);", SUBQUERY),
    # `tsy` (Malagasy "not") written as NOT: it was called a reserved word, no name.
    ("alaivo * ao@ mpianatra rehefa tsy id = 1;", TSY),
    ("alaivo * ao@ mpianatra rehefa id tsy dia null;", TSY),
    # A text value written without its quotes is read as a column that is not there.
    ("alaivo * ao@ mpianatra rehefa anarana = Alice;", quoted("Alice")),
    ("alaivo id ao@ mpianatra rehefa Alice != anarana;", quoted("Alice")),
    ("fafao ao@ mpianatra rehefa anarana = Rakoto ary id > 1;", quoted("Rakoto")),
    # HAVING written as `rehefa` after `vondrona`.
    ("alaivo anarana, count(*) ao@ mpianatra vondrona anarana rehefa count(*) > 1;",
     GROUP_FILTER),
    ("alaivo anarana ao@ mpianatra #vondrona anarana #rehefa anarana = 'x';", GROUP_FILTER),
    # SQL's not-equal and C's equality: a syntax error at their second character.
    ("alaivo * ao@ mpianatra rehefa id <> 1;", in_tahiry("!=", "<>")),
    # `=>`, `=<` (the order of the two characters swapped), and the mathematical signs and
    # C's `&&` pasted or typed: the words expected, or "unknown character", said nothing.
    ("alaivo * ao@ naoty rehefa naoty => 10;", in_tahiry(">=", "=>")),
    ("alaivo * ao@ naoty rehefa naoty =< 10;", in_tahiry("<=", "=<")),
    ("alaivo * ao@ naoty rehefa naoty \u2265 10;", in_tahiry(">=", "\u2265")),
    ("alaivo * ao@ naoty rehefa naoty \u2264 10;", in_tahiry("<=", "\u2264")),
    ("alaivo * ao@ naoty rehefa naoty \u2260 10;", in_tahiry("!=", "\u2260")),
    ("alaivo * ao@ naoty rehefa naoty > 1 && id = 1;", in_tahiry("ary", "&&")),
    ("alaivo * ao@ mpianatra rehefa id == 1;", in_tahiry("=", "==")),
    ("havaozy mpianatra ova id = 2 rehefa anarana<>'x';", in_tahiry("!=", "<>")),
    # SQL's comma join (`FROM a, b`): a syntax error at the comma, and no hint said why.
    ("alaivo * ao@ mpianatra, tsara;", COMMA_JOIN),
    ("alaivo * ao@ mpianatra m, tsara t rehefa m.id = t.id;", COMMA_JOIN),
    ("alaivo * ao@ mpianatra tonona tsara ka 1 = 1, mpianatra;", COMMA_JOIN),
    # SQL keywords Tahiry has no word for: how a query writes the same.
    ("alaivo distinct anarana ao@ mpianatra;", written_otherwise("distinct")),  # read as a column
    ("alaivo DISTINCT(anarana) ao@ mpianatra;", written_otherwise("distinct")),  # a function
    ("alaivo id, count(*) ao@ mpianatra vondrona id having count(*) > 1;",
     written_otherwise("having")),
    ("alaivo * ao@ mpianatra rehefa id in (1, 2);", written_otherwise("in")),
    ("alaivo * ao@ mpianatra rehefa id between 1 and 5;", written_otherwise("between")),
    # SQL types where a domain is expected (they read as a named domain that is not there).
    ("manamboara tabilao u (a INT);", in_tahiry("ISA(null,null)", "INT")),
    ("manamboara tabilao u (a text);", in_tahiry("LAHATSORATRA(null,null)", "text")),
    ("manamboara tabilao u (a Date);", in_tahiry("DATY", "Date")),
    # ... and with SQL's bounds, as a student writes them (a syntax error, no hint before).
    ("manamboara tabilao u (a varchar(20));", in_tahiry("LAHATSORATRA(null,null)", "varchar")),
    ("manamboara tabilao u (a DECIMAL(5,2));", in_tahiry("ISA(null,null)", "DECIMAL")),
    ("manamboara efitra e (char(3));", in_tahiry("LAHATSORATRA(null,null)", "char")),
])
def test_the_error_ends_with_the_hint(session, text, hint):
    message = one(session, text).message
    assert message.startswith("Hadisoana : ") and message.endswith(hint), message
    assert "teny voatokana" not in message, message
    english = translate(message, "en")
    assert english.startswith("Error: ") and "Hadisoana" not in english and "Angamba" not in english


@pytest.mark.parametrize("text, exact", [
    ("alaivo * ao@ tsisy;", "Hadisoana : La table s.tsisy n'as pas été trouvé"),
    ("alaivo x ao@ mpianatra;", "Hadisoana : Le champ 'x' n'existe pas dans la relation."),
    ("alaivo * ao@ mpianatra x y;",
     "Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 26 : nandrasana "
     "'alaharo', 'analana', 'ankambana', 'atifitra', 'fetra', 'rehefa', 'tonona', 'vondrona' "
     "na ';' fa 'y' no hita"),
    # `ao@` forgotten: it is among the words expected, and no `)` is (none is open); the
    # hint says where it goes.
    ("alaivo * mpianatra;",
     "Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 10 : nandrasana "
     "'alaharo', 'analana', 'ankambana', 'ao@', 'atifitra', 'fetra', 'rehefa', 'vondrona' na ';' "
     "fa 'mpianatra' no hita Hadino angamba ny 'ao@' teo alohan'ny 'mpianatra'? (alaivo ... ao@ "
     "mpianatra)"),
    # What could come instead of the `)`, not what is left after the reductions it made
    # (the query closed: only a set operator or ';').
    ("alaivo * ao@ mpianatra);",
     "Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 23 : nandrasana "
     "'alaharo', 'analana', 'ankambana', 'antso', 'atifitra', 'fetra', 'rehefa', 'tonona', "
     "'vondrona', anarana na ';' fa ')' no hita"),
    ("alaivo (1 + 2 x;",
     "Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 15 : nandrasana "
     "')', 'ary', 'dia' na 'na' fa 'x' no hita"),
    # A close column name is the hint, not quotes; a qualified name is no text.
    ("alaivo * ao@ mpianatra rehefa anarana = anaran;",
     "Hadisoana : Le champ 'anaran' n'existe pas dans la relation."
     " Angamba 'anarana' no tianao hosoratana (fa tsy 'anaran')?"),
    ("alaivo * ao@ mpianatra m rehefa m.anarana = x.Alice;",
     "Hadisoana : Le champ 'x.Alice' n'existe pas dans la relation."),
    ("alaivo anarana mpianatra;", "Hadisoana : Le champ 'anarana' n'existe pas dans la relation."
     " Tsy misy 'ao@' ity fangatahana ity : alaivo ... ao@ TABILAO;"),
    # The select list resolved without `ao@`: an unknown `alaharo` key is no forgotten
    # `ao@` (here the key names the first operand's column; `alaharo` is the second's).
    ("alaivo 1 antso a ankambana alaivo 2 antso b alaharo a;",
     "Hadisoana : Le champ 'a' n'existe pas dans la relation."),
    ("ampiasao tsisx;", "Hadisoana : Tsy misy ny tahiry : tsisx"),  # the balancer reads it exactly
    # Only `;` could come there: no keyword is suggested (it said "'fetra'?" for `extra`).
    ("asehoy ny tabilao extra;",
     "Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 19 : nandrasana ';' "
     "fa 'extra' no hita"),
])
def test_no_close_name_no_hint_and_the_documented_text_is_unchanged(session, text, exact):
    assert one(session, text).message == exact


def test_every_english_keyword_maps_to_malagasy_words():
    words = set(KEYWORDS) | {"ao@", "ny", "tsanganana", "fanampiana", "omeo", "esory"}
    for english, malagasy in ENGLISH_KEYWORDS.items():
        assert english not in KEYWORDS
        assert all(part.split(":")[0] in words for part in malagasy.split()), english
    assert english_keyword("SELECT") == "alaivo" and english_keyword("alaivo") is None
    assert [topic_of(w) for w in ("select", "FROM", "left", "drop", "alaivo")] == [
        "alaivo", "ao", "tonona", "ravao", None]


@pytest.mark.parametrize("word", sorted(WRITTEN_OTHERWISE))
def test_each_way_around_a_missing_keyword_runs_as_written(tmp_path_factory, word):
    """The hint's query is one a student can type: it runs on a table t (a, b)."""
    session = prepared_session(tmp_path_factory, "around", """\
manamboara tahiry s; ampiasao s;
manamboara tabilao t (a ISA(null,null), b ISA(null,null));
manampia ao@ t sanda (1, 2), (1, 2), (2, 5);
""")
    outcome = one(session, WRITTEN_OTHERWISE[word] + ";")
    assert outcome.ok and outcome.relation.rows, outcome.message
    assert english_keyword(word) is None and word not in KEYWORDS


def test_the_english_table_loads_without_the_parser():
    import subprocess
    import sys

    probe = ("import sys, engine.language.english; "
             "assert 'sly' not in sys.modules and 'engine.language.lexer' not in sys.modules")
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_closest_needs_a_close_enough_long_enough_word():
    assert closest("mpianatr", ["mpianatra", "naoty"]) == "mpianatra"
    assert closest("Mpianatra", ["mpianatra"]) is None   # the same name is no suggestion
    assert closest("xyzw", ["mpianatra"]) is None
    assert closest("id", ["ida"]) is None


def test_a_hint_is_computed_only_from_words_next_to_the_error():
    assert syntax_hint("alaivo 1 +;", 10) == ""
    assert syntax_hint("alaivo * ao@ t rehefaa id", 23) == did_you_mean("rehefa", "rehefaa")
    # The word at fault is compared with what the grammar expected there only.
    assert syntax_hint("alaivo * ao t mpianatra", 14, {"rehefa", "fetra"}) == ""
    assert syntax_hint("alaivo * ao t fetr", 14, {"rehefa", "fetra"}) == did_you_mean("fetra", "fetr")


def test_each_set_operator_is_expected_by_its_own_word(session):
    # One token kind stands for the three words: the list named only 'ankambana'.
    message = one(session, "alaivo * ao@ mpianatra x y;").message
    assert all(f"'{word}'" in message for word in ("ankambana", "analana", "atifitra")), message
    english = translate(message, "en")
    assert "'analana', 'ankambana'" in english and "'atifitra'" in english, english


@pytest.mark.parametrize("word", ["ankambanaa", "analanaa", "atifitraa"])
def test_a_misspelled_set_operator_is_hinted(session, word):
    # Only the last word of a token kind was a candidate ('atifitra' for all three).
    # (After the alias `m`, the misspelled word is where the error is.)
    message = one(session, f"alaivo id ao@ mpianatra m {word} alaivo id ao@ mpianatra;").message
    assert message.endswith(did_you_mean(word[:-1], word)), message


@pytest.mark.parametrize("text", ["alaivo * ao@ mpianatra rehefa anarana like 'A%';",
                                  "alaivo anarana like 'A%' ao@ mpianatra;",
                                  "alaivo * ao@ mpianatra rehefa id = 1 ary anarana like 'A';"])
def test_a_name_right_after_a_keyword_is_not_taken_for_a_misspelled_one(session, text):
    # `anarana` (the course's "name" column) after `rehefa` is read as a column, never as
    # an alias: it was hinted "Angamba 'analana' ... (fa tsy 'anarana')?".
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and "Angamba" not in message, \
        message


# ------------------------------------------------------------------ a student's ten mistakes
# (the beginner's most common ones, each message saying where, what, and what to write)


def other_table(column: str, table: str, example: str) -> str:
    return (f" Ny '{column}' dia tsanganana ao amin'ny tabilao {table}, izay tsy ao amin'ity "
            f"fangatahana ity : ampidiro amin'ny 'tonona' izy (ohatra : {example})")


def not_grouped(name: str, groups: str) -> str:
    return (f" Ampio ao amin'ny vondrona izy (vondrona {groups}) na ataovy ao anaty fonction "
            f"d'agrégation (ohatra : count({name}), max({name})).")


def insert_columns(columns: str) -> str:
    return f" Ny tsanganana, araka ny filaharany : {columns}."


@pytest.mark.parametrize("text, hint", [
    # `ao@` forgotten before the table (`alaivo * mpianatra`): a bare list of expected words.
    ("alaivo * mpianatra rehefa id = 1;",
     " Hadino angamba ny 'ao@' teo alohan'ny 'mpianatra'? (alaivo ... ao@ mpianatra)"),
    ("manampia mpianatra sanda (1, 'a');",
     " Hadino angamba ny 'ao@' teo alohan'ny 'mpianatra'? (manampia ao@ mpianatra)"),
    ("fafao mpianatra rehefa id = 1;",
     " Hadino angamba ny 'ao@' teo alohan'ny 'mpianatra'? (fafao ao@ mpianatra)"),
    # ... and in a grant (the words expected only).
    ("omeo soa zo mamaky s;", " Hadino angamba ny 'ao@' teo alohan'ny 's'? (omeo soa zo mamaky ao@ s)"),
    ("esory soa zo manoratra s;",
     " Hadino angamba ny 'ao@' teo alohan'ny 's'? (esory soa zo manoratra ao@ s)"),
    # ... and one too many: `havaozy` takes none (it said "'ao' is reserved, not a name").
    ("havaozy ao@ naoty ova naoty = 10;",
     " Tsy misy 'ao@' aorian'ny 'havaozy' : havaozy TABILAO ova a = 1 rehefa ..."),
    # A comma left before a clause word.
    ("alaivo anarana, ao@ mpianatra;",
     " Tafahoatra angamba ny ',' teo alohan'ny 'ao@' : esory izy."),
    ("alaivo taranja, count(*) ao@ naoty vondrona taranja, alaharo taranja;",
     " Tafahoatra angamba ny ',' teo alohan'ny 'alaharo' : esory izy."),
    # A column of a table the query does not read: it was "if you meant a text, quote it"
    # (`naoty`), or nothing (`naoty.naoty`).
    ("alaivo anarana ao@ mpianatra rehefa naoty > 10;",
     other_table("naoty", "naoty", "tonona naoty ka mpianatra.id = naoty.id")),
    ("alaivo anarana ao@ mpianatra m rehefa naoty.naoty > 10;",
     other_table("naoty", "naoty", "tonona naoty ka m.id = naoty.id")),
    ("alaivo taranja ao@ mpianatra;",
     other_table("taranja", "naoty", "tonona naoty ka mpianatra.id = naoty.id")),
    # Two tables with the column: which one to name.
    ("alaivo anarana ao@ mpianatra tonona naoty ka id = id;",
     " Soraty miaraka amin'ny anaran'ny tabilao misy azy : mpianatra.id, naoty.id."),
    # A column neither grouped nor aggregated: the `vondrona` to write, or an aggregate.
    ("alaivo anarana, count(*) ao@ mpianatra;", not_grouped("anarana", "anarana")),
    ("alaivo taranja, id, avg(naoty) ao@ naoty vondrona taranja;",
     not_grouped("id", "taranja, id")),
    # The wrong number of values: which columns take them, in order, and which row.
    ("manampia ao@ naoty sanda (1, 'Algo');", insert_columns("id, taranja, naoty")),
    ("manampia ao@ naoty (id, naoty) sanda (1);", insert_columns("id, naoty")),
    ("manampia ao@ naoty sanda (1, 'Algo', 12), (2, 'BD');",
     insert_columns("id, taranja, naoty") + " (Andalana faha-2 amin'ny sanda.)"),
    # A text without its quotes where a value goes (it was said only in comparisons).
    ("manampia ao@ mpianatra sanda (1, Alice);", quoted("Alice")),
    ("havaozy naoty ova taranja = BD rehefa id = 1;", quoted("BD")),
])
def test_a_beginners_mistake_says_what_to_write_instead(session, text, hint):
    message = one(session, text).message
    assert message.startswith("Hadisoana : ") and message.endswith(hint), message
    english = translate(message, "en")
    assert english.startswith("Error: ") and "Hadisoana" not in english, english
    assert hint.strip() not in english, english   # the hint is translated too


def forgot_comma(word: str) -> str:
    return f" Hadino angamba ny ',' teo alohan'ny '{word}'?"


@pytest.mark.parametrize("text, hint", [
    # A comma forgotten between two values, two columns, two column definitions: the
    # error listed the words expected (',' among them) and said nothing more.
    ("manampia ao@ naoty sanda (1 'Algo', 12);", forgot_comma("'Algo'")),
    ("manampia ao@ naoty sanda (1, 'Algo' 12);", forgot_comma("12")),
    ("manampia ao@ naoty (id taranja) sanda (1, 'Algo');", forgot_comma("taranja")),
    ("manamboara tabilao u (a ISA(0,10) b LAHATSORATRA(null,null));", forgot_comma("b")),
    ("alaivo taranja, naoty ao@ naoty alaharo taranja naoty;", forgot_comma("naoty")),
    # ... and between two rows of values.
    ("manampia ao@ naoty sanda (1, 'Algo', 12) (2, 'BD', 9);", forgot_comma("(")),
    # The second name is read as the first one's alias, the error falls on the third: it
    # said "Angamba 'analana' ... (fa tsy 'anarana')?", a set operator, which takes a
    # query after it, never a name.
    ("alaivo id anarana taranja ao@ naoty;", forgot_comma("taranja")),
])
def test_a_forgotten_comma_is_said(session, text, hint):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and message.endswith(hint), \
        message
    assert "Was the ',' before" in translate(message, "en")


@pytest.mark.parametrize("text, hint", [
    # A misspelled alias-position keyword still wins where it could stand (`antso x`).
    ("alaivo id antsoo x ao@ naoty;", did_you_mean("antso", "antsoo")),
])
def test_a_misspelled_word_before_a_name_is_still_hinted(session, text, hint):
    message = one(session, text).message
    assert message.endswith(hint), message


PLAIN_QUOTES = (" Ny lahatsoratra dia soratana eo anelanelan'ny ' na \" tsotra (ohatra : "
                "'Alice') ; ny anarana kosa tsy asiana marika.")


@pytest.mark.parametrize("text", [
    # Quotes pasted from a word processor or a PDF, and MySQL's backquoted names: the error
    # said only "unknown character".
    "manampia ao@ mpianatra sanda (1, \u2018Alice\u2019);",
    "alaivo * ao@ mpianatra rehefa anarana = \u201cAlice\u201d;",
    "alaivo * ao@ mpianatra rehefa anarana = \u00abAlice\u00bb;",
    "alaivo `anarana` ao@ mpianatra;",
])
def test_curly_quotes_and_backquotes_say_which_quotes_to_use(session, text):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and "marika tsy fantatra" \
        in message and message.endswith(PLAIN_QUOTES), message
    assert translate(message, "en").endswith(
        " A text is written between plain ' or \" quotes (e.g. 'Alice'); a name takes none.")


def select_alias(alias: str, expression: str) -> str:
    return (f" Ny '{alias}' dia anarana nomena tao amin'ny 'alaivo' (antso), fantatry ny "
            f"'alaharo' ihany : soraty eto ny fanehoana, {expression}.")


@pytest.mark.parametrize("text, hint", [
    # SQL's habit of naming a select item's alias in WHERE (an error in SQL too): it was
    # "if you meant a text, write it between quotes: 'n'", or nothing after `vondrona`.
    ("alaivo naoty antso n ao@ naoty rehefa n > 10;", select_alias("n", "naoty")),
    ("alaivo naoty + 1 isa ao@ naoty rehefa isa > 10;", select_alias("isa", "naoty + 1")),
    ("alaivo n.naoty antso isa ao@ naoty n tonona mpianatra m ka n.id = m.id rehefa isa > 1;",
     select_alias("isa", "n.naoty")),
    ("alaivo taranja antso t, count(*) ao@ naoty vondrona t;", select_alias("t", "taranja")),
    # An aggregate's alias: the filter of groups, as for `having`.
    ("alaivo taranja, count(*) antso isa ao@ naoty rehefa isa > 1 vondrona taranja;",
     " Ny 'isa' dia anarana nomena tao amin'ny 'alaivo' (antso), fantatry ny 'alaharo' ihany "
     ": ny vondrona dia sivanina toy izao : " + WRITTEN_OTHERWISE["having"]),
])
def test_a_select_alias_used_in_rehefa_or_vondrona_says_to_write_the_expression(
        session, text, hint):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Le champ ") and message.endswith(hint), message
    assert "Raha lahatsoratra" not in message
    assert "known only in 'alaharo'" in translate(message, "en")


DATE_FORM = " Ny daty dia soratana 'YYYY-MM-DD' eo anelanelan'ny ' (ohatra '2024-01-31')."


@pytest.mark.parametrize("text, value", [
    # The quotes forgotten (`2024-09-01` is the number 2014), or another form: the error
    # named the value and the domain only, while a `rehefa` on the column says how to write
    # a date.
    ("manampia ao@ fisoratana sanda (1, 2024-09-01);", "2014"),
    ("manampia ao@ fisoratana sanda (1, '2024-9-1');", "'2024-9-1'"),
    ("manampia ao@ fisoratana sanda (1, '01/09/2024');", "'01/09/2024'"),
    ("havaozy fisoratana ova daty = 20240901;", "20240901"),
])
def test_a_value_refused_by_a_date_column_says_how_dates_are_written(tmp_path_factory, text,
                                                                     value):
    session = prepared_session(tmp_path_factory, "dates", SETUP + (
        "manamboara tabilao fisoratana (id ISA(0,10), daty DATY);"
        "manampia ao@ fisoratana sanda (1, '2024-09-01');"))
    message = one(session, text).message
    assert message == (f"Hadisoana : Ny sanda {value} dia tsy mifanaraka amin'ny efitra DATY "
                       f"an'ny tsanganana 'daty'" + DATE_FORM), message
    assert translate(message, "en").endswith(
        " A date is written 'YYYY-MM-DD' between quotes (e.g. '2024-01-31').")
    # A column of another domain: no such guess.
    assert not one(session, "manampia ao@ naoty sanda (1, 'BD', 2024-09-01);").message \
        .endswith(DATE_FORM)


@pytest.mark.parametrize("text, hint", [
    # A named domain misspelled (a table misspelled had its hint), and a base type misspelled
    # before its bounds ("'ISAA' is not a base type: it takes no bounds", nothing more).
    ("manamboara tabilao u (a kilasyy);", did_you_mean("kilasy", "kilasyy")),
    ("manamboara tabilao u (a Kilasy);", did_you_mean("kilasy", "Kilasy")),
    ("manamboara efitra e2 (kilasi:DATY);", did_you_mean("kilasy", "kilasi")),
    ("manamboara tabilao u (a ISAA(0,10));", did_you_mean("ISA", "ISAA")),
    ("manamboara tabilao u (a LAHATSORATA(0,5));", did_you_mean("LAHATSORATRA", "LAHATSORATA")),
    ("manamboara tabilao u (a tanisaa('x'));", did_you_mean("TANISA", "tanisaa")),
])
def test_a_misspelled_domain_is_hinted(tmp_path_factory, text, hint):
    session = prepared_session(tmp_path_factory, "domains", SETUP + (
        "manamboara efitra kilasy (TANISA('L3', 'M1'));"))
    message = one(session, text).message
    assert message.endswith(hint), message
    assert translate(message, "en").endswith(hint.replace(
        " Angamba '", " Did you mean '").replace("' no tianao hosoratana (fa tsy '", "' (not '"))


@pytest.mark.parametrize("text, word", [
    # A TANISA's values written without quotes: only a literal may stand there, and the
    # error listed "'null', isa na lahatsoratra" without a word on quotes.
    ("manamboara tabilao u (kilasy TANISA(L3, M1));", "L3"),
    ("manamboara efitra e (TANISA('L3', M1));", "M1"),
])
def test_a_text_without_quotes_where_only_a_literal_goes_is_hinted(session, text, word):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") \
        and message.endswith(quoted(word)), message


AGGREGATE_FILTER = (" Ny 'rehefa' dia manivana ny andalana alohan'ny hanaovana ny vondrona ; "
                    "ny vondrona kosa dia sivanina toy izao : " + WRITTEN_OTHERWISE["having"])


@pytest.mark.parametrize("text", [
    # SQL's WHERE holding an aggregate (HAVING meant): the error said it may not stand
    # there, not how groups are filtered.
    "alaivo taranja, avg(naoty) ao@ naoty rehefa avg(naoty) > 10 vondrona taranja;",
    "alaivo count(*) ao@ naoty rehefa count(*) > 1;",
])
def test_an_aggregate_in_rehefa_says_how_groups_are_filtered(session, text):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Tsy azo ampiasaina ao amin'ny 'rehefa' ny "
                              "fonction d'agrégation ") and message.endswith(AGGREGATE_FILTER), \
        message
    assert "groups are filtered like this" in translate(message, "en")
    # In `ka`, no such thing to say.
    assert one(session, "alaivo * ao@ naoty n tonona mpianatra m ka count(*) > 1;").message \
        .endswith("count(*).")


@pytest.mark.parametrize("text", [
    # `dia` ("is") read as equality: the error listed 'null' and 'tsy' only.
    "alaivo anarana ao@ mpianatra rehefa anarana dia 'Alice';",
    "alaivo * ao@ naoty rehefa naoty dia 12;",
    "alaivo * ao@ naoty rehefa naoty dia tsy 12;",
])
def test_dia_before_a_value_says_it_only_tests_null(session, text):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and message.endswith(
        " Ny 'dia' dia ao amin'ny 'dia null' sy 'dia tsy null' ihany : '=' sy '!=' no "
        "mampitaha sanda (ohatra : rehefa a = 1)."), message
    assert translate(message, "en").endswith(
        " 'dia' is only used in 'dia null' and 'dia tsy null': values are compared with '=' "
        "and '!=' (e.g. rehefa a = 1).")


@pytest.mark.parametrize("text, word", [
    # A function of SQL Tahiry does not have, close to no aggregate: the error named it and
    # said nothing of which functions there are.
    ("alaivo upper(anarana) ao@ mpianatra;", "upper"),
    ("alaivo length(anarana) ao@ mpianatra;", "length"),
    ("alaivo * ao@ mpianatra rehefa round(id) = 1;", "round"),
])
def test_an_unknown_function_lists_the_functions_there_are(session, text, word):
    message = one(session, text).message
    assert message == (f"Hadisoana : Tsy fantatra ny fonction '{word}'. Ireto ihany no fonction "
                       "ao amin'ny Tahiry : count, sum, avg, min, max."), message
    assert translate(message, "en").endswith(
        " Tahiry's only functions are: count, sum, avg, min, max.")


@pytest.mark.parametrize("text, example", [
    # "taranja is BD or Algo" as it is said: the second value stands alone, and the error
    # said only that 'Algo' is not a boolean.
    ("alaivo * ao@ naoty rehefa taranja = 'BD' na 'Algo';",
     "taranja = 'BD' na taranja = 'Algo'"),
    ("alaivo * ao@ naoty rehefa naoty > 10 ary 15;", "naoty > 10 ary naoty > 15"),
    ("alaivo * ao@ naoty rehefa id = 1 ary naoty = 2 na 3;", "naoty = 2 na naoty = 3"),
])
def test_a_value_alone_beside_a_comparison_says_to_repeat_the_column(session, text, example):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Ny fepetra ao amin'ny 'rehefa' dia tsy maintsy "
                              "booléen") and message.endswith(
        f" Samy manana ny sanda ampitahainy ny fampitahana tsirairay : {example}."), message
    assert translate(message, "en").endswith(f" Each comparison names what it compares: "
                                             f"{example}.")


@pytest.mark.parametrize("text", [
    # The same said with the operator kept and the column left out: a syntax error.
    "alaivo * ao@ naoty rehefa naoty > 10 ary < 15;",
    "alaivo * ao@ naoty rehefa taranja = 'BD' na = 'Algo';",
])
def test_an_operator_right_after_ary_or_na_says_to_repeat_the_column(session, text):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and message.endswith(
        " Samy manana ny sanda ampitahainy ny fampitahana tsirairay : a > 10 ary a < 15."), \
        message


@pytest.mark.parametrize("script, word", [
    ("alaivo anarana ao@ mpianatra; rehefa id = 1;", "rehefa"),
    ("alaivo anarana ao@ mpianatra alaharo anarana;\n  fetra 1;", "fetra"),
    ("alaivo anarana; ao@ mpianatra;", "ao@"),
    ("alaivo taranja, count(*) ao@ naoty; vondrona taranja;", "vondrona"),
])
def test_a_semicolon_too_early_is_said_where_the_rest_fails(session, script, word):
    """The statement before the `;` ran (or failed) on its own; the rest, starting with a
    clause word, was a bare list of the words a statement starts with."""
    message = run(session, script)[-1]
    assert message.endswith(
        f" Tsy manomboka baiko ny '{word}' : ny ';' teo alohany no namarana ny baiko teo "
        "aloha (nalefa tsy nisy azy) ; esory io ';' io."), message
    assert translate(message, "en").endswith(
        f" '{word}' does not start a statement: the ';' before it ended the statement before "
        "(sent without it); remove that ';'.")


@pytest.mark.parametrize("text, word", [
    ("manamboara tabilao vondrona (id ISA(0,5));", "vondrona"),
    ("manamboara tabilao t (ao ISA(0,5));", "ao"),
    ("manamboara tabilao t (id ISA(0,5), fetra ISA(0,5));", "fetra"),
    ("alaivo count(*) antso fetra ao@ mpianatra;", "fetra"),
])
def test_a_reserved_word_as_a_name_gets_a_name_to_write_instead(tmp_path_factory, text, word):
    session = prepared_session(tmp_path_factory, "reserved", SETUP)   # (it creates a table)
    message = one(session, text).message
    assert f"('{word}' dia teny voatokana, tsy azo atao anarana)" in message, message
    assert message.endswith(
        f" Omeo anarana tsy teny voatokana izy, ohatra : {word}_1."), message
    assert translate(message, "en").endswith(
        f" Give it a name that is not a reserved word, e.g. {word}_1.")
    renamed = re.sub(rf"(?<!\w){word}(?= )", f"{word}_1", text)
    assert one(session, renamed).ok, renamed   # and it runs


@pytest.mark.parametrize("text, error", [
    ("manampia ao@ naoty sanda (1, 'Algo', 12), (2, 'BD', 25);",
     "Ny sanda 25 dia tsy mifanaraka amin'ny efitra ISA(0,20) an'ny tsanganana 'naoty'"),
    ("manampia ao@ naoty sanda (1, 'Algo', 12), (2, 'BD', 1 / 0);",
     "Tsy azo zaraina amin'ny aotra : 1 / 0."),
])
def test_a_bad_value_among_several_rows_says_which_row(session, text, error):
    """A domain violation in the 2nd row of a `manampia` named the value and the column,
    not the row: with many rows of values, a student looked for it."""
    message = one(session, text).message
    assert message == f"Hadisoana : {error} (Andalana faha-2 amin'ny sanda.)", message
    assert translate(message, "en").endswith(" (Row 2 of the values.)")
    single = one(session, "manampia ao@ naoty sanda (2, 'BD', 25);").message
    assert "Andalana faha" not in single   # one row: nothing to say


def clause_order(word: str, later: str) -> str:
    return (f" Ny '{word}' dia mialoha ny '{later}' ; izao no filaharan'ny fizarana : alaivo ... "
            "ao@ ... tonona ... ka ... rehefa ... vondrona ... alaharo ... fetra ...")


@pytest.mark.parametrize("text, hint", [
    # `rehefa` after `alaharo` or `fetra`, with no `vondrona` in the query, was told that
    # "'rehefa' comes before 'vondrona'" and how groups are filtered.
    ("alaivo anarana ao@ mpianatra alaharo anarana rehefa anarana = 'Bob';",
     clause_order("rehefa", "alaharo")),
    ("alaivo anarana ao@ mpianatra fetra 1 rehefa anarana = 'Bob';",
     clause_order("rehefa", "fetra")),
    # The other clauses written out of order listed the words expected only.
    ("alaivo anarana ao@ mpianatra fetra 1 alaharo anarana;", clause_order("alaharo", "fetra")),
    ("alaivo taranja, count(*) ao@ naoty alaharo taranja vondrona taranja;",
     clause_order("vondrona", "alaharo")),
    ("alaivo * ao@ naoty rehefa naoty > 1 tonona mpianatra ka naoty.id = mpianatra.id;",
     clause_order("tonona", "rehefa")),
    ("alaivo * ao@ naoty rehefa naoty > 1 tonona:avia mpianatra ka naoty.id = mpianatra.id;",
     clause_order("tonona:avia", "rehefa")),
    # In a derived table, the clauses of the query being read.
    ("alaivo * ao@ (alaivo * ao@ naoty alaharo naoty rehefa naoty > 1) x;",
     clause_order("rehefa", "alaharo")),
    # After `vondrona`, HAVING is meant: how groups are filtered, as before.
    ("alaivo taranja ao@ naoty vondrona taranja alaharo taranja rehefa naoty > 1;",
     GROUP_FILTER),
])
def test_clauses_out_of_order_say_the_order(session, text, hint):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and message.endswith(hint), \
        message
    english = translate(message, "en")
    assert "Hadisoana" not in english and "mialoha" not in english, english
    if hint != GROUP_FILTER:
        assert english.endswith("; the clauses go in this order: alaivo ... ao@ ... tonona ... "
                                "ka ... rehefa ... vondrona ... alaharo ... fetra ..."), english


def no_constraint(word: str) -> str:
    return (f" Tsy misy '{word}' amin'ny Tahiry : ny efitrany ihany no mamaritra ny sanda "
            "raisin'ny tsanganana (ohatra : id ISA(1,null)) ; ny null dia ekena amin'ny efitra "
            "rehetra.")


@pytest.mark.parametrize("text, word", [
    # SQL's column constraints, which Tahiry has none of, were told a ',' was forgotten
    # before them (`not`, `unique`, ...), or that `id` in `primary key (id)` wanted quotes.
    ("manamboara tabilao u (id ISA(0,10) not null);", "not null"),
    ("manamboara tabilao u (id ISA(0,10) NOT NULL, a ISA(0,1));", "NOT NULL"),
    ("manamboara tabilao u (id ISA(0,10) primary key);", "primary key"),
    ("manamboara tabilao u (id ISA(0,10) unique);", "unique"),
    ("manamboara tabilao u (id ISA(0,10) default 0);", "default"),
    ("manamboara tabilao u (id ISA(0,10) references mpianatra);", "references"),
    ("manamboara tabilao u (id ISA(0,10), primary key (id));", "primary key"),
    ("manamboara tabilao u (id ISA(0,10), a ISA(0,10), foreign key (a) references naoty (id));",
     "foreign key"),
])
def test_a_sql_column_constraint_says_tahiry_has_none(session, text, word):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and \
        message.endswith(no_constraint(word)), message
    assert translate(message, "en").endswith(
        f" Tahiry has no '{word}': a column's domain alone says which values it takes "
        "(e.g. id ISA(1,null)); null fits every domain.")


def test_a_column_named_like_a_constraint_is_no_constraint(session):
    message = one(session, "manamboara tabilao u (key ISA(0,10) b ISA(0,1));").message
    assert message.endswith(" Hadino angamba ny ',' teo alohan'ny 'b'?"), message


def test_not_in_a_views_query_is_still_the_not_operator(session):
    message = one(session, "manamboara jery v @ alaivo * ao@ naoty rehefa not naoty > 1;").message
    assert message.endswith(in_tahiry("!", "not")), message


@pytest.mark.parametrize("text, word", [
    # A ',' left at the end of a list (a habit of Python, JavaScript) listed the words
    # expected only; the same ',' before a clause word already had this hint.
    ("manampia ao@ naoty sanda (1, 'Algo', 12,);", ")"),
    ("manampia ao@ naoty (id, taranja, naoty,) sanda (1, 'Algo', 12);", ")"),
    ("manamboara tabilao u (id ISA(0,10), a ISA(0,1),);", ")"),
    ("alaivo count(id,) ao@ naoty;", ")"),
    ("manampia ao@ naoty sanda (1, 'Algo', 12),;", ";"),
    ("alaivo id, taranja,;", ";"),
    ("alaivo * ao@ naoty alaharo id,;", ";"),
])
def test_a_comma_left_at_the_end_of_a_list_is_said(session, text, word):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and message.endswith(
        f" Tafahoatra angamba ny ',' teo alohan'ny '{word}' : esory izy."), message
    assert translate(message, "en").endswith(f" Is the ',' before '{word}' one too many? Remove it.")


NUMBER_FORM = " Ny isa dia soratana tsy misy marika : {}."


@pytest.mark.parametrize("text, error, hint", [
    # A number written between quotes into a number column (a spreadsheet's export, a
    # habit of JSON) named the value and the domain only.
    ("manampia ao@ naoty sanda (1, 'Algo', '14');",
     "Ny sanda '14' dia tsy mifanaraka amin'ny efitra ISA(0,20) an'ny tsanganana 'naoty'",
     NUMBER_FORM.format("14")),
    ("havaozy naoty ova naoty = '12.5' rehefa id = 9;",
     "Ny sanda '12.5' dia tsy mifanaraka amin'ny efitra ISA(0,20) an'ny tsanganana 'naoty'",
     NUMBER_FORM.format("12.5")),
    # ... and a number into a text column, the quotes forgotten.
    ("manampia ao@ mpianatra sanda (1, 2024);",
     "Ny sanda 2024 dia tsy mifanaraka amin'ny efitra LAHATSORATRA(null,null) an'ny tsanganana "
     "'anarana'", quoted("2024")),
])
def test_a_value_of_the_wrong_type_says_how_it_is_written(tmp_path_factory, text, error, hint):
    session = prepared_session(tmp_path_factory, "types", SETUP + (
        "manampia ao@ naoty sanda (9, 'BD', 10);"))
    message = one(session, text).message
    assert message == "Hadisoana : " + error + hint, message
    english = translate(message, "en")
    assert "Hadisoana" not in english and ("A number is written without quotes: " in english
                                           or "If you meant a text" in english), english


@pytest.mark.parametrize("text", [
    "manampia ao@ naoty sanda (1, 'Algo', '25');",    # out of the domain as a number too
    "manampia ao@ naoty sanda (1, 'Algo', 'ABS');",   # no number
    "manampia ao@ naoty sanda (1, 'Algo', 25);",
])
def test_no_such_hint_when_the_other_form_would_be_refused_too(session, text):
    message = one(session, text).message
    assert message.endswith("an'ny tsanganana 'naoty'"), message


def unquoted_name(name: str) -> str:
    return f" Ny anarana dia tsy asiana marika : {name}."


@pytest.mark.parametrize("text, name", [
    # A name written between quotes (SQL's `AS "total"`, a database's name as a text)
    # said only that a name was expected and a text found.
    ("alaivo count(*) antso \"isa\" ao@ naoty;", "isa"),
    ("manamboara tahiry 'sekoly2';", "sekoly2"),
    ("ampiasao \"s\";", "s"),
    ("alaivo * ao@ 'naoty';", "naoty"),
    ("ravao ny tabilao 'naoty';", "naoty"),
    ("manamboara tabilao 'u' (a ISA(0,1));", "u"),
])
def test_a_name_between_quotes_says_names_take_none(session, text, name):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and \
        message.endswith(unquoted_name(name)), message
    assert translate(message, "en").endswith(f" A name takes no quotes: {name}.")


@pytest.mark.parametrize("text", [
    "alaivo 'a' 'b';",                       # a ',' forgotten as likely: that hint
    "alaivo count(*) 'isa' ao@ naoty;",
    "alaivo count(*) antso 'fetra' ao@ naoty;",   # unquoted, a reserved word
    "alaivo count(*) antso 'isa rehetra' ao@ naoty;",   # no name without its quotes
])
def test_no_unquoted_name_hint_where_it_would_not_be_one(session, text):
    assert "tsy asiana marika" not in one(session, text).message


@pytest.mark.parametrize("text, keyword, name", [
    # SQL's ORDER BY / GROUP BY with the Malagasy word: `by` was read as a column, and the
    # error on the next name suggested the set operator 'analana' for 'anarana', or a ','.
    ("alaivo anarana ao@ mpianatra alaharo by anarana;", "alaharo", "anarana"),
    ("alaivo anarana ao@ mpianatra alaharo BY anarana midina;", "alaharo", "anarana"),
    ("alaivo taranja, count(*) ao@ naoty vondrona by taranja;", "vondrona", "taranja"),
])
def test_by_after_alaharo_or_vondrona_says_it_is_not_written(session, text, keyword, name):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and message.endswith(
        f" Tsy misy 'by' aorian'ny '{keyword}' : {keyword} {name}"), message
    assert translate(message, "en").endswith(f" No 'by' after '{keyword}': {keyword} {name}")


@pytest.mark.parametrize("text, statements", [
    # SQL's `DROP TABLE a, b`: the error said only that ';' was expected at the ','.
    ("ravao ny tabilao naoty, mpianatra;", "ravao ny tabilao naoty; ravao ny tabilao mpianatra;"),
    ("RAVAO ny jery tsara,naoty;", "ravao ny jery tsara; ravao ny jery naoty;"),
])
def test_dropping_two_objects_at_once_says_one_statement_each(session, text, statements):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and message.endswith(
        f" Zavatra iray ihany no ravana isaky ny baiko : {statements}"), message
    assert translate(message, "en").endswith(f" One thing is dropped per statement: {statements}")
    assert one(session, "alaivo * ao@ naoty;").ok   # nothing was dropped


LIMIT_COMMA = (" Tsy misy ',' ao amin'ny 'fetra' : 'fetra A B' no manome ny andalana A ka "
               "hatramin'ny B-1 (manomboka amin'ny 0 ; ohatra : fetra 1 3).")


@pytest.mark.parametrize("text", [
    # MySQL's `LIMIT 1, 2`: the error listed the words expected only.
    "alaivo * ao@ naoty fetra 1, 2;",
    "alaivo * ao@ naoty alaharo naoty fetra 0,10;",
])
def test_a_comma_in_fetra_says_how_fetra_takes_two_numbers(session, text):
    message = one(session, text).message
    assert message.startswith("Hadisoana : Diso ny fanoratana") and message.endswith(
        LIMIT_COMMA), message
    assert translate(message, "en").endswith(
        " 'fetra' takes no ',': 'fetra A B' gives rows A to B-1 (counted from 0; e.g. fetra 1 3).")
