"""The grammar of LANGUAGE.md sections 2-4b parsed to the expected AST."""

from __future__ import annotations

import pytest

from engine.errors import TahiryError, TahirySyntaxError
from engine.language import ast
from engine.language.ast import (
    Assignment,
    Binary,
    ColumnDef,
    ColumnRef,
    CreateDatabase,
    CreateDomain,
    CreateTable,
    CreateView,
    DateAtom,
    Delete,
    DomainSpec,
    Drop,
    EnumAtom,
    FunctionCall,
    Insert,
    IsNull,
    Join,
    Limit,
    Literal,
    NamedAtom,
    NumberAtom,
    OrderItem,
    Query,
    SelectCore,
    SelectItem,
    SetOperation,
    Show,
    SubquerySource,
    TableSource,
    TextAtom,
    Unary,
    Update,
    Use,
)
from engine.language.parser import StatementParser
from engine.language.script import split_statements
from tests.engine.scripts import LANGUAGE_EXAMPLE

PARSER = StatementParser()


def parse(text: str):
    return PARSER.parse(text)


def select(text: str):
    return parse(text).select


def expr(text: str) -> ast.Expr:
    return select(f"alaivo {text}").items[0].expr


def error(text: str) -> TahirySyntaxError:
    with pytest.raises(TahirySyntaxError) as caught:
        StatementParser().parse(text)
    return caught.value


def col(name: str, qualifier: str | None = None) -> ColumnRef:
    return ColumnRef(name, qualifier)


def lit(value) -> Literal:
    return Literal(value)


def item(expression, text, alias=None) -> SelectItem:
    return SelectItem(expression, alias, text)


def core(items=None, **fields) -> SelectCore:
    return SelectCore(items, **fields)


A_GT_1 = Binary(">", col("a"), lit(1))

# ---------------------------------------------------------------- simple statements


@pytest.mark.parametrize("text, statement", [
    ("ampiasao sekoly", Use("sekoly")),
    ("AMPIASAO Sekoly", Use("Sekoly")),
    ("asehoy ny tahiry", Show("database")),
    ("asehoy ny TABILAO", Show("table")),
    ("Asehoy Ny efitra", Show("domain")),
    ("asehoy ny jery", Show("view")),
    ("manamboara tahiry sekoly", CreateDatabase("sekoly")),
    ("ravao ny tahiry sekoly", Drop("database", "sekoly")),
    ("ravao ny tabilao t", Drop("table", "t")),
    ("ravao ny efitra d", Drop("domain", "d")),
    ("RAVAO NY JERY v", Drop("view", "v")),
    ("ampiasao sekoly;", Use("sekoly")),
])
def test_simple_statements(text, statement):
    assert parse(text) == statement


@pytest.mark.parametrize("text", ["ampiasao", "ampiasao a b", "asehoy tabilao", "asehoy ny foo",
                                  "ravao tabilao t", "ravao ny t", "manamboara tahiry",
                                  "manamboara foo x", "ampiasao 'x'"])
def test_malformed_simple_statements(text):
    error(text)


# ---------------------------------------------------------------- DDL


def test_create_table_with_every_atom():
    statement = parse(
        "manamboara tabilao t ( a ISA(0,20), b LAHATSORATRA(null, 5), c DATY, "
        "d TANISA('L3', \"M1\", 2, -1.5), e kilasy, f ISA(-5, null):LAHATSORATRA(1,2):DATY )")
    assert statement == CreateTable("t", (
        ColumnDef("a", DomainSpec((NumberAtom(0, 20),))),
        ColumnDef("b", DomainSpec((TextAtom(None, 5),))),
        ColumnDef("c", DomainSpec((DateAtom(),))),
        ColumnDef("d", DomainSpec((EnumAtom(("L3", "M1", 2, -1.5)),))),
        ColumnDef("e", DomainSpec((NamedAtom("kilasy"),))),
        ColumnDef("f", DomainSpec((NumberAtom(-5, None), TextAtom(1, 2), DateAtom()))),
    ))


def test_type_words_are_case_insensitive_in_domains():
    statement = parse("manamboara tabilao t ( a isa(1.5,2), b Lahatsoratra(1,2), c daty, d tanisa(1) )")
    assert [c.domain.atoms[0] for c in statement.columns] == [
        NumberAtom(1.5, 2), TextAtom(1, 2), DateAtom(), EnumAtom((1,))]


def test_create_domain():
    assert parse('manamboara efitra kilasy ( TANISA("L3","M1","L2") )') == CreateDomain(
        "kilasy", DomainSpec((EnumAtom(("L3", "M1", "L2")),)))
    assert parse("manamboara efitra d ( ISA(1,2) : other )") == CreateDomain(
        "d", DomainSpec((NumberAtom(1, 2), NamedAtom("other"))))


@pytest.mark.parametrize("text", [
    "manamboara tabilao t ()",
    "manamboara tabilao t (a)",
    "manamboara tabilao t (a ISA)",
    "manamboara tabilao t (a ISA(1))",
    "manamboara tabilao t (a ISA(1,2,3))",
    "manamboara tabilao t (a ISA('a', 2))",
    "manamboara tabilao t (a LAHATSORATRA(1.5, 2))",
    "manamboara tabilao t (a DATY(1,2))",
    "manamboara tabilao t (a TANISA())",
    "manamboara tabilao t (a TANISA(null))",
    "manamboara tabilao t (a kilasy(1,2))",
    "manamboara tabilao t (a ISA(1,2):)",
    "manamboara tabilao t (a ISA(1,2) : : DATY)",
    "manamboara tabilao t (a ISA(1 + 1, 2))",
    "manamboara tabilao t (a ISA(1,2),)",
    "manamboara tabilao t a ISA(1,2)",
    "manamboara efitra d ISA(1,2)",
    "manamboara efitra d ()",
])
def test_malformed_domains(text):
    error(text)


def test_create_view_keeps_query_text():
    statement = parse("manamboara jery tsara @ alaivo *  ao@ naoty\n #rehefa naoty >= 15 ")
    assert statement == CreateView(
        "tsara",
        core(source=TableSource("naoty"), where=Binary(">=", col("naoty"), lit(15))),
        "alaivo *  ao@ naoty\n #rehefa naoty >= 15")


def test_create_view_of_set_operation_keeps_whole_text():
    statement = parse("manamboara jery v@alaivo a ao@ t ankambana (alaivo b ao@ u)")
    assert statement.query_text == "alaivo a ao@ t ankambana (alaivo b ao@ u)"
    assert PARSER.parse_select(statement.query_text) == statement.query


@pytest.mark.parametrize("text", ["manamboara jery v alaivo 1", "manamboara jery v @",
                                  "manamboara jery v @ manampia ao@ t sanda (1)"])
def test_malformed_views(text):
    error(text)


# ---------------------------------------------------------------- DML


def test_insert_values_with_column_list():
    assert parse('manampia ao@ t (id, anarana) sanda ("E1","Alice"), ("E2", null)') == Insert(
        "t", ("id", "anarana"), rows=((lit("E1"), lit("Alice")), (lit("E2"), lit(None))))


@pytest.mark.parametrize("columns", ["", "()", " ( ) "])
def test_insert_without_column_list_means_all_columns(columns):
    assert parse(f"manampia ao@ t{columns} sanda (1, -2, 1 + 2)") == Insert(
        "t", None, rows=((lit(1), lit(-2), Binary("+", lit(1), lit(2))),))


def test_insert_select():
    assert parse("manampia ao@ t (a) alaivo b ao@ u rehefa b > 1") == Insert(
        "t", ("a",), query=core((item(col("b"), "b"),), source=TableSource("u"),
                                where=Binary(">", col("b"), lit(1))))
    assert parse("manampia ao@ t alaivo 1 ankambana alaivo 2").query == SetOperation(
        "union", core((item(lit(1), "1"),)), core((item(lit(2), "2"),)))
    assert parse("manampia ao@ t (alaivo 1)").query == core((item(lit(1), "1"),))


@pytest.mark.parametrize("text", ["manampia t sanda (1)", "manampia ao@ t sanda", "manampia ao@ t sanda ()",
                                  "manampia ao@ t sanda 1", "manampia ao@ t (a,) sanda (1)",
                                  "manampia ao@ t sanda (1),", "manampia ao@ t",
                                  "manampia ao@ t (a.b) sanda (1)"])
def test_malformed_inserts(text):
    error(text)


def test_update():
    assert parse('havaozy naoty ova naoty = naoty + 1, taranja = "x" #rehefa taranja = "BD"') == Update(
        "naoty",
        (Assignment("naoty", Binary("+", col("naoty"), lit(1))), Assignment("taranja", lit("x"))),
        Binary("=", col("taranja"), lit("BD")))
    assert parse("havaozy t ova a = null") == Update("t", (Assignment("a", lit(None)),), None)


@pytest.mark.parametrize("text", ["havaozy t a = 1", "havaozy t ova", "havaozy t ova a",
                                  "havaozy t ova t.a = 1", "havaozy ova a = 1", "havaozy t ova a = 1,"])
def test_malformed_updates(text):
    error(text)


def test_delete():
    assert parse("fafao ao@ naoty rehefa naoty dia null") == Delete("naoty", IsNull(col("naoty")))
    assert parse("fafao ao@ t") == Delete("t")
    assert parse("fafao ao t") == Delete("t")
    error("fafao t")
    error("fafao ao@ t rehefa")


# ---------------------------------------------------------------- SELECT


def test_select_without_source():
    assert select("alaivo 1 + 1") == core((item(Binary("+", lit(1), lit(1)), "1 + 1"),))


def test_select_star():
    assert select("alaivo * ao@ t") == core(None, source=TableSource("t"))


def test_select_items_aliases_and_texts():
    assert select("alaivo a, b c, d  antso  e, count( * ) n, a  +\n 1, 'x  y' ao@ t").items == (
        item(col("a"), "a"),
        item(col("b"), "b", "c"),
        item(col("d"), "d", "e"),
        item(FunctionCall("count", (), True), "count( * )", "n"),
        item(Binary("+", col("a"), lit(1)), "a + 1"),
        item(lit("x  y"), "'x  y'"),
    )


def test_item_text_drops_comments():
    assert select("alaivo a + -- plus\n 1 ao@ t").items[0].text == "a + 1"


def test_function_names_are_lower_cased_and_take_expressions():
    assert expr("SUM(a * b)") == FunctionCall("sum", (Binary("*", col("a"), col("b")),))
    assert expr("Count(IdEtudiant)") == FunctionCall("count", (col("IdEtudiant"),))
    assert expr("f()") == FunctionCall("f")
    assert expr("coalesce(a, 1)") == FunctionCall("coalesce", (col("a"), lit(1)))


def test_sources_with_aliases():
    assert select("alaivo * ao@ t x").source == TableSource("t", "x")
    assert select("alaivo * ao@ t antso x").source == TableSource("t", "x")


def test_derived_table():
    inner = core((item(col("a"), "a"),), source=TableSource("t"))
    assert select("alaivo * ao@ (alaivo a ao@ t) x").source == SubquerySource(inner, "x")
    assert select("alaivo * ao@ (alaivo a ao@ t) antso x").source == SubquerySource(inner, "x")


def test_derived_table_needs_an_alias():
    err = error("alaivo * ao@ (alaivo a ao@ t)")
    assert "Tous les tables dérivé doit avoir leur propre alias" in err.sentence
    assert err.column == 14


@pytest.mark.parametrize("keyword, kind", [
    ("tonona", "inner"), ("tonona@", "inner"), ("tonona:@", "inner"), ("tonona:anatiny", "inner"),
    ("tonona:avia", "left"), ("tonona:ankavia@", "left"), ("tonona:avanana", "right"),
    ("tonona:ankavanana@", "right"), ("tonona:feno", "full"), ("TONONA:FENO@", "full"),
])
def test_joins_with_condition(keyword, kind):
    statement = select(f"alaivo * ao@ u a #{keyword} u b #ka a.id = b.id")
    assert statement.source == TableSource("u", "a")
    assert statement.joins == (
        Join(kind, TableSource("u", "b"), Binary("=", col("id", "a"), col("id", "b"))),)


def test_join_without_ka_and_natural_join():
    assert select("alaivo * ao@ t tonona u tonona:natoraly@ v").joins == (
        Join("inner", TableSource("u")), Join("natural", TableSource("v")))


def test_join_of_derived_table():
    joins = select("alaivo * ao@ t tonona (alaivo 1 antso a) d ka d.a = 1").joins
    assert joins == (Join("inner", SubquerySource(core((item(lit(1), "1", "a"),)), "d"),
                          Binary("=", col("a", "d"), lit(1))),)


@pytest.mark.parametrize("text", [
    "alaivo * ao@ t tonona:avia u",
    "alaivo * ao@ t tonona:avanana u",
    "alaivo * ao@ t tonona:feno u",
    "alaivo * ao@ t tonona:natoraly u ka t.a = u.a",
    "alaivo 1 tonona u",
    "alaivo * ao@ t tonona",
    "alaivo * ao@ t tonona u ka",
    "alaivo * ao@ t ka a = 1",
])
def test_malformed_joins(text):
    error(text)


def test_where_group_order_limit():
    statement = select("alaivo a, count(*) ao@ t rehefa a > 1 vondrona (a, t.b) "
                       "alaharo a midina, count(*), b  +  1 miakatra fetra 2 5")
    assert statement.where == A_GT_1
    assert statement.group_by == (col("a"), col("b", "t"))
    assert statement.order_by == (
        OrderItem(col("a"), True, "a"),
        OrderItem(FunctionCall("count", (), True), False, "count(*)"),
        OrderItem(Binary("+", col("b"), lit(1)), False, "b + 1"),
    )
    assert statement.limit == Limit(2, 5)


def test_group_by_without_parentheses():
    assert select("alaivo a ao@ t vondrona a, b").group_by == (col("a"), col("b"))


def test_limit_forms():
    assert select("alaivo 1 fetra 3").limit == Limit(0, 3)
    assert select("alaivo 1 fetra 0 0").limit == Limit(0, 0)
    assert select("alaivo 1 #fetra 007").limit == Limit(0, 7)


@pytest.mark.parametrize("text", ["alaivo 1 fetra", "alaivo 1 fetra -1", "alaivo 1 fetra 1.5",
                                  "alaivo 1 fetra 1 2 3", "alaivo 1 fetra a", "alaivo 1 fetra 1 + 1",
                                  "alaivo 1 fetra (1)"])
def test_malformed_limits(text):
    error(text)


@pytest.mark.parametrize("text", [
    "alaivo a ao@ t vondrona a + 1", "alaivo a ao@ t vondrona", "alaivo a ao@ t vondrona ()",
    "alaivo a ao@ t alaharo", "alaivo a ao@ t alaharo a,", "alaivo", "alaivo a,", "alaivo a ao@",
    "alaivo a b c", "alaivo * , a ao@ t", "alaivo a ao@ t rehefa a = 1 vondrona a rehefa a = 2",
    "alaivo a ao@ t fetra 1 alaharo a", "alaivo a ao@ t alaharo a vondrona a",
    "alaivo a ao@ t, u",
])
def test_malformed_selects(text):
    error(text)


def test_clause_order_is_fixed_but_all_optional():
    statement = select("alaivo a ao@ t #tonona u #ka 1 = 1 #rehefa a > 1 #vondrona a #alaharo a #fetra 1")
    assert statement.where == A_GT_1 and statement.limit == Limit(0, 1)


# ---------------------------------------------------------------- set operators


def selects(*names):
    return [core((item(col(n), n),), source=TableSource("t")) for n in names]


def test_set_operators_are_left_associative():
    a, b, c = selects("a", "b", "c")
    assert select("alaivo a ao@ t + alaivo b ao@ t - alaivo c ao@ t") == SetOperation(
        "except", SetOperation("union", a, b), c)
    assert select("alaivo a ao@ t atifitra alaivo b ao@ t ankambana@ alaivo c ao@ t") == SetOperation(
        "union", SetOperation("intersect", a, b), c)


def test_parenthesised_right_operand():
    a, b, c = selects("a", "b", "c")
    assert select("alaivo a ao@ t analana@ (alaivo b ao@ t ^ alaivo c ao@ t)") == SetOperation(
        "except", a, SetOperation("intersect", b, c))
    assert select("(alaivo a ao@ t) + ((alaivo b ao@ t))") == SetOperation("union", a, b)


def test_clauses_bind_to_their_operand():
    statement = select("alaivo a ao@ t rehefa a > 1 alaharo a fetra 2 + alaivo b ao@ t fetra 1")
    assert statement.left.order_by == (OrderItem(col("a"), False, "a"),)
    assert statement.left.limit == Limit(0, 2)
    assert statement.right.limit == Limit(0, 1)


def test_minus_after_where_expression_is_a_set_operator():
    statement = select("alaivo a ao@ t rehefa a > 1 - alaivo b ao@ t")
    assert statement.op == "except" and statement.left.where == A_GT_1
    statement = select("alaivo a - 1 ao@ t - (alaivo b ao@ t)")
    assert statement.left.items[0].expr == Binary("-", col("a"), lit(1))


@pytest.mark.parametrize("text", ["alaivo 1 +", "alaivo 1 ankambana", "alaivo 1 ankambana (alaivo 2",
                                  "alaivo 1 ankambana ao@ t", "ankambana alaivo 1",
                                  "alaivo 1 ankambana (1)"])
def test_malformed_set_operations(text):
    error(text)


# ---------------------------------------------------------------- precedence


@pytest.mark.parametrize("text, tree", [
    ("a na b ary c", Binary("na", col("a"), Binary("ary", col("b"), col("c")))),
    ("a ary b na c", Binary("na", Binary("ary", col("a"), col("b")), col("c"))),
    ("a na b na c", Binary("na", Binary("na", col("a"), col("b")), col("c"))),
    ("!a ary b", Binary("ary", Unary("!", col("a")), col("b"))),
    ("!a = 1", Unary("!", Binary("=", col("a"), lit(1)))),
    ("! !a", Unary("!", Unary("!", col("a")))),
    ("a = 1 ary b != 2", Binary("ary", Binary("=", col("a"), lit(1)), Binary("!=", col("b"), lit(2)))),
    ("a dia null = b dia tsy null", Binary("=", IsNull(col("a")), IsNull(col("b"), True))),
    ("a + 1 dia null", IsNull(Binary("+", col("a"), lit(1)))),
    ("!a dia null", Unary("!", IsNull(col("a")))),
    ("a DIA TSY NULL", IsNull(col("a"), True)),
    ("1 + 2 * 3", Binary("+", lit(1), Binary("*", lit(2), lit(3)))),
    ("1 - 2 - 3", Binary("-", Binary("-", lit(1), lit(2)), lit(3))),
    ("8 / 2 / 2", Binary("/", Binary("/", lit(8), lit(2)), lit(2))),
    ("(1 + 2) * 3", Binary("*", Binary("+", lit(1), lit(2)), lit(3))),
    ("-a * b", Binary("*", Unary("-", col("a")), col("b"))),
    ("- -a", Unary("-", Unary("-", col("a")))),
    ("-(1 + 2)", Unary("-", Binary("+", lit(1), lit(2)))),
    ("a < b + 1", Binary("<", col("a"), Binary("+", col("b"), lit(1)))),
    ("a <= b", Binary("<=", col("a"), col("b"))),
    ("a >= b", Binary(">=", col("a"), col("b"))),
    ("a > b na a < b", Binary("na", Binary(">", col("a"), col("b")), Binary("<", col("a"), col("b")))),
    ("(a = 1) = (b = 2)", Binary("=", Binary("=", col("a"), lit(1)), Binary("=", col("b"), lit(2)))),
    ("-'x'", Unary("-", lit("x"))),
    ("-null", Unary("-", lit(None))),
])
def test_precedence(text, tree):
    assert expr(text) == tree


@pytest.mark.parametrize("text", ["1 < 2 < 3", "a = b = c", "a = b != c", "a < b >= c"])
def test_comparisons_are_not_associative(text):
    err = error(f"alaivo {text}")
    assert "fampitahana" in err.sentence


@pytest.mark.parametrize("text", ["alaivo a dia", "alaivo a dia tsy", "alaivo a dia 1",
                                  "alaivo a tsy null", "alaivo a ary", "alaivo !",
                                  "alaivo a +", "alaivo (a", "alaivo a)", "alaivo f(a,)", "alaivo f(*, a)"])
def test_malformed_expressions(text):
    error(text)


# ---------------------------------------------------------------- errors


def test_syntax_error_names_found_and_expected():
    err = error("alaivo * ao@ t xyz abc")
    assert "'abc' no hita" in err.sentence and "'rehefa'" in err.sentence and "';'" in err.sentence


def test_error_at_end_of_statement():
    err = error("alaivo a ao@ t rehefa")
    assert (err.line, err.column) == (1, 22)
    assert "tapitra" in err.sentence


def test_only_one_statement():
    assert "iray ihany" in error("alaivo 1; alaivo 2").sentence


def test_error_is_a_tahiry_error_with_prefix():
    err = error("alaivo ao@")
    assert isinstance(err, TahiryError)
    assert err.message.startswith("Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 8")


def test_deep_parentheses_give_a_clean_error():
    err = error("alaivo " + "(" * 5000 + "1" + ")" * 5000)
    assert "lalina loatra" in err.sentence


def test_deep_operator_chains_give_a_clean_error():
    for text in ("alaivo " + "- " * 3000 + "a", "alaivo " + "!" * 3000 + "a",
                 "alaivo " + " + ".join(["a"] * 3000), "alaivo a" + " dia null" * 1000):
        assert "lalina loatra" in error(text).sentence


def test_moderately_deep_nesting_is_fine():
    assert expr("(" * 40 + "1" + ")" * 40) == lit(1)
    assert isinstance(expr(" + ".join(["a"] * 150)), Binary)


def test_long_set_operation_chains_give_a_clean_error():
    assert isinstance(select(" + ".join(["alaivo 1"] * 100)), SetOperation)
    assert "lalina loatra" in error(" + ".join(["alaivo 1"] * 1000)).sentence


def test_deeply_nested_selects_give_a_clean_error():
    text = "alaivo * ao@ " + "(alaivo * ao@ " * 100 + "t" + ") x" * 100
    assert "lalina loatra" in error(text).sentence


# ---------------------------------------------------------------- parser object


def test_parse_select():
    assert StatementParser().parse_select("alaivo a ao@ t") == core((item(col("a"), "a"),),
                                                                   source=TableSource("t"))
    with pytest.raises(TahirySyntaxError):
        StatementParser().parse_select("fafao ao@ t")


def test_cache_returns_the_same_object_and_is_bounded():
    parser = StatementParser(cache_size=2)
    first = parser.parse("alaivo 1")
    assert parser.parse("alaivo 1") is first
    parser.parse("alaivo 2")
    parser.parse("alaivo 3")
    assert parser.parse("alaivo 1") is not first
    assert parser.parse("alaivo 1") == first


def test_very_long_statements_are_not_cached():
    parser = StatementParser()
    text = "manampia ao@ t sanda " + ", ".join(["(1)"] * 5000)
    first = parser.parse(text)
    assert len(first.rows) == 5000
    assert parser.parse(text) is not first and parser.parse(text) == first


def test_errors_are_not_cached_and_report_the_given_position():
    parser = StatementParser()
    for line, column in ((1, 1), (7, 3)):
        with pytest.raises(TahirySyntaxError) as caught:
            parser.parse("alaivo %", line, column)
        assert (caught.value.line, caught.value.column) == (line, column + 7)


def test_parser_recovers_after_errors():
    parser = StatementParser()
    for bad in ("alaivo 'x", "alaivo (", "alaivo 1 < 2 < 3", "alaivo * ao@ (alaivo 1)"):
        with pytest.raises(TahirySyntaxError):
            parser.parse(bad)
        assert parser.parse("alaivo a ao@ t tonona:avia u ka a = b") == Query(core(
            (item(col("a"), "a"),), source=TableSource("t"),
            joins=(Join("left", TableSource("u"), Binary("=", col("a"), col("b"))),)))


def test_parser_does_not_grow_position_tables():
    parser = StatementParser(cache_size=0)
    for n in range(50):
        parser.parse(f"alaivo a + {n} ao@ t rehefa b = {n}")
    assert parser._grammar._index_positions == {} and parser._grammar._line_positions == {}


# ---------------------------------------------------------------- LANGUAGE.md section 6


def test_language_example():
    parser = StatementParser()
    statements = [parser.parse(p.text, p.line, p.column) for p in split_statements(LANGUAGE_EXAMPLE)]
    text_any = DomainSpec((TextAtom(None, None),))
    assert statements == [
        CreateDatabase("sekoly"),
        Use("sekoly"),
        CreateDomain("kilasy", DomainSpec((EnumAtom(("L3", "M1", "L2")),))),
        CreateTable("mpianatra", (ColumnDef("id", DomainSpec((TextAtom(2, 5),))),
                                  ColumnDef("anarana", text_any),
                                  ColumnDef("kilasy", DomainSpec((NamedAtom("kilasy"),))))),
        CreateTable("naoty", (ColumnDef("id", DomainSpec((TextAtom(2, 5),))),
                              ColumnDef("taranja", text_any),
                              ColumnDef("naoty", DomainSpec((NumberAtom(0, 20),))))),
        Insert("mpianatra", ("id", "anarana", "kilasy"),
               rows=((lit("E1"), lit("Alice"), lit("L3")), (lit("E2"), lit("Bob"), lit("M1")))),
        Insert("naoty", None, rows=((lit("E1"), lit("Algo"), lit(14)), (lit("E1"), lit("BD"), lit(9)),
                                    (lit("E2"), lit("Algo"), lit(16)))),
        Query(core(
            (item(col("anarana"), "anarana"),
             item(FunctionCall("count", (col("taranja"),)), "count(taranja)", "isa"),
             item(FunctionCall("avg", (col("naoty"),)), "avg(naoty)")),
            source=TableSource("mpianatra"),
            joins=(Join("natural", TableSource("naoty")),),
            where=Binary(">=", col("naoty"), lit(10)),
            group_by=(col("anarana"),),
            order_by=(OrderItem(col("anarana"), False, "anarana"),))),
        Query(SetOperation(
            "except",
            core((item(col("id"), "id"),), source=TableSource("mpianatra")),
            core((item(col("id"), "id"),), source=TableSource("naoty"),
                 where=Binary("<", col("naoty"), lit(10))))),
        CreateView("tsara", core(source=TableSource("naoty"), where=Binary(">=", col("naoty"), lit(15))),
                   "alaivo * ao@ naoty #rehefa naoty >= 15"),
        Update("naoty", (Assignment("naoty", Binary("+", col("naoty"), lit(1))),),
               Binary("=", col("taranja"), lit("BD"))),
        Delete("naoty", IsNull(col("naoty"))),
    ]


def test_error_positions_in_a_script():
    script = "alaivo 1;\nalaivo 2;\n  alaivo 3,\n     4 %;"
    parser = StatementParser()
    pieces = split_statements(script)
    parser.parse(pieces[0].text, pieces[0].line, pieces[0].column)
    with pytest.raises(TahirySyntaxError) as caught:
        parser.parse(pieces[2].text, pieces[2].line, pieces[2].column)
    assert (caught.value.line, caught.value.column) == (4, 8)
