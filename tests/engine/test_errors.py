"""engine.errors.EngineError: the one root of the engine's exceptions."""

from __future__ import annotations

import engine
from engine.errors import EngineError, StorageFault, TahiryError, TahirySyntaxError
from engine.storage.journal import JournalError
from engine.storage.nofollow import ObjectRefused
from engine.storage.peers import LockTimeout
from tests.conftest import public_exception_classes


def test_every_public_engine_exception_derives_from_the_root():
    classes = public_exception_classes(engine)
    assert TahiryError in classes and len(classes) > 10
    assert [c.__name__ for c in classes if not issubclass(c, EngineError)] == []


def test_the_user_errors_and_the_secondary_bases_callers_catch_by_are_kept():
    assert issubclass(StorageFault, TahiryError) and issubclass(TahirySyntaxError, TahiryError)
    assert issubclass(LockTimeout, OSError) and issubclass(ObjectRefused, OSError)
    assert issubclass(JournalError, ValueError)


def test_the_public_api_is_loaded_on_first_use_without_loading_the_parser_for_errors():
    import subprocess
    import sys

    probe = ("import sys, engine.errors; assert 'engine.language.parser' not in sys.modules; "
             "from engine import Session, Store, Outcome, TahiryError; "
             "import engine; assert set(engine.__all__) <= set(dir(engine)); "
             "print(Session.__module__, Store.__module__, Outcome.__module__, TahiryError.__module__)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["engine.session", "engine.storage.store",
                                     "engine.evaluation.outcome", "engine.errors"]


def test_the_public_names_are_the_lazily_loaded_ones():
    import engine

    assert sorted(engine.__all__) == sorted(engine._EXPORTS)
    assert all(getattr(engine, name) is not None for name in engine.__all__)
