"""engine.language.messages: the error catalogue and `translate(text, lang)`."""

from __future__ import annotations

import pytest

from engine.language.messages import CATALOGUE, by_code, text, translate


def test_codes_are_unique_and_templates_distinct():
    assert len(by_code()) == len(CATALOGUE)
    assert len({m.malagasy for m in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("wire, english", [
    ("Hadisoana : Tsy nisafidy tahiry ianao", "Error: No database selected (use ampiasao DB first)"),
    ("Hadisoana : La table s.t n'as pas été trouvé", "Error: Table s.t not found"),
    ("Hadisoana : Le champ 'x' n'existe pas dans la relation.",
     "Error: Column 'x' does not exist in the relation."),
])
def test_a_wire_error_is_translated_to_english(wire, english):
    assert translate(wire, "en") == english


def test_mg_and_unknown_texts_are_returned_unchanged():
    wire = "Hadisoana : Tsy nisafidy tahiry ianao"
    assert translate(wire, "mg") == wire
    assert translate("Hadisoana : something new", "en") == "Hadisoana : something new"
    assert translate("Ny tahiry : s dia miasa ankehitriny", "en") == "Ny tahiry : s dia miasa ankehitriny"


def test_text_fills_the_wire_template():
    assert text("no_such_database", name="s") == "Tsy misy ny tahiry : s"
