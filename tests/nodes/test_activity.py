"""A server's statement running now (nodes/server/activity.py): what `.status;` shows of it,
and an administrator's `.stop` (engine/evaluation/relational.py `Cancel`), without a server."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import monotonic

from engine.evaluation.relational import Cancel, QueryLimits, cancelled, check_deadline
from engine.storage.accounts import Identity
from nodes.server.activity import SHOWN_AFTER_S, Activity, Running


@dataclass
class _Limits:
    query: QueryLimits


@dataclass
class StandInSession:
    """What Activity reads of an engine Session."""

    identity: Identity | None
    current_database: str | None = "rabe_db"
    cancel: Cancel = field(default_factory=Cancel)

    @property
    def limits(self) -> _Limits:
        return _Limits(QueryLimits(cancel=self.cancel))


def student(name: str = "rabe") -> StandInSession:
    return StandInSession(Identity(name, False, ""))


def running_for(activity: Activity, session, text: str, seconds: float) -> None:
    """`text` begun `seconds` ago (the clock is not waited for)."""
    activity.begin(session, text)
    activity._running = Running(session, text, monotonic() - seconds)


def test_a_statement_is_shown_once_it_ran_a_second_with_its_passwords_hidden():
    activity, rabe = Activity(), student()
    activity.begin(rabe, "alaivo 1;")
    assert activity.report() == []   # not yet SHOWN_AFTER_S
    running_for(activity, rabe, 'ovay ny tenimiafina rabe "secret-pass-1";', SHOWN_AFTER_S + 1)
    [shown] = activity.report()
    assert shown["account"] == "rabe" and shown["database"] == "rabe_db"
    assert shown["seconds"] >= SHOWN_AFTER_S and "secret-pass-1" not in shown["statement"]
    activity.end()
    assert activity.report() == []


def test_stop_stops_only_that_accounts_running_statement_and_the_next_one_runs():
    activity, rabe, soa = Activity(), student(), student("soa")
    assert activity.stop("rabe") == 0            # nothing running
    activity.begin(soa, "alaivo 1;")
    assert activity.stop("rabe") == 0 and not soa.cancel.is_set()
    activity.end()
    activity.begin(rabe, "alaivo 1;")
    assert activity.stop("rabe") == 1 and activity.stop("rabe") == 0   # once
    stopped = cancelled(rabe.cancel)
    assert str(stopped) == "Najanon'ny mpitantana ny fangatahana."
    try:
        check_deadline(rabe.limits.query.started())
    except type(stopped) as error:
        assert str(error) == str(stopped)
    else:
        raise AssertionError("a stopped query went on")
    activity.end()
    assert not rabe.cancel.is_set()               # the session goes on
    check_deadline(rabe.limits.query.started())


def test_a_client_gone_stays_gone_whatever_an_administrator_did():
    activity, rabe = Activity(), student()
    activity.begin(rabe, "alaivo 1;")
    activity.stop("rabe")
    rabe.cancel.set()                             # then its connection went away
    activity.end()
    assert rabe.cancel.is_set()
    assert str(cancelled(rabe.cancel)).startswith("Najanona ny fangatahana : tsy miandry")
