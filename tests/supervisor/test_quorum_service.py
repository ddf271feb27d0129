"""The voter's I/O side (supervisor/quorum_service.py): its answers, its file, bad input.

In process, no network: `handle` is what the control port calls with
another machine's `quorum` request (supervisor/control.py).
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from supervisor.quorum import Config, LeaseSettings, QuorumError
from supervisor.quorum_service import QuorumService, quorum_voters

MACHINES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
SETTINGS = LeaseSettings(enabled=True)


def service(run_dir, me="10.0.0.1") -> QuorumService:
    async def nothing() -> None:
        return None

    async def aligned(members: list[str]) -> bool:
        return True

    return QuorumService(me, MACHINES, {m: [f"s{i}"] for i, m in enumerate(MACHINES)}, 4099,
                         None, None, SETTINGS, run_dir, logging.getLogger("test"), lambda: None,
                         nothing, aligned)


def ask(voter: QuorumService, **request) -> dict:
    config = Config.first(MACHINES).as_dict()
    return asyncio.run(voter.handle({"cmd": "quorum", "config": config, **request}))


def test_a_promise_is_written_before_the_answer_and_survives_a_restart(tmp_path):
    voter = service(tmp_path)
    answer = ask(voter, **{"from": "10.0.0.2", "op": "prepare", "epoch": 1,
                           "ballot": [4, "10.0.0.2"]})
    assert answer["ok"] and answer["yes"]
    kept = json.loads((tmp_path / "quorum.json").read_text())
    assert kept["promised"] == [4, "10.0.0.2"]
    again = service(tmp_path)
    lower = ask(again, **{"from": "10.0.0.3", "op": "prepare", "epoch": 1,
                          "ballot": [3, "10.0.0.3"]})
    assert lower["ok"] and not lower["yes"] and "promised" in lower["reason"]


def test_bad_requests_get_a_sentence_and_change_nothing(tmp_path):
    voter = service(tmp_path)
    for request in ({"from": "10.9.9.9", "op": "grant", "epoch": 0},
                    {"from": "10.0.0.2", "op": "grant", "epoch": "zero"},
                    {"from": "10.0.0.2", "op": "steal"},
                    {"from": "10.0.0.2", "op": "prepare", "epoch": 1, "ballot": "high"},
                    {"from": "10.0.0.2", "op": "accept", "ballot": [1, "x"], "proposal": {}}):
        answer = ask(voter, **request)
        assert not answer["ok"] and answer["error"], request
    assert not (tmp_path / "quorum.json").exists()
    assert voter.config == Config.first(MACHINES)


def test_a_newer_decided_epoch_in_any_request_is_learned_and_kept(tmp_path):
    voter = service(tmp_path)
    decided = Config.first(MACHINES).step("exclude", "10.0.0.2")
    answer = asyncio.run(voter.handle({"cmd": "quorum", "from": "10.0.0.3", "op": "learn",
                                       "config": decided.as_dict()}))
    assert answer["ok"] and answer["config"]["epoch"] == 1
    assert service(tmp_path).config == decided
    refused = ask(voter, **{"from": "10.0.0.2", "op": "grant", "epoch": 1})
    assert not refused["yes"] and "excluded" in refused["reason"]


def test_an_unreadable_voter_file_is_refused_not_guessed(tmp_path):
    (tmp_path / "quorum.json").write_text("{torn")
    with pytest.raises(QuorumError, match="unreadable voter state"):
        service(tmp_path)


def test_fewer_than_three_machines_leave_leases_off():
    assert quorum_voters(["a", "b", "a"])[1] is not None
    assert quorum_voters(["a", "b", "c"]) == (["a", "b", "c"], None)


def test_up_is_refused_with_a_torn_or_foreign_voter_file(tmp_path):
    from supervisor.quorum_service import voter_file_problem

    assert voter_file_problem(tmp_path, MACHINES) is None   # none yet: a first start
    service(tmp_path)._save()
    assert voter_file_problem(tmp_path, MACHINES) is None
    assert "voters" in (voter_file_problem(tmp_path, [*MACHINES, "10.0.0.4"]) or "")
    assert voter_file_problem(tmp_path, MACHINES[:2]) is None   # leases off: not read
    (tmp_path / "quorum.json").write_text("[]")
    assert "unreadable voter state" in (voter_file_problem(tmp_path, MACHINES) or "")
