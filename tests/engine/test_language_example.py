"""The example of LANGUAGE.md section 6 runs as written; its results are asserted."""

import json

from engine.session import Session
from engine.storage.store import Store
from tests.engine.scripts import LANGUAGE_EXAMPLE


def test_language_example(tmp_path):
    session = Session(Store(tmp_path / "data"))
    outcomes = session.execute(LANGUAGE_EXAMPLE)
    assert all(outcome.ok for outcome in outcomes), [o.message for o in outcomes]
    assert [outcome.message for outcome in outcomes] == [
        "Ny tahiry : sekoly dia voaforona soamantsara",
        "Ny tahiry : sekoly dia miasa ankehitriny",
        "Ny efitra : kilasy dia voaforona soamantsara",
        "Ny tabilao : mpianatra dia voaforona soamantsara",
        "Ny tabilao : naoty dia voaforona soamantsara",
        "Tafinditra ny fiovana ny tabilao (2 andalana)",
        "Tafinditra ny fiovana ny tabilao (3 andalana)",
        "2 andalana",
        "1 andalana",
        "Ny jery : tsara dia voaforona soamantsara",
        "Tafinditra ny fiovana ny tabilao (1 andalana)",
        "Tafinditra ny fiovana ny tabilao (0 andalana)",
    ]
    grouped = outcomes[7].relation
    assert [c.name for c in grouped.columns] == ["anarana", "isa", "avg(naoty)"]
    assert grouped.rows == [["Alice", 1, 14], ["Bob", 1, 16]]
    difference = outcomes[8].relation
    assert [c.name for c in difference.columns] == ["id"]
    assert difference.rows == [["E2"]]

    def rows(text):
        outcome = session.execute(text)[0]
        assert outcome.ok, outcome.message
        return outcome.relation.rows

    assert rows("alaivo * ao@ naoty;") == [["E1", "Algo", 14], ["E1", "BD", 10],
                                          ["E2", "Algo", 16]]
    assert rows("alaivo * ao@ tsara;") == [["E2", "Algo", 16]]
    assert rows("alaivo * ao@ mpianatra;") == [["E1", "Alice", "L3"], ["E2", "Bob", "M1"]]
    assert rows("asehoy ny tabilao;") == [["mpianatra"], ["naoty"]]
    assert rows("asehoy ny jery;") == [["tsara"]]
    assert rows("asehoy ny efitra;") == [["kilasy"]]
    # the view now sees the updated marks
    assert rows("alaivo id, naoty ao@ tsara;") == [["E2", 16]]
    # the domain copied into mpianatra still rejects unknown classes
    outcome = session.execute('manampia ao@ mpianatra sanda ("E3", "Cy", "M2");')[0]
    assert outcome.message == ("Hadisoana : Ny sanda 'M2' dia tsy mifanaraka amin'ny efitra "
                               "TANISA(\"L3\",\"M1\",\"L2\") an'ny tsanganana 'kilasy'")
    session.store.checkpoint_all()   # what a clean stop does: every .json holds its table
    stored = json.loads((tmp_path / "data/sekoly/tables/naoty.json").read_text())
    assert stored["rows"] == [["E1", "Algo", 14], ["E1", "BD", 10], ["E2", "Algo", 16]]
    assert stored["change"] == 3  # create, insert, update (the delete removed nothing)
