"""Fixtures shared by the engine tests.

`session` is a fresh Session over an empty Store in the test's tmp_path
(tmp_path/data); a test module that needs a prepared one overrides it.
"""

import pytest

from engine.session import Session
from engine.storage.store import Store


@pytest.fixture
def session(tmp_path):
    return Session(Store(tmp_path / "data"))


ONE_COLUMN = [{"name": "a", "domain": [{"type": "ISA", "min": None, "max": None}]}]


def one_column_body(*values):
    """A table body of one integer column `a` holding `values`."""
    return {"columns": ONE_COLUMN, "rows": [[value] for value in values]}


@pytest.fixture
def store(tmp_path):
    """A Store in tmp_path/data with database db and table t holding [1]."""
    store = Store(tmp_path / "data")
    store.create_database("db")
    store.write("db", "table", "t", one_column_body(1))
    return store
