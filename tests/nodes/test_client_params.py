"""DB-API qmark binding: literals that cannot change a statement's structure."""

import datetime
import decimal

import pytest

from engine.language.script import split_statements
from nodes.client.params import ParameterError, bind, literal, placeholder_positions


def test_literals_of_each_supported_type():
    assert literal(None) == "null"
    assert literal(12) == "12"
    assert literal(-3) == "(-3)"
    assert literal(2.5) == "2.5"
    assert literal(1e20) == "100000000000000000000.0"
    assert literal(1e-7) == "0.0000001"
    assert literal(decimal.Decimal("-1.50")) == "(-1.50)"
    assert literal(datetime.date(2024, 2, 29)) == "'2024-02-29'"
    assert literal("it's") == "'it''s'"
    assert literal("C:\\new") == "'C:\\\\new'"


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), b"x", object(),
                                   datetime.datetime(2024, 1, 1, 12, 0)])
def test_unsupported_values_are_refused(value):
    with pytest.raises(ParameterError):
        literal(value)


def test_placeholders_inside_strings_and_comments_are_not_parameters():
    sql = "alaivo '?', \"a?\" -- ?\n, ? // ?\n ao@ t rehefa a = ?"
    assert [sql[i] for i in placeholder_positions(sql)] == ["?", "?"]
    assert bind(sql, [1, "x"]).endswith("ao@ t rehefa a = 'x'")


def test_a_hostile_string_stays_one_literal():
    hostile = "x'; ravao ny tabilao t; -- \\' \""
    bound = bind("alaivo * ao@ t rehefa a = ?;", [hostile])
    pieces = split_statements(bound)
    assert len(pieces) == 1


def test_negative_number_after_minus_is_not_a_comment():
    assert bind("alaivo 1 -?", [-5]) == "alaivo 1 -(-5)"


def test_wrong_parameter_count_or_shape_is_an_error():
    with pytest.raises(ParameterError):
        bind("alaivo ?, ?", [1])
    with pytest.raises(ParameterError):
        bind("alaivo ?", "a")
    with pytest.raises(ParameterError):
        bind("alaivo 1", [1])
    assert bind("alaivo 1", None) == "alaivo 1"


@pytest.mark.parametrize("message, kind", [
    ("Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 8 : x", "ProgrammingError"),
    ("Hadisoana : La table s.t n'as pas été trouvé", "ProgrammingError"),
    ("Hadisoana : Tsy nisafidy tahiry ianao", "ProgrammingError"),
    ("Hadisoana : Ny tabilao : naoty dia efa misy", "ProgrammingError"),
    ("Hadisoana : Ny sanda 21 dia tsy mifanaraka amin'ny efitra ISA(0,20) an'ny tsanganana 'naoty'",
     "IntegrityError"),
    ("Hadisoana : Tsy azo zaraina amin'ny aotra : 1 / 0.", "DataError"),
    ("Hadisoana : Tsy azo ampitahaina amin'ny '>' ny 14 sy 'a' : isa sy lahatsoratra", "DataError"),
    ("Hadisoana : Nisy olana tao anatin'ny motera (internal error)", "InternalError"),
    ("Hadisoana : Tsy misy mpizara afaka mamaly ankehitriny", "OperationalError"),
    ("Hadisoana : Simba na tsy voavaky ny rakitra s/tables/t.json [storage:read]", "OperationalError"),
    ("Hadisoana : Tsy voasoratra ny rakitra s/tables/t.json (No space left on device) [storage:write]",
     "OperationalError"),
])
def test_error_messages_map_to_pep249_classes(message, kind):
    from nodes.client import exceptions
    error = exceptions.error_for_message(message)
    assert type(error).__name__ == kind
    assert isinstance(error, exceptions.DatabaseError) and str(error) == message
