"""Shortcuts for engine tests that drive a Session with statement text.

`run` gives the message of every outcome of a script, `one` the single
outcome of one statement, `rows` the rows of one statement that must succeed,
`prepared_session` a session on a fresh data directory after a setup script.
"""

from engine.session import Session
from engine.storage.store import Store


def prepared_session(tmp_path_factory, label, setup):
    """A Session on a new data directory, after `setup` ran with no failure."""
    session = Session(Store(tmp_path_factory.mktemp(label) / "data"))
    outcomes = session.execute(setup)
    assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
    return session


def run(session, text):
    """Messages of every outcome of `text`."""
    return [outcome.message for outcome in session.execute(text)]


def one(session, text):
    """The outcome of `text`, which must hold exactly one statement."""
    outcomes = session.execute(text)
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def rows(session, text):
    """The rows of the one statement `text`, which must succeed."""
    outcome = one(session, text)
    assert outcome.ok, outcome.message
    return outcome.relation.rows


def described(outcome) -> tuple:
    """Everything a client sees of an outcome, values with their types (5 and 5.0
    differ): for comparing a fast path's outcome with the general evaluator's."""
    relation = outcome.relation
    if relation is None:
        return outcome.ok, outcome.message, None
    return (outcome.ok, outcome.message, relation.name, relation.columns,
            [[(type(value), value) for value in row] for row in relation.rows])
