"""A data directory belongs to one cluster: a second topology naming the same directories
(other ports) is refused at `up`, whether the first cluster runs or is stopped, until the
directories are handed over deliberately with `up --take-over`.

Both clusters are copies of topology.yaml on free ports (cluster_scenario's
SupervisedCluster); the second one's servers name the first one's data
directories by absolute path.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ping
from tests.integration.cluster_scenario import SupervisedCluster
from tests.integration.faultkit import WireClient, rows_of

pytestmark = pytest.mark.slow  # whole supervised clusters, one after another


@pytest.fixture
def clusters(tmp_path):
    first = SupervisedCluster(tmp_path / "first")
    second = SupervisedCluster(tmp_path / "second")
    for server in second.servers:
        second.document["nodes"][server]["data"] = str(first.data_dir(server))
    second.topology.write_text(yaml.safe_dump(second.document, sort_keys=False))
    yield first, second
    for cluster in (second, first):
        cluster.down()
    leftovers = first.kill_leftovers() + second.kill_leftovers()
    assert leftovers == [], "processes survived `down`"


def nothing_started(cluster: SupervisedCluster) -> bool:
    return not any(ping(port) for port in cluster.ports.values()) \
        and not (cluster.workdir / "run" / "supervisor.pid").exists()


def cluster_of(data) -> str:
    return json.loads((data / ".tahiry.cluster").read_text())["cluster"]


def write_rows(cluster: SupervisedCluster, *statements: str) -> None:
    with WireClient(cluster.ports["lb"]) as client:
        for statement in statements:
            answer = client.execute(statement)
            assert answer.ok, f"{statement}: {answer.message}"


def test_a_second_cluster_is_refused_while_the_first_runs(clusters):
    first, second = clusters
    first.up()
    write_rows(first, "manamboara tahiry r", "ampiasao r", "manamboara tabilao t (id ISA(0,null))",
               "manampia ao@ t sanda (1), (2)")
    m1 = first.status()["m1"]

    for extra in ((), ("--take-over",)):  # handing over never takes a directory from a live server
        refused = second.cli("up", "-d", str(second.topology), *extra)
        assert refused.returncode != 0, refused.stdout + refused.stderr
        assert (f"m1: data directory {first.data_dir('m1')} is in use by node m1 "
                f"(pid {m1['pid']}, {m1['address']}) of cluster {first.topology}") in refused.stderr
        assert "nothing was started" in refused.stderr
        assert nothing_started(second)
    first.wait_whole()
    assert cluster_of(first.data_dir("m1")) == str(first.topology)


def test_a_second_cluster_is_refused_when_the_first_is_stopped_unless_handed_over(clusters):
    first, second = clusters
    first.up()
    write_rows(first, "manamboara tahiry r", "ampiasao r", "manamboara tabilao t (id ISA(0,null))",
               "manampia ao@ t sanda (1), (2)")
    first.down()

    refused = second.cli("up", "-d", str(second.topology))
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert (f"data directory {first.data_dir('m2')} belongs to cluster {first.topology}"
            in refused.stderr)
    assert f"supervisor up {second.topology} --take-over" in refused.stderr
    assert nothing_started(second)

    handed = second.cli("up", "-d", str(second.topology), "--take-over")
    assert handed.returncode == 0, handed.stdout + handed.stderr + second.supervisor_log()
    second.wait_whole()
    assert cluster_of(first.data_dir("m1")) == str(second.topology)
    assert "handed over to this cluster" in second.supervisor_log()
    with WireClient(second.ports["lb"]) as client:  # the data came along
        assert client.use("r").ok
        assert sorted(rows_of(client.execute("alaivo * ao@ t"))) == [[1], [2]]

    # Now the first cluster is the other one.
    second.down()
    back = first.cli("up", "-d", str(first.topology))
    assert back.returncode != 0 and f"belongs to cluster {second.topology}" in back.stderr
    assert nothing_started(first)
