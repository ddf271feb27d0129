"""nodes.relay's command line: bad options are refused clearly, before anything starts."""

from __future__ import annotations

import pytest

from nodes.relay.node import main


def refusal(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main(["--id", "relay", "--port", "0", *argv])
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_upstream_is_refused_not_taken_for_upstream_patience(capsys):
    assert "--upstream: the one relay runs the balancer itself" in refusal(
        capsys, "--backend", "m1=127.0.0.1:1", "--upstream", "127.0.0.1:3949")


def test_a_relay_needs_servers(capsys):
    assert "no server: give --backend" in refusal(capsys)


def test_the_balancer_s_and_the_proxy_s_own_checks_apply(capsys):
    servers = ["--id", "relay", "--port", "0", "--backend", "m1=127.0.0.1:1"]
    assert main([*servers, "--backend", "m1=127.0.0.1:2"]) == 2
    assert "the same ID is given twice" in capsys.readouterr().err
    assert main([*servers, "--settle-ms", "-1"]) == 2
    assert "--settle-ms must not be negative" in capsys.readouterr().err
