"""One write, in a batch of its own, certified and run again while fenced.

`certified_write(store, work)` is how a write outside a server's group
commit lands (a statement run alone, the first administrator made at a
server's start): `work()` pulls what it needs and writes in a fresh batch,
the batch is committed, and the commit is certified (docs/REPLICATION.md):
it lands only if every object written is still, here and on every peer, at
the version `work` read. When a peer or replication got there first,
`work` runs again from the newer versions (nothing of it was applied), after
a growing random pause. Optimism can starve under a storm of writers to one
object on several servers, so the last attempt is pessimistic: it holds the
commit locks of every directory from before `work` to its commit, and
nobody can get there first.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import TypeVar

from engine.errors import TahiryError
from engine.storage.group_commit import (
    BatchFenced,
    BatchNotWritten,
    BatchPartlyWritten,
    WriteOutcomeUnknown,
)
from engine.storage.store import Store

CERTIFY_ATTEMPTS = 6
Result = TypeVar("Result")


def certified_write(store: Store, work: Callable[[], Result]) -> Result:
    """`work()` in a batch of its own, committed; its result once it landed.

    Raises what `work` raises (nothing written), the storage fault of a
    commit that wrote nothing, `WriteOutcomeUnknown` when the commit failed
    part way, or a TahiryError when every attempt was fenced.
    """
    fenced: BatchFenced | None = None
    for attempt in range(CERTIFY_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(0.05, 0.002 * 2 ** attempt)))
        last = attempt == CERTIFY_ATTEMPTS - 1
        with store.holding_commit_locks() if last else nullcontext():
            store.begin_batch()
            try:
                result = work()
            except BaseException:
                store.abort_batch()
                raise
            try:
                store.commit_batch()
            except BatchFenced as refused:
                fenced = refused
                continue
            except BatchNotWritten as refused:
                raise (refused.fault or TahiryError(refused.message)) from None
            except BatchPartlyWritten as partial:
                raise WriteOutcomeUnknown(str(partial)) from None
            return result
    assert fenced is not None  # every attempt ended fenced (the others returned or raised)
    raise TahiryError(fenced.message)
