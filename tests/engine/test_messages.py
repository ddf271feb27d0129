"""engine.language.messages: the error catalogue and `translate(text, lang)`.

Coverage is checked two ways: every message template at a raise site of
the engine (read from the source with `ast`) has an entry, and real errors
of a session (syntax ones included, whose details are assembled) translate.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine.language.messages import CATALOGUE, by_code, code_of, text, translate, translate_note
from engine.session import Session
from engine.storage.store import Store

ENGINE = Path(__file__).resolve().parents[2] / "engine"
# Calls whose first argument is an error sentence (or a syntax error's detail).
RAISERS = {"TahiryError", "StorageFault", "SyntaxProblem", "syntax_error", "WriteOutcomeUnknown",
           "BatchPartlyWritten", "BatchNotWritten", "BatchFenced", "TahirySyntaxError"}
# A sample of a placeholder that is itself a catalogue sentence.
SENTENCE_SAMPLE = "Baiko foana"


def _template(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The sentence an argument builds, each formatted value replaced by a sample."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(value.value)
            else:
                source = ast.unparse(value.value)
                parts.append(SENTENCE_SAMPLE if source.endswith(("sentence", "detail")) else "X")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left, constants), _template(node.right, constants)
        return None if left is None or right is None else left + right
    return None


def raise_site_templates() -> list[tuple[str, str]]:
    """(where, sample sentence) of every error sentence written at a raise site in engine/."""
    found = []
    for path in sorted(ENGINE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {target.id: node.value.value for node in tree.body
                     if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                     and isinstance(node.value.value, str)
                     for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in RAISERS:
                sample = _template(node.args[0], constants)
                if sample is not None:
                    found.append((f"{path.relative_to(ENGINE.parent)}:{node.lineno}", sample))
    return found


def test_the_raise_sites_are_found():
    templates = raise_site_templates()
    assert len(templates) > 100
    assert any(sample == "Tsy nisafidy tahiry ianao" for _, sample in templates)


def test_every_error_written_at_a_raise_site_has_a_catalogue_entry():
    missing = [(where, sample) for where, sample in raise_site_templates()
               if translate("Hadisoana : " + sample, "en") == "Hadisoana : " + sample]
    assert missing == []


def test_codes_are_unique_and_templates_distinct():
    assert len(by_code()) == len(CATALOGUE)
    assert len({m.malagasy for m in CATALOGUE}) == len(CATALOGUE)
    assert all(m.kind in ("error", "detail", "hint") for m in CATALOGUE)


@pytest.mark.parametrize("wire, english", [
    ("Hadisoana : Tsy nisafidy tahiry ianao", "Error: No database selected (use ampiasao DB first)"),
    ("Hadisoana : La table s.t n'as pas été trouvé", "Error: Table s.t not found"),
    ("Hadisoana : Le champ 'x' n'existe pas dans la relation.",
     "Error: Column 'x' does not exist in the relation."),
    ("Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 8 : nandrasana "
     "'(', anarana, isa na ';' fa 'x' no hita",
     "Error: Syntax error at line 1, column 8: expected '(', name, number or ';' but found 'x'"),
    ("Hadisoana : Ny SUM(a) : Tsy azo alahatra miaraka ny sanda isa sy lahatsoratra.",
     "Error: Ny SUM(a): Values of kinds number and text cannot be ordered together."),
    ("Hadisoana : Simba ny rakitra s/tables/t.json [storage:read]",
     "Error: File s/tables/t.json is corrupt [storage:read]"),
    ("Hadisoana : Tsy misy ny efitra : d", "Error: No such domain: d"),
    ("Hadisoana : La table s.tt n'as pas été trouvé Angamba 't' no tianao hosoratana (fa tsy 'tt')?",
     "Error: Table s.tt not found. Did you mean 't' (not 'tt')?"),
])
def test_a_wire_error_is_translated_to_english(wire, english):
    assert translate(wire, "en") == english


def test_mg_and_unknown_texts_are_returned_unchanged():
    wire = "Hadisoana : Tsy nisafidy tahiry ianao"
    assert translate(wire, "mg") == wire
    assert translate("Hadisoana : something new", "en") == "Hadisoana : something new"
    assert translate("Ny tahiry : s dia miasa ankehitriny", "en") == "Ny tahiry : s dia miasa ankehitriny"
    # A general template ("{expr} : {error}") does not claim a text whose parts are unknown.
    assert translate("Hadisoana : a : b", "en") == "Hadisoana : a : b"


def test_code_of_names_the_entry_of_a_wire_text():
    assert code_of("Hadisoana : Tsy nisafidy tahiry ianao") == "no_database"
    assert code_of("Hadisoana : La table s.tt n'as pas été trouvé "
                   "Angamba 't' no tianao hosoratana (fa tsy 'tt')?") == "no_such_table"
    assert code_of("Hadisoana : Simba ny rakitra s/t.json [storage:read]") == "file_corrupt"
    assert code_of("Hadisoana : something new") is None


def test_text_fills_the_wire_template():
    assert text("no_such_database", name="s") == "Tsy misy ny tahiry : s"


FAILING = """\
alaivo * ao@ t;
manamboara tahiry s; ampiasao s;
manamboara tabilao t (a ISA(0,10), b LAHATSORATRA(null,null), c DATY);
manamboara tabilao t (a ISA(0,10));
manamboara tabilao u (a ISA(5,1));
manamboara tabilao u (a ISA(0,1), A ISA(0,1));
manamboara tabilao u (a tsisy);
manampia ao@ t sanda (11, 'x', null);
manampia ao@ t sanda (1);
manampia ao@ t (a, a) sanda (1, 2);
manampia ao@ t sanda (1, 'x', '2020-01-01');
alaivo z ao@ t;
alaivo * ao@ tsisy;
alaivo a + b ao@ t;
alaivo -b ao@ t;
alaivo 1 / 0;
alaivo * ao@ t rehefa a;
alaivo sum(b) ao@ t;
alaivo b, count(*) ao@ t vondrona a;
alaivo foo(a) ao@ t;
alaivo count(a, b) ao@ t;
alaivo * ao@ t x tonona t x ka x.a = x.a;
alaivo * ao@ t tonona:avia@ t;
alaivo a ao@ t ankambana alaivo a, b ao@ t;
alaivo * ao@ (alaivo 1) antso d tonona:natoraly@ t ka 1 = 1;
alaivo * ao@ t rehefa count(a) > 1;
alaivo a ao@ t alaharo sum(sum(a));
alaivo (1 = 1) + 1;
alaivo 1 < 2 < 3;
alaivo 1.;
alaivo * ao@ t fetra 1.5;
alaivo a ao@ t.;
manamboara tabilao v (a TANISA());
manamboara tabilao v (a DATY(1));
manamboara tabilao v (a ISA(1));
manamboara tabilao v (a LAHATSORATRA(1.5, 2));
alaivo $;
alaivo * ao t;
alaivo a ao@ t #x;
ravao ny jery t;
ravao ny tabilao tsisy;
ampiasao tsisy;
manamboara tahiry s;
alaivo 1 +
;
alaivo 'abc;
"""


def test_the_sessions_own_failures_translate(tmp_path):
    from engine.evaluation.executor import Limits
    from engine.session import INTERNAL_ERROR, TOO_DEEP

    session = Session(Store(tmp_path / "data"), limits=Limits(max_statement_chars=20))
    texts = [INTERNAL_ERROR, TOO_DEEP, session.execute_one("").message,
             session.execute_one("alaivo 1 + 1 + 1 + 1 + 1;").message]
    # A piece of a streamed script adds its line (engine/session.py, run_piece).
    texts.append(texts[-1] + " (andalana 2)")
    assert [m for m in texts if translate(m, "en").startswith("Hadisoana")] == []


def test_every_error_of_a_session_translates(tmp_path):
    session = Session(Store(tmp_path / "data"))
    failures = [outcome.message for outcome in session.execute(FAILING) if not outcome.ok]
    assert len(failures) >= 35
    untranslated = [m for m in failures if translate(m, "en") == m or "Hadisoana" in translate(m, "en")]
    assert untranslated == []


def test_the_nodes_stuck_request_answer_translates():
    """Answered by a node, not raised by the engine: read from nodes/protocol/wire.py."""
    from nodes.protocol.wire import STUCK_REQUEST

    english = translate(STUCK_REQUEST, "en")
    assert english.startswith("Error: Syntax error: the request ended inside a string")
    # What happened and what to do, in Malagasy first (it said only "syntax error" in
    # Malagasy), then the English between parentheses, as the nodes' other texts.
    assert STUCK_REQUEST.startswith(
        "Hadisoana : Fahadisoana ara-pitsipika : tapitra tao anaty lahatsoratra na "
        "fanamarihana (`--`, `//`) ny fangatahana, ka tsy namarana azy ny `;` ; tsy nisy "
        "natao (ataovy miverina an-dalana aorian'ny fanamarihana `--`, akatony ny marika "
        "' na \" rehetra) (syntax error: "), STUCK_REQUEST
    assert STUCK_REQUEST.endswith(")")
    assert "Fahadisoana" not in english


@pytest.mark.parametrize("count, english", [(1, "the result has 1 column"),
                                            (2, "the result has 2 columns")])
def test_ordering_past_the_last_column_counts_columns_in_english(tmp_path, count, english):
    # `alaharo 5` on a one-column result said "the result has 1 columns".
    session = Session(Store(tmp_path))
    columns = ", ".join(["1", "2"][:count])
    wire = session.execute(f"alaivo {columns} alaharo 5;")[0].message
    assert wire.endswith(f"(tsanganana {count} no ao amin'ny valiny)"), wire   # unchanged
    assert translate(wire, "en") == f"Error: alaharo 5: there is no column 5 ({english})"


@pytest.mark.parametrize("wire, english", [
    ("0 andalana Tsy marina mihitsy ny 'n = null', na dia null aza ny sanda : 'n dia null' no "
     "manamarina ny null.",
     "0 andalana 'n = null' is never true, not even when the value is null: 'n dia null' is "
     "what tests for null."),
    ("Tafinditra ny fiovana ny tabilao (0 andalana) Tsy marina mihitsy ny 'n != null', na dia "
     "null aza ny sanda : 'n dia tsy null' no manamarina ny null.",
     "Tafinditra ny fiovana ny tabilao (0 andalana) 'n != null' is never true, not even when "
     "the value is null: 'n dia tsy null' is what tests for null."),
    # Both tests shown: their `na` is "or" too, a column named `anarana` kept as it is.
    ("0 andalana Tsy marina mihitsy ny 'm.anarana > null', na dia null aza ny sanda : "
     "'m.anarana dia null' na 'm.anarana dia tsy null' no manamarina ny null.",
     "0 andalana 'm.anarana > null' is never true, not even when the value is null: "
     "'m.anarana dia null' or 'm.anarana dia tsy null' is what tests for null."),
])
def test_the_note_of_a_success_is_translated_and_its_beginning_kept(wire, english):
    """The note a success ends with (a comparison with `null`) stayed Malagasy under
    `--lang en`: it is a catalogue hint, and translates as an error's hint does; the
    message's beginning, which clients read, is the wire's."""
    assert translate_note(wire, "en") == english
    assert translate_note(wire, "mg") == wire
    assert translate_note("3 andalana", "en") == "3 andalana"
    assert translate_note("Ny tahiry : s dia miasa ankehitriny", "en") == \
        "Ny tahiry : s dia miasa ankehitriny"
