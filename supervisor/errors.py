"""The supervisor's exception root.

Every exception the supervisor defines derives from `SupervisorError`, so a
caller can catch "the supervisor refused or failed" in one clause. An
exception that stands for a kind of failure callers already catch keeps
that standard class as a second base (an unknown node id is still a
`KeyError`, overlapping data directories still a `ValueError`).
"""


class SupervisorError(Exception):
    """Something the supervisor could not do, as one sentence or more."""


class UnknownNode(SupervisorError, KeyError):
    """A node id the supervisor (or its replicator) does not run; still a `KeyError`."""


class OverlappingDataDirectories(SupervisorError, ValueError):
    """Two servers' data directories are one, or one lies inside the other; still a `ValueError`."""
