"""Fixtures shared by the engine tests.

`session` is a fresh Session over an empty Store in the test's tmp_path
(tmp_path/data); a test module that needs a prepared one overrides it.
"""

import pytest

from engine.session import Session
from engine.storage import Store


@pytest.fixture
def session(tmp_path):
    return Session(Store(tmp_path / "data"))
