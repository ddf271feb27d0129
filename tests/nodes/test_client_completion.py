"""Keyword and learned-name completion, and the interactive help text."""

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from engine.evaluation.outcome import Column, Outcome, Relation
from nodes.client.cheatsheet import GENERAL, topic_help
from nodes.client.completion import TahiryCompleter, Vocabulary, engine_keywords


def complete(vocabulary, text):
    completer = TahiryCompleter(vocabulary)
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]


def test_keywords_come_from_the_engine_and_include_join_kinds():
    words = engine_keywords()
    assert {"alaivo", "rehefa", "vondrona", "natoraly", "ankavia"} <= set(words)


def test_completes_keywords_after_hash_and_in_the_typed_case():
    vocabulary = Vocabulary()
    assert complete(vocabulary, "alaivo * ao@ t #reh") == ["rehefa"]
    assert set(complete(vocabulary, "ALA")) == {"ALAIVO", "ALAHARO"}
    assert complete(vocabulary, "alaivo ") == []


def test_learns_tables_and_databases_from_show_and_messages():
    vocabulary = Vocabulary()
    vocabulary.learn("asehoy ny tabilao", Outcome.success("", Relation(
        "tabilao", [Column("fanasehoana")], [["mpianatra"], ["naoty"]])))
    vocabulary.learn("manamboara tahiry sekoly",
                     Outcome.success("Ny tahiry : sekoly dia voaforona soamantsara"))
    vocabulary.learn("alaivo anarana ao@ mpianatra", Outcome.success("", Relation(
        "r", [Column("anarana", "mpianatra"), Column("count(*)")], [])))
    assert complete(vocabulary, "alaivo * ao@ mpi") == ["mpianatra"]
    assert complete(vocabulary, "ampiasao sek") == ["sekoly"]
    assert complete(vocabulary, "alaivo anar") == ["anarana"]
    vocabulary.learn("ravao ny tabilao naoty", Outcome.success("Ny tabilao : naoty dia voafafa"))
    assert complete(vocabulary, "alaivo * ao@ nao") == []


def test_failures_teach_nothing():
    vocabulary = Vocabulary()
    vocabulary.learn("asehoy ny tabilao", Outcome.failure("Hadisoana : Tsy nisafidy tahiry ianao"))
    assert not vocabulary.objects


def test_help_is_bilingual_and_has_topics():
    assert "alaivo" in GENERAL and "select" in GENERAL.lower() and "miala" in GENERAL
    assert "JOIN" in topic_help("#tonona")
    assert topic_help("tsy-misy") is None


def test_every_word_of_the_language_has_help():
    """`fanampiana ka`, `fanampiana sanda`, `fanampiana midina`, `fanampiana daty`... said
    "no help on 'ka'" while `fanampiana on` answered "written 'ka'"."""
    words = set(engine_keywords()) | {"isa", "lahatsoratra", "daty", "tanisa", "count", "sum",
                                      "avg", "min", "max", "!"}
    missing = sorted(word for word in words if topic_help(word) is None)
    assert not missing, missing
    assert "'ISA(null,null)'" in topic_help("int") and "ISA(min,max)" in topic_help("INT")
    assert "'LAHATSORATRA(null,null)'" in topic_help("varchar")
    assert "ORDER BY" in topic_help("midina") and "JOIN" in topic_help("natoraly")
    # `not` is `!` (`rehefa tsy a = 1` is a syntax error): it said "written 'tsy'".
    assert "is written '!'" in topic_help("not") and "NOT: !(condition)" in topic_help("NOT")


def _examples(text):
    import re
    starts = r"(?:manamboara|ampiasao|asehoy|ravao|manampia|havaozy|fafao|alaivo)\b"
    return [m.group(1) for m in re.finditer(rf"^\s+({starts}[^;]*;)", text, re.MULTILINE)]


def test_every_example_in_the_help_parses():
    from engine.language.parser import StatementParser
    from nodes.client.cheatsheet import TOPICS
    parser = StatementParser()
    examples = _examples(GENERAL) + [example for _, example in TOPICS.values()]
    assert len(examples) > 30
    for example in examples:
        assert parser.parse(example.rstrip(";")) is not None, example


def test_backslash_commands_and_described_names_complete():
    vocabulary = Vocabulary()
    assert set(complete(vocabulary, "\\ti")) == {"\\timing"}
    assert "\\pset" in complete(vocabulary, "\\")
    vocabulary.learn("asehoy ny tsanganana ao@ naoty", Outcome.success("", Relation(
        "naoty", [Column("tsanganana"), Column("efitra")], [["taranja", "LAHATSORATRA(1,9)"]])))
    vocabulary.learn("asehoy ny tsanganana", Outcome.success("", Relation(
        "tsanganana", [Column("anarana"), Column("karazana"), Column("tsanganana"),
                       Column("efitra")], [["mpianatra", "tabilao", "kilasy", "TANISA('L3')"]])))
    assert complete(vocabulary, "alaivo tar") == ["taranja"]
    assert complete(vocabulary, "alaivo kil") == ["kilasy"]
    assert complete(vocabulary, "\\d mpi") == ["mpianatra"]
    assert "efitra" not in vocabulary.columns
