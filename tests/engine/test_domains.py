"""engine.evaluation.domains: JSON atoms from the AST, creation checks, value checks."""

import pytest

from engine.errors import TahiryError
from engine.evaluation.domains import (
    check_column_names,
    check_value,
    column_checker,
    domain_to_json,
    format_domain,
    is_date,
)
from engine.language import ast
from engine.language.messages import translate
from tests.engine.sessionkit import one, prepared_session, rows

ISA_0_20 = [{"type": "ISA", "min": 0, "max": 20}]
TEXT_2_5 = [{"type": "LAHATSORATRA", "min": 2, "max": 5}]
DATE = [{"type": "DATY"}]
ENUM = [{"type": "TANISA", "values": ["L3", "M1", 1]}]


def no_named(name):
    return None


def spec(*atoms):
    return ast.DomainSpec(tuple(atoms))


def test_atoms_become_json():
    atoms = domain_to_json(spec(ast.NumberAtom(-1.5, None), ast.TextAtom(0, 3), ast.DateAtom(),
                                ast.EnumAtom(("a", 2))), no_named)
    assert atoms == [{"type": "ISA", "min": -1.5, "max": None},
                     {"type": "LAHATSORATRA", "min": 0, "max": 3},
                     {"type": "DATY"}, {"type": "TANISA", "values": ["a", 2]}]


def test_named_domain_is_copied_in():
    named = {"kilasy": [{"type": "TANISA", "values": ["L3"]}]}
    atoms = domain_to_json(spec(ast.NamedAtom("kilasy"), ast.DateAtom()), named.get)
    assert atoms == [{"type": "TANISA", "values": ["L3"]}, {"type": "DATY"}]
    assert atoms[0] is not named["kilasy"][0]


def test_unknown_named_domain_is_an_error():
    with pytest.raises(TahiryError, match="Tsy misy ny efitra : nope"):
        domain_to_json(spec(ast.NamedAtom("nope")), no_named)


@pytest.mark.parametrize("atom,fragment", [
    (ast.NumberAtom(5, 1), "min > max"),
    (ast.TextAtom(4, 2), "min > max"),
    (ast.TextAtom(1.5, 3), "isa feno"),
    (ast.EnumAtom(()), "TANISA"),
])
def test_bad_atoms_are_refused_at_creation(atom, fragment):
    with pytest.raises(TahiryError, match=fragment):
        domain_to_json(spec(atom), no_named)


def test_column_names_must_exist_and_be_unique_case_insensitively():
    check_column_names(["a", "b"])
    with pytest.raises(TahiryError, match="'A' dia voatonona indroa"):
        check_column_names(["a", "A"])
    with pytest.raises(TahiryError, match="tsy misy tsanganana"):
        check_column_names([])


def test_null_fits_every_domain():
    for domain in (ISA_0_20, TEXT_2_5, DATE, ENUM):
        assert check_value("c", None, domain) is None


@pytest.mark.parametrize("value", [0, 20, 12.5, 7])
def test_isa_accepts_numbers_within_bounds(value):
    assert check_value("naoty", value, ISA_0_20) == value


@pytest.mark.parametrize("value", [-1, 21, 20.01, "12", True])
def test_isa_rejects_out_of_bounds_and_non_numbers(value):
    with pytest.raises(TahiryError) as caught:
        check_value("naoty", value, ISA_0_20)
    assert "'naoty'" in str(caught.value)


def test_error_names_column_value_and_domain():
    with pytest.raises(TahiryError) as caught:
        check_value("naoty", 25, ISA_0_20)
    assert caught.value.message == (
        "Hadisoana : Ny sanda 25 dia tsy mifanaraka amin'ny efitra ISA(0,20) "
        "an'ny tsanganana 'naoty'")


def test_open_bounds():
    assert check_value("c", -10**12, [{"type": "ISA", "min": None, "max": 0}]) == -10**12
    assert check_value("c", "", [{"type": "LAHATSORATRA", "min": None, "max": None}]) == ""


def test_text_length_counts_code_points():
    assert check_value("id", "éèà", TEXT_2_5) == "éèà"
    assert check_value("id", "ab", TEXT_2_5) == "ab"
    for value in ("a", "abcdef", 12):
        with pytest.raises(TahiryError, match="LAHATSORATRA\\(2,5\\)"):
            check_value("id", value, TEXT_2_5)


@pytest.mark.parametrize("value", ["2024-02-29", "2023-12-31", "0001-01-01"])
def test_daty_accepts_real_iso_dates(value):
    assert check_value("d", value, DATE) == value


@pytest.mark.parametrize("value", ["2023-02-29", "2023-13-01", "2023-1-01", "20230101",
                                   "2023-01-01T00:00", "٢٠٢٣-٠١-٠١", 20230101])
def test_daty_rejects_the_rest(value):
    with pytest.raises(TahiryError, match="DATY"):
        check_value("d", value, DATE)
    assert not (isinstance(value, str) and is_date(value))


def test_tanisa_is_exact_membership():
    assert check_value("k", "L3", ENUM) == "L3"
    assert check_value("k", 1, ENUM) == 1
    for value in ("l3", "1", 2):
        with pytest.raises(TahiryError, match='TANISA\\("L3","M1",1\\)'):
            check_value("k", value, ENUM)
    with pytest.raises(TahiryError):
        check_value("k", 1, [{"type": "TANISA", "values": ["1"]}])


def test_hybrid_domain_accepts_if_any_atom_accepts():
    hybrid = DATE + [{"type": "ISA", "min": 0, "max": 1}]
    assert check_value("h", "2024-01-31", hybrid) == "2024-01-31"
    assert check_value("h", 1, hybrid) == 1
    with pytest.raises(TahiryError, match="DATY:ISA\\(0,1\\)"):
        check_value("h", "tomorrow", hybrid)


def test_a_refused_value_is_quoted_as_typed_on_one_line():
    """An error is one line (the wire's messages are); a value holding a line break
    made it two lines embedded and one, differently, through a node."""
    short = [{"type": "LAHATSORATRA", "min": 1, "max": 3}]
    with pytest.raises(TahiryError) as refused:
        check_value("a", "line1\nit's\\", short)
    assert "'line1\\nit''s\\\\'" in refused.value.message
    assert "\n" not in refused.value.message


def test_booleans_and_unstorable_numbers_are_refused():
    anything = [{"type": "ISA", "min": None, "max": None}]
    with pytest.raises(TahiryError, match="boolean"):
        check_value("c", True, anything)
    with pytest.raises(TahiryError, match="64 bits"):
        check_value("c", 2**64, anything)
    with pytest.raises(TahiryError):
        check_value("c", float("inf"), anything)


def test_domain_text_form():
    assert format_domain(TEXT_2_5 + [{"type": "ISA", "min": None, "max": 3.5}]) == (
        "LAHATSORATRA(2,5):ISA(null,3.5)")


CHECKED_DOMAINS = [ISA_0_20, TEXT_2_5, DATE, ENUM, [{"type": "ISA", "min": None, "max": None}],
                   [{"type": "ISA", "min": -1.5, "max": 2.5}],
                   [{"type": "LAHATSORATRA", "min": None, "max": None}],
                   [ISA_0_20[0], TEXT_2_5[0]]]
CHECKED_VALUES = [None, True, False, 0, 1, 20, 21, -1, 2.5, -1.5, -1.6, 1e300, float("inf"),
                  float("nan"), 2 ** 63 - 1, 2 ** 63, -(2 ** 63 - 1), -(2 ** 63), "", "a", "ab",
                  "abcde", "abcdef", "abcdefgh", "2024-02-29", "L3", "x" * 9, 3.0, [], {}]


def _outcome(check, value):
    try:
        return "value", check(value)
    except TahiryError as error:
        return "error", error.message


@pytest.mark.parametrize("domain", CHECKED_DOMAINS, ids=format_domain)
def test_a_column_checker_answers_as_the_full_check(domain):
    """column_checker only answers sooner: every value gets the full check's value or its error."""
    limit = 7   # the string size limit of the executor (`_cell`), small here

    def full(value):
        if isinstance(value, str) and len(value) > limit:
            raise TahiryError("too long")
        return check_value("c", value, domain)

    check = column_checker(domain, limit, full)
    for value in CHECKED_VALUES:
        expected = _outcome(full, value)
        got = _outcome(check, value)
        assert got == expected, (value, got, expected)
        if got[0] == "value":
            assert got[1] is value


DATES_SETUP = ("manamboara tahiry d; ampiasao d;"
               "manamboara tabilao dt (d DATY, s LAHATSORATRA(null,null), m DATY:ISA(0,9));"
               "manampia ao@ dt sanda ('2024-05-01', '2024-1-1', 3), ('2023-12-31', 'x', 4);")


@pytest.mark.parametrize("condition", ["d > '2024-1-1'", "'2024-1-1' < d", "d = '2024-5-1'",
                                       "d <= '2024-02-30'", "d != 'hier'"])
def test_a_date_column_compared_with_a_text_that_is_no_date_is_an_error(tmp_path_factory,
                                                                         condition):
    """`d > '2024-1-1'` compared text: '2024-05-01' < '2024-1-1', the row silently left out."""
    session = prepared_session(tmp_path_factory, "dates", DATES_SETUP)
    for statement in (f"alaivo d ao@ dt rehefa {condition};",) * 2 + (   # (twice: a plan)
            f"havaozy dt ova s = 'y' rehefa {condition};", f"fafao ao@ dt rehefa {condition};"):
        outcome = one(session, statement)
        assert not outcome.ok and "Tsy daty voasoratra 'YYYY-MM-DD'" in outcome.message, statement
        assert "compared with the DATY column 'd'" in translate(outcome.message, "en")
    assert rows(session, "alaivo count(*) ao@ dt;") == [[2]]   # nothing changed


@pytest.mark.parametrize("condition, shown", [("d > 2024-01-01", "2024 - 1 - 1"),
                                               ("2023 = d", "2023"), ("d < 2024.5", "2024.5")])
def test_a_date_column_compared_with_a_number_is_an_error(tmp_path_factory, condition, shown):
    """`d > 2024-01-01` (the quotes forgotten) is the number 2022, which no date is
    greater or smaller than (a number and a text compare as unknown): every row was
    left out, and nothing said why."""
    session = prepared_session(tmp_path_factory, "dates-numbers", DATES_SETUP)
    for statement in (f"alaivo d ao@ dt rehefa {condition};",
                      f"fafao ao@ dt rehefa {condition};"):
        outcome = one(session, statement)
        assert not outcome.ok and f"Tsy daty ny {shown} ampitahaina" in outcome.message, \
            outcome.message
        english = translate(outcome.message, "en")
        assert english.startswith(f"Error: {shown}, compared with the DATY column 'd', is a "
                                  "number, not a date: write a date between quotes"), english
    assert rows(session, "alaivo count(*) ao@ dt;") == [[2]]   # nothing changed
    # A column whose domain holds numbers too (DATY:ISA) compares with a number.
    assert rows(session, "alaivo count(*) ao@ dt rehefa m = 3;") == [[1]]


DATES_THROUGH_SETUP = DATES_SETUP + (
    "manamboara tabilao du (d DATY, n ISA(null,null)); manampia ao@ du sanda ('2024-05-01', 1);"
    "manamboara jery vd @ alaivo d, s ao@ dt; manamboara jery vvd @ alaivo d antso daty ao@ vd;")


@pytest.mark.parametrize("query", [
    "alaivo d ao@ vd rehefa d > '2024-1-1';",                        # a view
    "alaivo daty ao@ vvd rehefa daty > '2024-1-1';",                 # a view of a view, renamed
    "alaivo q.d ao@ (alaivo d ao@ dt) q rehefa q.d > '2024-1-1';",   # a derived table
    "alaivo d ao@ (alaivo d, count(*) antso n ao@ dt vondrona d) q rehefa d > '2024-1-1';",
    "alaivo d ao@ dt tonona:natoraly du rehefa d > '2024-1-1';",     # a natural join's key
    "alaivo d ao@ (alaivo d ao@ dt ankambana alaivo d ao@ du) q rehefa d > '2024-1-1';",
])
def test_a_date_column_stays_a_date_column_through_views_and_subqueries(tmp_path_factory, query):
    """A view's plain column has its table column's domain (LANGUAGE.md 2, "Describe"):
    `d > '2024-1-1'` through it compared text and left '2024-05-01' out, silently."""
    session = prepared_session(tmp_path_factory, "dates-through", DATES_THROUGH_SETUP)
    outcome = one(session, query)
    assert not outcome.ok and "Tsy daty voasoratra 'YYYY-MM-DD'" in outcome.message, (
        outcome.relation and outcome.relation.rows)


def test_a_union_with_a_text_column_is_not_a_date_column(tmp_path_factory):
    session = prepared_session(tmp_path_factory, "dates-union", DATES_THROUGH_SETUP)
    assert rows(session, "alaivo d ao@ (alaivo d ao@ dt ankambana alaivo s ao@ dt) q "
                         "rehefa d = '2024-1-1';") == [["2024-1-1"]]
    assert rows(session, "alaivo d ao@ vd rehefa d > '2024-01-01';") == [["2024-05-01"]]


def test_well_written_dates_and_other_columns_compare_as_before(tmp_path_factory):
    session = prepared_session(tmp_path_factory, "dates-ok", DATES_SETUP)
    assert rows(session, "alaivo d ao@ dt rehefa d > '2024-01-01';") == [["2024-05-01"]]
    assert rows(session, "alaivo d ao@ dt rehefa d > '2024-01-02';") == [["2024-05-01"]]
    assert rows(session, "alaivo s ao@ dt rehefa s = '2024-1-1';") == [["2024-1-1"]]   # text
    assert rows(session, "alaivo m ao@ dt rehefa m > 'abc';") == []   # not DATY only


@pytest.mark.parametrize("domain, refused", [
    ("LAHATSORATRA(-1,3)", True), ("LAHATSORATRA(0,-3)", True), ("LAHATSORATRA(0,3)", False),
    ("LAHATSORATRA(null,null)", False), ("ISA(-5,5)", False),
])
def test_a_text_length_bound_is_never_negative(tmp_path_factory, domain, refused):
    session = prepared_session(tmp_path_factory, "lengths", "manamboara tahiry d; ampiasao d;")
    outcome = one(session, f"manamboara tabilao t (a {domain});")
    assert outcome.ok is not refused, outcome.message
    if refused:
        assert "halava : isa manontolo >= 0 na null" in outcome.message
        assert "lengths: integers >= 0" in translate(outcome.message, "en")
