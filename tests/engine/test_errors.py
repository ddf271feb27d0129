"""engine.errors.EngineError: the one root of the engine's exceptions."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import engine
from engine.errors import EngineError, StorageFault, TahiryError, TahirySyntaxError
from engine.storage.journal import JournalError
from engine.storage.nofollow import ObjectRefused
from engine.storage.peers import LockTimeout


def _engine_exception_classes():
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        if info.name == "engine.__main__":
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (issubclass(value, BaseException) and value.__module__ == module.__name__
                    and not value.__name__.startswith("_")):
                yield value


def test_every_public_engine_exception_derives_from_the_root():
    classes = list(_engine_exception_classes())
    assert TahiryError in classes and len(classes) > 10
    assert [c.__name__ for c in classes if not issubclass(c, EngineError)] == []


def test_the_user_errors_and_the_secondary_bases_callers_catch_by_are_kept():
    assert issubclass(StorageFault, TahiryError) and issubclass(TahirySyntaxError, TahiryError)
    assert issubclass(LockTimeout, OSError) and issubclass(ObjectRefused, OSError)
    assert issubclass(JournalError, ValueError)
