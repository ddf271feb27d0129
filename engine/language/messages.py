"""The catalogue of the engine's error messages, and their English translation.

Every error the engine can raise has one entry here: a stable `code`, its
Malagasy template (the wire text of docs/LANGUAGE.md, unchanged) and an
English template. The wire always carries the Malagasy text; a client that
wants English (`--lang en`) calls `translate(text, "en")` on what it got,
and `code_of(text)` names the entry a received text comes from.

Templates use `{name}` for a part copied as it is (a name, a value, a
number) and two typed forms:
- `{name:sentence}`: a part that is itself a catalogue text (the detail of a
  syntax error, the error of an aggregate's argument), translated in turn;
- `{name:word}`: a word of the language's vocabulary (a type or object
  kind: `isa`, `lahatsoratra`, `tabilao`, ...), translated by `WORDS`.
A placeholder used twice must match the same text twice.

The hints of docs/LANGUAGE.md 5b ("did you mean") are entries too, of kind
`hint`: sentences a message may end with; `translate` peels them off the
end and translates each.

Each raise site of the engine writes its own sentence, next to the check
that fails (the code reads as the message it gives); tests/engine/
test_messages.py reads every raise site and fails on a sentence with no
entry here. The hints are built here with `text(code, ...)`. Nothing here
runs on the success path but `text` for the one hint a success may end
with (a comparison with `null`: engine/evaluation/null_note.py);
`translate`, `translate_note` (that hint) and `code_of` are for clients.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from engine.errors import ENGLISH_ERROR_PREFIX, ERROR_PREFIX, STORAGE_FAULT_MARKER


@dataclass(frozen=True)
class Message:
    code: str       # stable, for clients and tests: 'no_database', 'syntax', ...
    malagasy: str   # the wire template
    english: str
    kind: str = "error"  # 'error'; 'detail' (inside a syntax error); 'hint'


# Vocabulary words that appear as placeholders' values (`{name:word}`, items of `{name:list}`).
WORDS = {
    "isa": "number", "lahatsoratra": "text", "booléen": "boolean", "null": "null",
    "sanda": "value", "tabilao": "table", "jery": "view", "efitra": "domain",
    "tahiry": "database", "anarana": "name", "fiovana": "changes", "tsanganana": "column",
    "mpampiasa": "user", "zo": "right",
    "isa sy lahatsoratra tsy azo alahatra": "a number and a text cannot be ordered",
    "booléen sy tsy booléen": "a boolean and a non-boolean",
    "tsy azo alahatra ny booléen": "booleans cannot be ordered",
}

_M = Message

CATALOGUE: tuple[Message, ...] = (
    # ---------------------------------------------------------------- databases and objects
    _M("no_database", "Tsy nisafidy tahiry ianao", "No database selected (use ampiasao DB first)"),
    _M("no_such_database", "Tsy misy ny tahiry : {name}", "No such database: {name}"),
    _M("no_such_object", "Tsy misy ny {kind:word} : {name}", "No such {kind:word}: {name}"),
    _M("database_exists", "Ny tahiry ({name}) dia efa misy", "The database ({name}) already exists"),
    _M("table_exists", "Ny tabilao : {name} dia efa misy", "The table {name} already exists"),
    _M("view_exists", "Ny jery : {name} dia efa misy", "The view {name} already exists"),
    _M("domain_exists", "Ny efitra : {name} dia efa misy", "The domain {name} already exists"),
    _M("no_such_table", "La table {database}.{name} n'as pas été trouvé",
       "Table {database}.{name} not found"),
    _M("drop_view_as_table", "Ny {name} dia jery fa tsy tabilao (ravao ny jery {name})",
       "{name} is a view, not a table (ravao ny jery {name})"),
    _M("drop_table_as_view", "Ny {name} dia tabilao fa tsy jery (ravao ny tabilao {name})",
       "{name} is a table, not a view (ravao ny tabilao {name})"),
    _M("view_not_writable", "Tsy azo soratana ny jery : {name} (tabilao ihany no azo ovaina)",
       "A view cannot be written: {name} (only tables can be changed)"),
    _M("cannot_show", "Tsy azo asehoy : {kind}", "Cannot show: {kind}"),
    _M("cannot_drop", "Tsy azo ravana : {kind}", "Cannot drop: {kind}"),
    _M("unknown_statement", "Baiko tsy fantatra : {kind}", "Unknown statement: {kind}"),
    _M("empty_statement", "Baiko foana", "Empty statement"),
    _M("statement_too_long", "Lava loatra ny baiko : {length} litera (max {max})",
       "Statement too long: {length} characters (max {max})"),
    _M("statement_too_long_at", "Lava loatra ny baiko : {length} litera (max {max}) (andalana {line})",
       "Statement too long: {length} characters (max {max}) (line {line})"),
    _M("internal_error", "Nisy olana tao anatin'ny motera (internal error)", "Internal engine error"),
    _M("too_deep_views", "Lalina loatra ny fangatahana (jery miantso ny tenany ve ?)",
       "Query nested too deep (does a view use itself?)"),
    _M("view_query_not_select", "Ny fangatahana voatahiry ao amin'ny jery dia tsy alaivo",
       "The query stored in the view is not an alaivo"),
    # ---------------------------------------------------------------- accounts and rights
    _M("account_exists", "Ny mpampiasa : {name} dia efa misy", "The account {name} already exists"),
    _M("account_gone", "Tsy misy intsony ny mpampiasa : {name} (midira amin'ny mpampiasa "
       "hafa : .login ANARANA \"...\"; na ./tahiry client --user ANARANA)",
       "The account {name} no longer exists (log in as another account: .login NAME \"...\"; "
       "or ./tahiry client --user NAME)"),
    _M("account_password_changed",
       "Niova ny tenimiafin'ny mpampiasa : {name} (midira indray amin'ny tenimiafina vaovao : "
       ".login {name} \"...\"; na ./tahiry client --user {name})",
       "The password of the account {name} changed (log in again with the new password: "
       ".login {name} \"...\"; or ./tahiry client --user {name})"),
    _M("last_admin", "Tsy azo fafana ny mpitantana farany : {name}",
       "The last administrator cannot be dropped: {name}"),
    _M("account_name_too_long", "Lava loatra ny anaran'ny mpampiasa (max {max} litera)",
       "The account name is too long (max {max} characters)"),
    _M("password_too_short", "Fohy loatra ny tenimiafina (farafahakeliny {min} litera)",
       "The password is too short (at least {min} characters)"),
    _M("password_blank", "Tsy azo atao elanelana fotsiny ny tenimiafina",
       "A password cannot be only spaces"),
    _M("grant_to_owner",
       "Ny mpampiasa : {account} no tompon'ny tahiry : {database} (manana ny zo rehetra ao izy)",
       "The account {account} owns the database {database} (it has every right there)"),
    _M("password_too_long", "Lava loatra ny tenimiafina (max {max} litera)",
       "The password is too long (max {max} characters)"),
    _M("right_read_missing", "Tsy manana zo mamaky ny tahiry {database} ianao",
       "You have no read right (mamaky) on the database {database}"),
    _M("right_write_missing", "Tsy manana zo manoratra ny tahiry {database} ianao",
       "You have no write right (manoratra) on the database {database}"),
    _M("right_owner_missing",
       "Ny tompon'ny tahiry {database} na ny mpitantana ihany no mahazo manao izany",
       "Only the owner of the database {database} or an administrator may do that"),
    _M("right_admin_missing", "Ny mpitantana ihany no mahazo manao izany",
       "Only an administrator may do that"),
    _M("right_own_password_only", "Ny tenimiafinao ihany no azonao ovaina",
       "You may change only your own password"),
    # Logins: the nodes' texts (nodes/protocol/login.py): the Malagasy sentence whole, then
    # the English in parentheses, as the nodes' other texts.
    _M("login_required", "Tsy mbola niditra ianao : alefaso aloha ny `.login <anarana> "
       "\"<tenimiafina>\";` (login required: send `.login <name> \"<password>\";` first)",
       "You are not logged in: send `.login <name> \"<password>\";` first"),
    _M("login_refused", "Diso ny anarana na ny tenimiafina : nakatona ny fifandraisana (wrong "
       "name or password: connection closed)", "Wrong name or password: connection closed"),
    _M("login_locked", "Voasakana vetivety ny fidirana : diso imbetsaka loatra ny fidirana avy "
       "amin'ity adiresy ity ; andramo indray afaka {seconds} s (locked out: too many failed "
       "logins from this address; try again in {seconds} s)",
       "Locked out: too many failed logins from this address; try again in {seconds} s"),
    _M("login_busy", "Be loatra ny fanandramana fidirana amin'ity node ity izao : nakatona ny "
       "fifandraisana, andramo indray afaka kelikely (too many login attempts on this node "
       "right now: connection closed, try again later)",
       "Too many login attempts on this node right now: connection closed, try again later"),
    _M("login_malformed", "Tsy mety ny fidirana : `.login <anarana> \"<tenimiafina>\";` no "
       "andrasana (malformed login: {why}; expected `.login <name> \"<password>\";`)",
       "Malformed login: {why}; expected `.login <name> \"<password>\";`"),
    # nodes/protocol/wire.py STUCK_REQUEST: a node's answer to a `;` inside a string or comment.
    _M("stuck_request", "Fahadisoana ara-pitsipika : tapitra tao anaty lahatsoratra na "
       "fanamarihana (`--`, `//`) ny fangatahana, ka tsy namarana azy ny `;` ; tsy nisy natao "
       "(ataovy miverina an-dalana aorian'ny fanamarihana `--`, akatony ny marika ' na \" "
       "rehetra) (syntax error: the request ended inside a string or a comment, so its `;` did "
       "not end it; nothing was run: end a `--` comment with a newline, close every quote)",
       "Syntax error: the request ended inside a string or a comment (`--`, `//`), so its `;` did "
       "not end it; nothing was run (end a `--` comment with a newline, close every quote)"),
    # ---------------------------------------------------------------- writes
    _M("column_twice", "Ny tsanganana '{name}' dia voatonona indroa", "Column '{name}' is named twice"),
    _M("view_column_twice",
       "Ny tsanganana '{name}' dia indroa ao amin'ny jery {view} : omeo anarana hafa ny iray "
       "amin'izy ireo (antso)",
       "Column '{name}' appears twice in view {view}: give one of them another name (antso)"),
    _M("insert_select_columns",
       "Tsy mitovy ny isan'ny tsanganana : {selected} avy amin'ny alaivo, {count} ao amin'ny "
       "tabilao {table}",
       "Column counts differ: {selected} from the alaivo, {count} in table {table}"),
    _M("insert_values_count",
       "Tsy mitovy ny isan'ny sanda ({values}) sy ny tsanganana ({count}) ao amin'ny tabilao {table}",
       "The number of values ({values}) differs from the number of columns ({count}) in table "
       "{table}"),
    # (With a column list, `manampia ao@ t (a, b) ...`: the columns it names.)
    _M("insert_select_named_columns",
       "Tsy mitovy ny isan'ny tsanganana : {selected} avy amin'ny alaivo, {count} voatonona "
       "ho an'ny tabilao {table}",
       "Column counts differ: {selected} from the alaivo, {count} named for table {table}"),
    _M("insert_values_named_count",
       "Tsy mitovy ny isan'ny sanda ({values}) sy ny tsanganana voatonona ({count}) ho an'ny "
       "tabilao {table}",
       "The number of values ({values}) differs from the number of columns named ({count}) "
       "for table {table}"),
    _M("insert_too_many_rows", "Be loatra ny andalana : {count} (max {max} isaky ny manampia)",
       "Too many rows: {count} (at most {max} per manampia)"),
    _M("text_too_long", "Lava loatra ny lahatsoratra ho an'ny tsanganana '{column}' (max {max})",
       "Text too long for column '{column}' (max {max})"),
    _M("table_full", "Feno ny tabilao {table} : {max} andalana farafahabetsany",
       "Table {table} is full: {max} rows at most"),
    # ---------------------------------------------------------------- domains
    _M("unknown_domain_atom", "Efitra tsy fantatra : {atom}", "Unknown domain: {atom}"),
    _M("empty_domain", "Efitra foana tsy azo ekena", "An empty domain is not allowed"),
    _M("bounds_reversed", "Ny {type}({low},{high}) dia tsy mety : min > max",
       "{type}({low},{high}) is not valid: min > max"),
    _M("no_columns", "Tabilao tsy misy tsanganana tsy azo ekena", "A table needs at least one column"),
    _M("number_not_storable", "Isa tsy azo tehirizina : {value}", "Number cannot be stored: {value}"),
    _M("number_too_large_64", "Lehibe loatra ny isa {value} (64 bits farafahabetsany)",
       "Number {value} too large (64 bits at most)"),
    _M("boolean_in_column",
       "Ny sanda {value} (boolean) dia tsy azo tehirizina ao amin'ny tsanganana '{column}'",
       "The value {value} (a boolean) cannot be stored in column '{column}'"),
    _M("empty_enum", "TANISA() foana : tsy maintsy misy sanda iray farafahakeliny",
       "Empty TANISA(): it needs at least one value"),
    _M("bad_bound", "Fetra tsy mety ao amin'ny {type} : {bound}", "Invalid bound in {type}: {bound}"),
    _M("bound_not_integer", "Ny fetran'ny {type} dia tsy maintsy isa feno : {bound}",
       "The bounds of {type} must be integers: {bound}"),
    _M("bad_enum_value", "Sanda tsy mety ao amin'ny TANISA : {value}", "Invalid value in TANISA: {value}"),
    _M("domain_violation",
       "Ny sanda {value} dia tsy mifanaraka amin'ny efitra {domain} an'ny tsanganana '{column}'",
       "The value {value} does not fit the domain {domain} of column '{column}'"),
    # ---------------------------------------------------------------- names and expressions
    _M("no_such_column", "Le champ '{name}' n'existe pas dans la relation.",
       "Column '{name}' does not exist in the relation."),
    _M("ambiguous_column",
       "Le champ '{name}' est ambigu. Il apparaît {count} fois dans la relation.",
       "Column '{name}' is ambiguous: it appears {count} times in the relation."),
    _M("not_grouped",
       "Ny champ '{name}' dia tsy ao amin'ny vondrona ary tsy ao anaty fonction d'agrégation.",
       "Column '{name}' is neither a vondrona (group) column nor inside an aggregate function."),
    _M("boolean_arithmetic",
       "Tsy azo atao ny '{op}' amin'ny booléen ({expr}) : isa ihany no azo kajiana.",
       "'{op}' cannot be applied to a boolean ({expr}): only numbers can be computed."),
    _M("needs_boolean_expression", "Ny '{op}' dia mila booléen, fa tsy booléen ny {expr}.",
       "'{op}' needs a boolean, but {expr} is not a boolean."),
    _M("needs_boolean_value", "Ny '{op}' dia mila booléen, fa {type:word} ny {value}.",
       "'{op}' needs a boolean, but {value} is a {type:word}."),
    _M("unknown_function", "Tsy fantatra ny fonction '{name}'.", "Unknown function '{name}'."),
    _M("star_only_count", "Ny {name}(*) dia tsy azo atao : count(*) ihany.",
       "{name}(*) is not allowed: only count(*)."),
    _M("function_arity", "Ny fonction {name} dia mila argument iray, fa {count} no nomena.",
       "Function {name} takes one argument, but {count} were given."),
    _M("aggregate_in_clause",
       "Tsy azo ampiasaina ao amin'ny '{clause}' ny fonction d'agrégation {expr}.",
       "The aggregate function {expr} cannot be used in '{clause}'."),
    _M("unknown_expression", "Tsy fantatra ny fomba fanoratra '{expr}'.",
       "Unknown kind of expression '{expr}'."),
    _M("compare_types", "Tsy azo ampitahaina amin'ny '{op}' ny {left} sy {right} : {reason:word}.",
       "{left} and {right} cannot be compared with '{op}': {reason:word}."),
    _M("order_boolean", "Tsy azo alahatra amin'ny '{op}' ny booléen ({expr}).",
       "Booleans cannot be ordered with '{op}' ({expr})."),
    _M("condition_not_boolean",
       "Ny fepetra ao amin'ny '{clause}' dia tsy maintsy booléen, fa tsy booléen ny {expr}.",
       "The condition of '{clause}' must be a boolean, but {expr} is not."),
    _M("boolean_not_storable", "Tsy azo tehirizina ao anaty tabilao ny booléen ({expr}).",
       "A boolean cannot be stored in a table ({expr})."),
    _M("arithmetic_types",
       "Tsy azo atao ny {operation} : isa ihany no azo kajiana, ary {type:word} ny {value}.",
       "Cannot compute {operation}: only numbers can be computed, and {value} is a {type:word}."),
    _M("result_too_large", "Lehibe loatra ny valin'ny {expr}.", "The result of {expr} is too large."),
    _M("division_by_zero", "Tsy azo zaraina amin'ny aotra : {expr}.", "Division by zero: {expr}."),
    _M("mixed_ordering", "Tsy azo alahatra miaraka ny sanda {kinds:list}.",
       "Values of kinds {kinds:list} cannot be ordered together."),
    # ---------------------------------------------------------------- queries
    _M("statement_too_deep", "Sarotra loatra ny fanambarana (lalina loatra).",
       "Statement too complex (nested too deep)."),
    _M("query_too_deep", "Sarotra loatra ny fangatahana (lalina loatra).",
       "Query too complex (nested too deep)."),
    _M("nested_aggregate", "Tsy azo atao ny fonction d'agrégation ao anatin'ny hafa : {expr}.",
       "An aggregate function cannot be inside another: {expr}."),
    _M("aggregate_of_boolean", "Ny {expr} dia tsy mandray booléen.", "{expr} does not take booleans."),
    _M("aggregate_needs_number", "Ny {expr} dia mila isa, fa {type:word} ny {value}.",
       "{expr} needs numbers, but {value} is a {type:word}."),
    _M("aggregate_orders_boolean", "Tsy azo alahatra ny booléen ao amin'ny {expr}.",
       "Booleans cannot be ordered in {expr}."),
    _M("aggregate_error", "{expr} : {error:sentence}", "{expr}: {error:sentence}"),
    _M("order_error", "alaharo {expr} : {error:sentence}", "alaharo {expr}: {error:sentence}"),
    _M("view_error", "jery {view} : {error:sentence}", "view {view}: {error:sentence}"),
    _M("order_position",
       "alaharo {position} : tsy misy tsanganana faha-{position} (tsanganana {count} no ao "
       "amin'ny valiny)",
       "alaharo {position}: there is no column {position} (the result has {count} columns)"),
    # The same wire text when the result has one column: its English says "1 column"
    # (the longer literal text makes this entry win over the one above).
    _M("order_position_one",
       "alaharo {position} : tsy misy tsanganana faha-{position} (tsanganana 1 no ao "
       "amin'ny valiny)",
       "alaharo {position}: there is no column {position} (the result has 1 column)"),
    _M("order_position_from_one",
       "alaharo {position} : manomboka amin'ny 1 ny laharan'ny tsanganana (1 ka hatramin'ny "
       "{count})",
       "alaharo {position}: column positions start at 1 (1 to {count})"),
    _M("order_constant",
       "alaharo {expr} : tsy mandahatra na inona na inona ny sanda raikitra (omeo ny "
       "anaran'ny tsanganana na ny laharany, ohatra : alaharo 1)",
       "alaharo {expr}: a constant orders nothing (give a column's name or its position, "
       "e.g. alaharo 1)"),
    _M("nesting_limit",
       "Lalina loatra ny fangatahana : mihoatra ny {max} ny jery sy fangatahana ao anatin'ny hafa.",
       "Query nested too deep: more than {max} views and queries inside one another."),
    _M("set_operation_columns", "Tsy mitovy ny isan'ny tsanganana amin'ny {op} : {left} sy {right}.",
       "The column counts of {op} differ: {left} and {right}."),
    _M("unknown_set_operation", "Tsy fantatra ny fandidiana '{op}'.", "Unknown operation '{op}'."),
    _M("derived_table_alias", "Tous les tables dérivé doit avoir leur propre alias",
       "Every derived table needs its own alias"),
    _M("view_cycle", "Ny jery '{name}' dia miantso ny tenany ({cycle}).",
       "View '{name}' uses itself ({cycle})."),
    _M("join_needs_source", "Ny tonona dia mila loharano 'ao@'.", "A join (tonona) needs an 'ao@' source."),
    _M("star_needs_source", "Ny 'alaivo *' dia mila loharano 'ao@'.", "'alaivo *' needs an 'ao@' source."),
    _M("alias_twice",
       "Ny anarana '{name}' dia ampiasaina indroa ao amin'ny fangatahana : omeo anarana hafa "
       "(antso) ny iray.",
       "The name '{name}' is used twice in the query: give one of them another name (antso)."),
    _M("natural_join_with_ka", "Ny tonona:natoraly dia tsy mandray 'ka'.",
       "A natural join (tonona:natoraly) takes no 'ka'."),
    _M("join_needs_ka", "Ny tonona:{kind} dia mila fepetra 'ka'.", "tonona:{kind} needs a 'ka' condition."),
    _M("star_with_group", "Tsy azo atao ny 'alaivo *' miaraka amin'ny vondrona.",
       "'alaivo *' cannot be used with vondrona (grouping)."),
    _M("join_too_large_natural",
       "Be loatra ny andalana tokony ampitahaina ({left} x {right}) amin'ny tonona:natoraly.",
       "Too many pairs of rows to compare ({left} x {right}) in the natural join."),
    _M("join_too_large",
       "Be loatra ny andalana tokony ampitahaina ({left} x {right}) amin'ny tonona tsy misy '=' "
       "eo amin'ny andaniny roa.",
       "Too many pairs of rows to compare ({left} x {right}) in a join without '=' between its "
       "two sides."),
    _M("time_limit",
       "Ela loatra ny fangatahana : mihoatra ny {seconds} segondra. Ampio fepetra (rehefa, ka) "
       "na fetra.",
       "Query too long: over {seconds} seconds. Add conditions (rehefa, ka) or a limit (fetra)."),
    _M("cancelled",
       "Najanona ny fangatahana : tsy miandry ny valiny intsony ny mpangataka.",
       "Query stopped: whoever asked is no longer waiting for the answer."),
    _M("stopped_by_administrator", "Najanon'ny mpitantana ny fangatahana.",
       "Query stopped by an administrator."),
    _M("too_many_result_rows",
       "Be loatra ny andalana ho an'ny valiny{count} : {max} ny fetra farany ambony. Ampio "
       "fepetra (rehefa, ka) na fetra.",
       "Too many rows in the result{count}: {max} at most. Add conditions (rehefa, ka) or a "
       "limit (fetra)."),
    _M("date_compared_with_text",
       "Tsy daty voasoratra 'YYYY-MM-DD' ny '{value}' ampitahaina amin'ny tsanganana DATY "
       "'{column}' (ohatra '2024-01-31').",
       "'{value}', compared with the DATY column '{column}', is not a date written "
       "'YYYY-MM-DD' (e.g. '2024-01-31')."),
    _M("date_compared_with_number",
       "Tsy daty ny {value} ampitahaina amin'ny tsanganana DATY '{column}' fa isa : soraty "
       "eo anelanelan'ny ' ny daty (ohatra '2024-01-31').",
       "{value}, compared with the DATY column '{column}', is a number, not a date: write a "
       "date between quotes (e.g. '2024-01-31')."),
    _M("too_many_join_rows",
       "Be loatra ny andalana ho an'ny fitambarana (tonona){count} : {max} ny fetra farany "
       "ambony. Ny fepetra 'ka' ihany no manakely ny fitambarana (ny 'rehefa' sy ny 'fetra' "
       "dia ampiharina aoriany) : ampifandraiso amin'ny tsanganana manavaka ny andalana "
       "(ohatra : ka x.id = y.id).",
       "Too many rows in the join{count}: {max} at most. Only 'ka' conditions make a join "
       "smaller ('rehefa' and 'fetra' apply after it): join on a column that tells rows apart "
       "(e.g. ka x.id = y.id)."),
    # ---------------------------------------------------------------- storage (nothing was written)
    _M("file_outside", "Ny rakitra {path} dia manondro ivelan'ny lahatahiry data (symlink), tsy ekena",
       "File {path} points outside the data directory (symlink): refused"),
    _M("file_corrupt", "Simba ny rakitra {path}", "File {path} is corrupt"),
    _M("file_unreadable", "Simba na tsy voavaky ny rakitra {path}", "File {path} is corrupt or unreadable"),
    _M("file_format", "Ny rakitra {path} dia manana format tsy fantatra ({format}, {known} no fantatra)",
       "File {path} has an unknown format ({format}; {known} is known)"),
    _M("journal_corrupt", "Simba ny diarin'ny rakitra {path}", "The journal of file {path} is corrupt"),
    _M("not_written", "Tsy voasoratra ny {what}", "Not written: {what}"),
    _M("file_not_written", "Tsy voasoratra ny rakitra {path} ({reason})",
       "File {path} not written ({reason})"),
    _M("lock_held",
       "Tsy voasoratra : mbola mihidy ny lahatahiry {folder} ({seconds} s) ; tsy nisy niova "
       "(rien n'a été écrit)",
       "Not written: folder {folder} still locked ({seconds} s); nothing changed"),
    _M("peer_unreachable",
       "Tsy voasoratra : tsy tratra ny mpizara {peer} ({reason}) ; tsy nisy niova (rien n'a "
       "été écrit)",
       "Not written: server {peer} cannot be reached ({reason}); nothing changed"),
    _M("write_failed", "Tsy voasoratra : {reason} ; tsy nisy niova (rien n'a été écrit)",
       "Not written: {reason}; nothing changed"),
    _M("write_fenced",
       "Tsy voasoratra ny {path} : efa manana dika vaovao kokoa (change {change}) i {holder} ; "
       "tsy nisy niova, andramo indray (écriture refusée : une copie plus récente existe "
       "ailleurs, rien n'a été écrit)",
       "{path} not written: {holder} already has a newer copy (change {change}); nothing "
       "changed, try again"),
    _M("pull_failed",
       "Tsy tafiditra ny dika vaovao kokoa an'i {path} avy amin'i {peer} ({reason}) ; tsy nisy niova",
       "The newer copy of {path} from {peer} could not be brought in ({reason}); nothing changed"),
    _M("outcome_unknown",
       "Tsy fantatra raha voasoratra na tsia ny {what:word} ({reason}) : mety efa tafiditra ny "
       "fiovana, mety tsia ; jereo aloha vao mamerina (outcome unknown : l'écriture a "
       "peut-être été appliquée, ou non)",
       "Unknown whether the {what:word} were written ({reason}): they may have been applied or "
       "not; look before running again (outcome unknown)"),
    _M("name_empty", "Anarana foana tsy azo ekena ho {kind:word}",
       "An empty name is not allowed for a {kind:word}"),
    _M("name_outside",
       "Ny anarana '{name}' dia tsy azo ekena ho {kind:word} : tsy mahazo mivoaka ny lahatahiry "
       "data (/, \\, .., NUL)",
       "The name '{name}' is not allowed for a {kind:word}: it may not leave the data directory "
       "(/, \\, .., NUL)"),
    _M("name_not_identifier",
       "Ny anarana '{name}' dia tsy azo ekena ho {kind:word} : litera na _ no manomboka azy, "
       "ary litera, isa na _ ihany no ao aminy",
       "The name '{name}' is not allowed for a {kind:word}: it starts with a letter or _ and "
       "holds only letters, digits and _"),
    _M("name_too_long", "Lava loatra ny anarana '{name}...' ho {kind:word} "
       "(max {max} litera sy {bytes} bytes UTF-8)",
       "Name '{name}...' too long for a {kind:word} (max {max} characters and {bytes} "
       "UTF-8 bytes)"),
    # ---------------------------------------------------------------- syntax
    _M("syntax", "Diso ny fanoratana (syntax) amin'ny andalana {line}, tsanganana {column} : "
       "{detail:sentence}",
       "Syntax error at line {line}, column {column}: {detail:sentence}"),
    _M("syntax_expected_reserved",
       "nandrasana {expected:list} fa '{found}' no hita ('{found}' dia teny voatokana, tsy azo "
       "atao anarana)",
       "expected {expected:list} but found '{found}' ('{found}' is a reserved word, not a name)",
       "detail"),
    _M("syntax_expected", "nandrasana {expected:list} fa '{found}' no hita",
       "expected {expected:list} but found '{found}'", "detail"),
    _M("syntax_expected_end", "nandrasana {expected:list} fa tapitra ny fanambarana",
       "expected {expected:list} but the statement ended", "detail"),
    _M("syntax_expected_string", "nandrasana {expected:list} fa lahatsoratra no hita",
       "expected {expected:list} but found a string", "detail"),
    _M("syntax_password_unquoted",
       "ny tenimiafina dia lahatsoratra eo anelanelan'ny marika \" na ' "
       "(ohatra tenimiafina \"...\")",
       "a password is a string between \" or ' (e.g. tenimiafina \"...\")", "detail"),
    _M("syntax_ended", "tapitra tampoka ny fanambarana", "the statement ended too early", "detail"),
    _M("syntax_unexpected", "tsy nandrasana '{found}' teto", "'{found}' was not expected here", "detail"),
    _M("syntax_chained_comparison",
       "tsy azo atohy ny fampitahana (ohatra '1 < 2 < 3'): ampiasao 'ary'",
       "comparisons cannot be chained (e.g. '1 < 2 < 3'): use 'ary'", "detail"),
    _M("syntax_one_statement", "fanambarana iray ihany no azo atao eto",
       "only one statement is allowed here", "detail"),
    _M("syntax_unterminated_string", "tsy voafarana ny lahatsoratra manomboka eto",
       "unterminated string starting here", "detail"),
    _M("syntax_unknown_character", "marika tsy fantatra {char}", "unknown character {char}", "detail"),
    _M("syntax_not_utf8", "litera tsy UTF-8 {char}", "character not in UTF-8 {char}", "detail"),
    _M("syntax_bad_number", "isa tsy mety '{text}' (isa toy ny 12 na 12.5 ihany)",
       "invalid number '{text}' (numbers like 12 or 12.5 only)", "detail"),
    _M("syntax_number_too_large", "isa lehibe loatra", "number too large", "detail"),
    _M("syntax_qualified_star",
       "tsy misy '{name}.*' amin'ny Tahiry : alaivo * (ny tsanganana rehetra) na ny "
       "tsanganana tsirairay ({name}.a, {name}.b, ...)",
       "Tahiry has no '{name}.*': write alaivo * (every column) or each column ({name}.a, "
       "{name}.b, ...)", "detail"),
    _M("syntax_bad_name", "anarana diso '{name}.' (table.colonne ihany, tsy misy elanelana)",
       "invalid name '{name}.' (table.column only, without spaces)", "detail"),
    _M("syntax_reserved_word", "'{word}' dia teny voatokana, tsy azo atao anarana",
       "'{word}' is a reserved word, it cannot be a name", "detail"),
    _M("syntax_join_kind_expected", "nandrasana karazana tonona na '@' taorian'ny 'tonona:'",
       "expected a join kind or '@' after 'tonona:'", "detail"),
    _M("syntax_unknown_join_kind",
       "karazana tonona tsy fantatra '{kind}' (anatiny, avia, ankavia, avanana, ankavanana, "
       "feno, natoraly)",
       "unknown join kind '{kind}' (anatiny, avia, ankavia, avanana, ankavanana, feno, natoraly)",
       "detail"),
    _M("syntax_hash",
       "'#' dia tsy azo atao afa-tsy eo alohan'ny teny fototra (ao@, rehefa, tonona, ka, "
       "vondrona, alaharo, fetra, antso, ...)",
       "'#' is only allowed right before a clause keyword (ao@, rehefa, tonona, ka, vondrona, "
       "alaharo, fetra, antso, ...)", "detail"),
    _M("syntax_parentheses_too_deep", "lalina loatra ny fanaovana fonon-teny (mihoatra ny {max})",
       "parentheses nested too deep (more than {max})", "detail"),
    _M("syntax_expression_too_deep", "lalina loatra ny fanehoana (mihoatra ny {max} ambaratonga)",
       "expression nested too deep (more than {max} levels)", "detail"),
    _M("syntax_too_complex", "sarotra loatra ny fanambarana", "statement too complex", "detail"),
    _M("syntax_unreadable", "fanambarana tsy azo vakiana", "unreadable statement", "detail"),
    _M("syntax_expected_select", "nandrasana fanontaniana 'alaivo'", "expected an 'alaivo' query",
       "detail"),
    _M("syntax_not_base_type",
       "'{name}' dia tsy karazana fototra (ISA, LAHATSORATRA, DATY, TANISA): tsy mandray "
       "fari-pahalehibeazana",
       "'{name}' is not a base type (ISA, LAHATSORATRA, DATY, TANISA): it takes no bounds",
       "detail"),
    _M("syntax_two_bounds", "ny {type} dia mila fari-pahalehibeazana roa: {type}(min,max)",
       "{type} needs two bounds: {type}(min,max)", "detail"),
    _M("syntax_bounds_numbers", "ny fari-pahalehibeazan'ny {type} dia isa na null",
       "the bounds of {type} are numbers or null", "detail"),
    _M("syntax_bounds_integers", "ny fari-pahalehibeazan'ny {type} dia isa manontolo na null",
       "the bounds of {type} are integers or null", "detail"),
    _M("syntax_bounds_lengths", "ny fari-pahalehibeazan'ny {type} dia halava : isa manontolo >= 0 "
       "na null", "the bounds of {type} are lengths: integers >= 0 or null", "detail"),
    _M("syntax_date_bounds", "ny DATY dia tsy manana fari-pahalehibeazana", "DATY takes no bounds",
       "detail"),
    _M("syntax_enum_empty", "ny TANISA dia mila sanda iray farafahakeliny",
       "TANISA needs at least one value", "detail"),
    _M("syntax_enum_null", "ny TANISA dia tsy mandray null", "TANISA does not take null", "detail"),
    _M("syntax_join_needs_ka", "ny '{join}' dia mila fepetra 'ka'", "'{join}' needs a 'ka' condition",
       "detail"),
    _M("syntax_natural_with_ka", "ny 'tonona:natoraly' dia tsy mandray fepetra 'ka'",
       "'tonona:natoraly' takes no 'ka' condition", "detail"),
    _M("syntax_limit", "ny 'fetra' dia mandray isa manontolo tsy negatifa ihany",
       "'fetra' takes non-negative integers only", "detail"),
    # ---------------------------------------------------------------- hints (docs/LANGUAGE.md 5b)
    _M("hint_did_you_mean", " Angamba '{suggestion}' no tianao hosoratana (fa tsy '{word}')?",
       " Did you mean '{suggestion}' (not '{word}')?", "hint"),
    _M("hint_english_keyword", " Amin'ny Tahiry, '{keyword}' no ilazana ny '{word}'.",
       " In Tahiry, '{word}' is written '{keyword}'.", "hint"),
    _M("hint_written_otherwise",
       " Tsy misy '{word}' amin'ny Tahiry ; toy izao no anoratana azy : {instead}",
       " Tahiry has no '{word}'; it is written like this: {instead}", "hint"),
    _M("hint_missing_semicolon", " Hadino angamba ny ';' teo alohan'ny '{word}'?",
       " Was the ';' before '{word}' forgotten?", "hint"),
    _M("hint_subquery",
       " Ny fangatahana (alaivo ...) dia tsy azo atao ao anaty fanehoana : ataovy ho tabilao "
       "nalaina aorian'ny 'ao@' na 'tonona' (ohatra : {example})",
       " A query (alaivo ...) cannot stand inside an expression: make it a derived table "
       "after 'ao@' or 'tonona' (e.g. {example})", "hint"),
    _M("hint_tsy",
       " Ny 'tsy' dia ao amin'ny 'dia tsy null' ihany : '!' no ilazana ny NOT (ohatra : "
       "rehefa !(a = 1)).",
       " 'tsy' is only used in 'dia tsy null': NOT is written '!' (e.g. rehefa !(a = 1)).",
       "hint"),
    _M("hint_comma_join",
       " Ny faingo (,) dia tsy mampitambatra tabilao amin'ny Tahiry : 'tonona' no ampiasaina "
       "(ohatra : alaivo * ao@ a tonona b ka a.id = b.id ; tsy misy 'ka' : ny vokatra "
       "kartezianina)",
       " In Tahiry a comma does not join tables: 'tonona' does (e.g. alaivo * ao@ a tonona b "
       "ka a.id = b.id; without 'ka': the cross product)", "hint"),
    _M("hint_quoted_text",
       " Raha lahatsoratra no tianao, soraty eo anelanelan'ny ' : '{word}'.",
       " If you meant a text, write it between quotes: '{word}'.", "hint"),
    _M("hint_group_filter",
       " Ny 'rehefa' dia mialoha ny 'vondrona' ; ny vondrona kosa dia sivanina toy izao : "
       "{example}",
       " 'rehefa' comes before 'vondrona'; groups are filtered like this: {example}", "hint"),
    _M("hint_clause_order",
       " Ny '{word}' dia mialoha ny '{later}' ; izao no filaharan'ny fizarana : alaivo ... "
       "ao@ ... tonona ... ka ... rehefa ... vondrona ... alaharo ... fetra ...",
       " '{word}' comes before '{later}'; the clauses go in this order: alaivo ... ao@ ... "
       "tonona ... ka ... rehefa ... vondrona ... alaharo ... fetra ...", "hint"),
    _M("hint_no_constraint",
       " Tsy misy '{word}' amin'ny Tahiry : ny efitrany ihany no mamaritra ny sanda "
       "raisin'ny tsanganana (ohatra : id ISA(1,null)) ; ny null dia ekena amin'ny efitra "
       "rehetra.",
       " Tahiry has no '{word}': a column's domain alone says which values it takes (e.g. "
       "id ISA(1,null)); null fits every domain.", "hint"),
    _M("hint_other_table",
       " Ny '{column}' dia tsanganana ao amin'ny tabilao {table}, izay tsy ao amin'ity "
       "fangatahana ity : ampidiro amin'ny 'tonona' izy (ohatra : {example})",
       " '{column}' is a column of table {table}, which this query does not read: join it "
       "with 'tonona' (e.g. {example})", "hint"),
    _M("hint_clause_after_semicolon",
       " Tsy manomboka baiko ny '{word}' : ny ';' teo alohany no namarana ny baiko teo aloha "
       "(nalefa tsy nisy azy) ; esory io ';' io.",
       " '{word}' does not start a statement: the ';' before it ended the statement before "
       "(sent without it); remove that ';'.", "hint"),
    _M("hint_forgot_ao", " Hadino angamba ny 'ao@' teo alohan'ny '{word}'? ({example})",
       " Was the 'ao@' before '{word}' forgotten? ({example})", "hint"),
    _M("hint_update_no_ao",
       " Tsy misy 'ao@' aorian'ny 'havaozy' : havaozy TABILAO ova a = 1 rehefa ...",
       " No 'ao@' after 'havaozy': havaozy TABLE ova a = 1 rehefa ...", "hint"),
    _M("hint_plain_quotes",
       " Ny lahatsoratra dia soratana eo anelanelan'ny ' na \" tsotra (ohatra : 'Alice') ; ny "
       "anarana kosa tsy asiana marika.",
       " A text is written between plain ' or \" quotes (e.g. 'Alice'); a name takes none.",
       "hint"),
    _M("hint_select_alias",
       " Ny '{alias}' dia anarana nomena tao amin'ny 'alaivo' (antso), fantatry ny 'alaharo' "
       "ihany : soraty eto ny fanehoana, {expression}.",
       " '{alias}' is a name given in the select list (antso), known only in 'alaharo': "
       "write the expression here, {expression}.", "hint"),
    _M("hint_select_alias_aggregate",
       " Ny '{alias}' dia anarana nomena tao amin'ny 'alaivo' (antso), fantatry ny 'alaharo' "
       "ihany : ny vondrona dia sivanina toy izao : {example}",
       " '{alias}' is a name given in the select list (antso), known only in 'alaharo': "
       "groups are filtered like this: {example}", "hint"),
    _M("hint_date_form",
       " Ny daty dia soratana 'YYYY-MM-DD' eo anelanelan'ny ' (ohatra '2024-01-31').",
       " A date is written 'YYYY-MM-DD' between quotes (e.g. '2024-01-31').", "hint"),
    _M("hint_limit_comma",
       " Tsy misy ',' ao amin'ny 'fetra' : 'fetra A B' no manome ny andalana A ka hatramin'ny "
       "B-1 (manomboka amin'ny 0 ; ohatra : fetra 1 3).",
       " 'fetra' takes no ',': 'fetra A B' gives rows A to B-1 (counted from 0; e.g. fetra 1 3).",
       "hint"),
    _M("hint_drop_one", " Zavatra iray ihany no ravana isaky ny baiko : {statements}",
       " One thing is dropped per statement: {statements}", "hint"),
    _M("hint_no_by", " Tsy misy 'by' aorian'ny '{keyword}' : {keyword} {name}",
       " No 'by' after '{keyword}': {keyword} {name}", "hint"),
    _M("hint_unquoted_name", " Ny anarana dia tsy asiana marika : {name}.",
       " A name takes no quotes: {name}.", "hint"),
    _M("hint_unquoted_number", " Ny isa dia soratana tsy misy marika : {number}.",
       " A number is written without quotes: {number}.", "hint"),
    _M("hint_aggregate_filter",
       " Ny 'rehefa' dia manivana ny andalana alohan'ny hanaovana ny vondrona ; ny vondrona "
       "kosa dia sivanina toy izao : {example}",
       " 'rehefa' filters the rows before the groups are made; groups are filtered like "
       "this: {example}", "hint"),
    _M("hint_dia_value",
       " Ny 'dia' dia ao amin'ny 'dia null' sy 'dia tsy null' ihany : '=' sy '!=' no "
       "mampitaha sanda (ohatra : rehefa a = 1).",
       " 'dia' is only used in 'dia null' and 'dia tsy null': values are compared with '=' "
       "and '!=' (e.g. rehefa a = 1).", "hint"),
    _M("hint_functions", " Ireto ihany no fonction ao amin'ny Tahiry : {names}.",
       " Tahiry's only functions are: {names}.", "hint"),
    _M("hint_repeat_operand",
       " Samy manana ny sanda ampitahainy ny fampitahana tsirairay : {example}.",
       " Each comparison names what it compares: {example}.", "hint"),
    _M("hint_missing_comma", " Hadino angamba ny ',' teo alohan'ny '{word}'?",
       " Was the ',' before '{word}' forgotten?", "hint"),
    _M("hint_comma_before", " Tafahoatra angamba ny ',' teo alohan'ny '{word}' : esory izy.",
       " Is the ',' before '{word}' one too many? Remove it.", "hint"),
    _M("hint_not_grouped",
       " Ampio ao amin'ny vondrona izy (vondrona {groups}) na ataovy ao anaty fonction "
       "d'agrégation (ohatra : count({name}), max({name})).",
       " Add it to the vondrona (vondrona {groups}) or put it inside an aggregate function "
       "(e.g. count({name}), max({name})).", "hint"),
    _M("hint_insert_columns", " Ny tsanganana, araka ny filaharany : {columns}.",
       " The columns, in order: {columns}.", "hint"),
    _M("hint_insert_row", " (Andalana faha-{row} amin'ny sanda.)", " (Row {row} of the values.)",
       "hint"),
    _M("hint_qualify", " Soraty miaraka amin'ny anaran'ny tabilao misy azy : {names}.",
       " Write it with the name of its table: {names}.", "hint"),
    _M("hint_reserved_name",
       " Omeo anarana tsy teny voatokana izy, ohatra : {instead}.",
       " Give it a name that is not a reserved word, e.g. {instead}.", "hint"),
    _M("hint_no_source", " Tsy misy 'ao@' ity fangatahana ity : alaivo ... ao@ TABILAO;",
       " This query has no 'ao@': alaivo ... ao@ TABLE;", "hint"),
    # The one hint of a success: a comparison with the `null` literal (engine/evaluation/null_note.py).
    _M("hint_null_comparison",
       " Tsy marina mihitsy ny '{comparison}', na dia null aza ny sanda : {test} no "
       "manamarina ny null.",
       " '{comparison}' is never true, not even when the value is null: {test} is what "
       "tests for null.", "hint"),
    # ... of an ordering (`n > null`), whose meaning is not known: both tests, "or" in English.
    _M("hint_null_ordering",
       " Tsy marina mihitsy ny '{comparison}', na dia null aza ny sanda : {is_null} na "
       "{is_not_null} no manamarina ny null.",
       " '{comparison}' is never true, not even when the value is null: {is_null} or "
       "{is_not_null} is what tests for null.", "hint"),
)


def text(code: str, **values: object) -> str:
    """The Malagasy sentence of `code` with `values` filled in (the wire text)."""
    return _FIELD.sub(lambda m: str(values[m.group(1)]), by_code()[code].malagasy)


def english(code: str, **values: object) -> str:
    """The English sentence of `code` with `values` filled in (no translation of parts)."""
    return _FIELD.sub(lambda m: str(values[m.group(1)]), by_code()[code].english)


def translate(text: str, lang: str) -> str:
    """`text`, an error as the wire carries it, in `lang` ("en" or "mg").

    Unchanged when `lang` is "mg" (or unknown) or the text is not recognised.
    The `Hadisoana : ` prefix becomes `Error: `; a storage fault's marker
    (` [storage:read]`) is kept as it is, for the same reasons as on the wire.
    """
    if lang != "en":
        return text
    body, prefix, marker = _body(text)
    translated = _translate_sentence(body, with_hints=True)
    if translated is None:
        return text
    return prefix + translated + marker


def translate_note(message: str, lang: str) -> str:
    """`message`, a success as the wire carries it, with the note it may end with in `lang`.

    The note (a comparison with `null`: engine/evaluation/null_note.py) is a
    hint of the catalogue and translates as an error's does; the message's
    beginning (`N andalana`, `Tafinditra ...`) is the wire's text, which
    clients read, and stays as it is. Unchanged without a note.
    """
    if lang != "en":
        return message
    body, suffix = _peel_hints(message)
    return body + suffix if suffix else message


def code_of(text: str) -> str | None:
    """The catalogue code of a wire error text (hints and storage marker aside), or None."""
    body = _body(text)[0]
    found = _match_sentence(_peel_hints(body)[0])
    return None if found is None else found[0].code


def _body(text: str) -> tuple[str, str, str]:
    """(sentence, English prefix, storage marker) of a wire error text."""
    body, prefix = text, ""
    if body.startswith(ERROR_PREFIX):
        body, prefix = body[len(ERROR_PREFIX):], ENGLISH_ERROR_PREFIX
    marker = ""
    start = body.rfind(STORAGE_FAULT_MARKER)
    if start >= 0 and body.endswith("]"):
        body, marker = body[:start], body[start:]
    return body, prefix, marker


# ---------------------------------------------------------------- matching

_FIELD = re.compile(r"\{(\w+)(?::(\w+))?\}")
# `{x:list}`: "'ao@', anarana na ';'" -> "'ao@', name or ';'" (quoted items kept).
_LIST_SEPARATOR = re.compile(r"(?<=\S) (?:na|sy) (?=\S)")
_LIST_WORDS = {" na ": " or ", " sy ": " and "}
_LIST_ITEM = re.compile(r"(?<![\w'])(?:anarana|isa|lahatsoratra|booléen)(?![\w'])")


def _list_item(match: re.Match) -> str:
    return WORDS[match.group()]


@dataclass(frozen=True)
class _Pattern:
    message: Message
    regex: re.Pattern
    kinds: dict[str, str]   # placeholder -> '', 'sentence' or 'word'


@lru_cache(maxsize=1)
def by_code() -> dict[str, Message]:
    """The catalogue keyed by code."""
    return {message.code: message for message in CATALOGUE}


def _compile(message: Message) -> _Pattern:
    parts, kinds, position = [], {}, 0
    for field in _FIELD.finditer(message.malagasy):
        parts.append(re.escape(message.malagasy[position:field.start()]))
        name, kind = field.group(1), field.group(2) or ""
        parts.append(f"(?P={name})" if name in kinds else f"(?P<{name}>.*?)")
        kinds[name] = kind
        position = field.end()
    parts.append(re.escape(message.malagasy[position:]))
    return _Pattern(message, re.compile("".join(parts), re.DOTALL), kinds)


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[_Pattern, ...], tuple[_Pattern, ...]]:
    """(sentence patterns, hint patterns); the most literal text first, so a
    specific template wins over a general one (`{what} : {sentence}`)."""
    def literal_length(pattern: _Pattern) -> int:
        return len(_FIELD.sub("", pattern.message.malagasy))

    compiled = sorted((_compile(m) for m in CATALOGUE), key=literal_length, reverse=True)
    return (tuple(p for p in compiled if p.message.kind != "hint"),
            tuple(p for p in compiled if p.message.kind == "hint"))


def _peel_hints(body: str) -> tuple[str, str]:
    """(the text without its ending hints, those hints in English)."""
    hints = _patterns()[1]
    suffix = ""
    peeled = True
    while peeled:
        peeled = False
        for pattern in hints:
            # A hint is the last sentence: try it at each of its possible starts.
            for start in _starts(body, pattern.message.malagasy):
                filled = _fill(pattern, pattern.regex.fullmatch(body, start))
                if filled is not None:
                    body, suffix = body[:start], filled + suffix
                    peeled = True
                    break
            if peeled:
                break
    return body, suffix


def _match_sentence(body: str) -> tuple[Message, str] | None:
    """(the catalogue entry of `body`, `body` in English), or None."""
    for pattern in _patterns()[0]:
        filled = _fill(pattern, pattern.regex.fullmatch(body))
        if filled is not None:
            return pattern.message, filled
    return None


def _translate_sentence(body: str, with_hints: bool = False) -> str | None:
    suffix = ""
    if with_hints:
        body, suffix = _peel_hints(body)
    found = _match_sentence(body)
    if found is None:
        return None
    filled = found[1]
    if suffix and not filled.endswith((".", "?", "!", ")")):
        filled += "."  # the English hint is a sentence of its own
    return filled + suffix


def _starts(body: str, template: str):
    head = _FIELD.split(template, maxsplit=1)[0]
    start = body.rfind(head)
    while start >= 0:
        yield start
        start = body.rfind(head, 0, start)


def _fill(pattern: _Pattern, match: re.Match | None) -> str | None:
    if match is None:
        return None
    values = {}
    for name, kind in pattern.kinds.items():
        value = match.group(name)
        if kind == "sentence":
            value = _translate_sentence(value)
            if value is None:  # a general template (`{expr} : {error}`) must not claim any text
                return None
        elif kind == "word":
            value = WORDS.get(value, value)
        elif kind == "list":
            value = _LIST_SEPARATOR.sub(
                lambda m: _LIST_WORDS[m.group()], _LIST_ITEM.sub(_list_item, value))
        values[name] = value
    return _FIELD.sub(lambda m: values[m.group(1)], pattern.message.english)
