"""The topology's `tls:` section: read, checked against the files, carried to every node."""

from __future__ import annotations

import pytest

from supervisor.cluster import node_command
from supervisor.topology import TopologyError, parse_topology
from tests.supervisor.test_topology import GOOD
from tests.tlskit import Certificates


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    certificates = Certificates(folder / "tls")
    certificates.machine("h1", ["127.0.0.1"])
    return folder


def parse(folder, tls: str):
    return parse_topology(tls + GOOD, folder / "topology.yaml", {})


def test_every_node_gets_the_files_relative_to_the_topology(folder):
    topology = parse(folder, "tls: {cert: tls/h1.crt, key: tls/h1.key, ca: tls/ca.crt}\n")
    assert topology.tls.cert == folder / "tls" / "h1.crt" and not topology.tls.client_certs
    for node_id in topology.nodes:
        argv = node_command(topology, node_id, folder / "run")
        assert argv[argv.index("--tls-ca") + 1] == str(folder / "tls" / "ca.crt")
        assert "--tls-cert" in argv and "--tls-key" in argv and "--tls-client-certs" not in argv
    required = parse(folder, "tls: {cert: tls/h1.crt, key: tls/h1.key, ca: tls/ca.crt, "
                             "client_certs: true}\n")
    assert "--tls-client-certs" in node_command(required, "m1", folder / "run")


def test_without_a_tls_section_nothing_changes(folder):
    topology = parse(folder, "")
    assert not topology.tls.enabled
    assert not [arg for arg in node_command(topology, "m1", folder / "run") if arg.startswith("--tls")]


def test_a_missing_file_or_key_is_refused_naming_it(folder):
    with pytest.raises(TopologyError) as refused:
        parse(folder, "tls: {cert: tls/nope.crt, key: tls/h1.key, ca: tls/ca.crt}\n")
    assert "tls/nope.crt cannot be read" in str(refused.value)
    with pytest.raises(TopologyError) as refused:
        parse(folder, "tls: {cert: tls/h1.crt, ca: tls/ca.crt}\n")
    assert "tls.key: missing" in str(refused.value)
    with pytest.raises(TopologyError) as refused:
        parse(folder, "tls: {cert: tls/h1.crt, key: tls/ca.key, ca: tls/ca.crt}\n")
    assert "cannot be used" in str(refused.value)
