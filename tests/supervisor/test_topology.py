"""topology.yaml validation: every mistake is one message naming key and line."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supervisor.topology import TopologyError, load_topology
from tests.supervisor.topologykit import errors_of, parse

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
supervisor:
  control_port: 4947
  health:
    interval_ms: 200
nodes:
  m1:
    kind: server
    host: 127.0.0.1
    port: 4948
    data: data/m1
  m2:
    kind: server
    host: 127.0.0.1
    port: 4950
    data: data/m2
  lb:
    kind: balancer
    host: 127.0.0.1
    port: 4949
    backends: [m1, m2]
  proxy:
    kind: proxycache
    host: 127.0.0.1
    port: 4951
    upstream: lb
    ttl_ms: 3000
    max_entries: 200
"""


# The topology.yaml the project ships, as a copy: the one at the repository's
# root is the user's to edit (the README's "Add a node"), and a test of it
# would fail on their edits. Change both together.
SHIPPED = Path(__file__).resolve().parent / "shipped_topology.yaml"


def test_the_default_topology_is_valid(tmp_path):
    shipped = tmp_path / "topology.yaml"
    shipped.write_text(SHIPPED.read_text())
    topology = load_topology(shipped)
    assert topology.start_order() == ["m1", "m2", "lb", "proxy"]
    assert topology.nodes["m1"].data == (tmp_path / "data/m1").resolve()
    assert topology.supervisor.control_port == 3947


# The README's "Add a node", as a student applies it to ./topology.yaml.
README_M3 = """\
  m3:
    kind: server
    host: 127.0.0.1
    port: 3952
    data: data/m3
"""


def test_the_readme_add_a_node_edit_leaves_these_tests_green(tmp_path):
    """These tests, run in a copy of the project whose topology.yaml has the README's m3."""
    ignore = shutil.ignore_patterns("__pycache__", ".*")
    for folder in ("engine", "nodes", "supervisor", "tests/supervisor"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=ignore)
    for name in ("tests/__init__.py", "tests/conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    edited = SHIPPED.read_text().replace("  lb:\n", README_M3 + "  lb:\n").replace(
        "backends: [m1, m2]", "backends: [m1, m2, m3]")
    assert "m3" in load_topology_text(tmp_path / "topology.yaml", edited).nodes
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not add_a_node",
         "tests/supervisor/test_topology.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def load_topology_text(path: Path, text: str):
    path.write_text(text)
    return load_topology(path)


def test_a_good_file_gives_specs_paths_and_dependencies():
    topology = parse(GOOD)
    assert topology.nodes["m2"].data == Path("/tmp/cluster/data/m2")
    assert topology.supervisor.logs == Path("/tmp/cluster/logs")
    assert topology.supervisor.health.interval_ms == 200
    assert topology.supervisor.health.fall == 3  # default kept
    assert topology.dependencies("lb") == ["m1", "m2"]
    assert topology.dependencies("proxy") == ["lb"]
    assert topology.dependencies("m1") == []


def test_a_balancer_without_backends_uses_every_server():
    text = GOOD.replace("    backends: [m1, m2]\n", "")
    assert parse(text).backends_of("lb") == ["m1", "m2"]


def test_unknown_backend_names_key_and_line():
    assert errors_of(GOOD.replace("[m1, m2]", "[m1, m9]")) == [
        "topology.yaml line 20: nodes.lb.backends: unknown node 'm9'"]


def test_unknown_key_is_reported_with_its_line():
    messages = errors_of(GOOD.replace("    ttl_ms: 3000\n", "    ttl_ms: 3000\n    colour: red\n"))
    assert len(messages) == 1
    assert messages[0].startswith("topology.yaml line 27: nodes.proxy.colour: unknown key")


def test_wrong_type_is_reported():
    messages = errors_of(GOOD.replace("port: 4950", "port: '4950'"))
    assert messages == ["topology.yaml line 14: nodes.m2.port: must be an integer, "
                        "not the string '4950'"]


def test_duplicate_port_names_both_nodes():
    messages = errors_of(GOOD.replace("port: 4950", "port: 4948"))
    assert messages == ["topology.yaml line 14: nodes.m2.port: port 4948 on 127.0.0.1 "
                        "is already used by node 'm1'"]


def test_port_of_the_control_port_is_taken_too():
    messages = errors_of(GOOD.replace("port: 4951", "port: 4947"))
    assert "already used by supervisor.control_port" in messages[0]


def test_missing_data_directory():
    messages = errors_of(GOOD.replace("    data: data/m2\n", ""))
    assert messages == ["topology.yaml line 11: nodes.m2.data: missing (a server needs it)"]


def test_port_out_of_range_and_bad_ttl():
    messages = errors_of(GOOD.replace("port: 4949", "port: 70000").replace("ttl_ms: 3000", "ttl_ms: 0"))
    assert messages == [
        "topology.yaml line 19: nodes.lb.port: must be between 1 and 65535, not 70000",
        "topology.yaml line 26: nodes.proxy.ttl_ms: must be at least 1, not 0"]


def test_unknown_kind_and_bad_id():
    text = GOOD.replace("kind: balancer", "kind: router").replace("  m2:\n", "  2m:\n")
    messages = errors_of(text)
    assert any("line 11: nodes.2m: a node id must be" in m for m in messages)
    assert any("line 17: nodes.lb.kind: unknown kind 'router'" in m for m in messages)


def test_proxycache_upstream_must_be_balancer_or_server():
    text = GOOD.replace("upstream: lb", "upstream: proxy")
    assert errors_of(text) == ["topology.yaml line 25: nodes.proxy.upstream: "
                               "'proxy' is a proxycache, not a balancer or server"]


def test_backend_that_is_not_a_server():
    assert errors_of(GOOD.replace("[m1, m2]", "[m1, proxy]")) == [
        "topology.yaml line 20: nodes.lb.backends: 'proxy' is a proxycache, not a server"]


def test_duplicate_key_and_yaml_syntax_error():
    assert errors_of(GOOD.replace("    port: 4950\n", "    port: 4950\n    port: 4952\n")) == [
        "topology.yaml line 15: duplicate key 'port'"]
    messages = errors_of(GOOD.replace("[m1, m2]", "[m1, m2"))
    assert messages[0].startswith("topology.yaml line ") and "invalid YAML" in messages[0]


def test_two_servers_sharing_a_data_directory():
    messages = errors_of(GOOD.replace("data/m2", "data/m1"))
    assert messages == ["topology.yaml line 15: nodes.m2.data: same data directory as 'm1'"]


def test_non_loopback_host_needs_a_secret():
    text = GOOD.replace("host: 127.0.0.1\n    port: 4950", "host: 10.0.0.5\n    port: 4950")
    messages = errors_of(text)
    assert len(messages) == 1 and "nodes.m2.host: '10.0.0.5' is not a loopback address" in messages[0]
    strong = "s3cret-of-16-chars"
    assert parse(text, {"TAHIRY_SECRET": strong}).nodes["m2"].host == "10.0.0.5"
    assert parse(f"secret: {strong}\n" + text).secret == strong


def test_a_weak_secret_is_refused_off_loopback_and_warned_about_on_it():
    off_loopback = GOOD.replace("host: 127.0.0.1\n    port: 4950", "host: 10.0.0.5\n    port: 4950")
    messages = errors_of("secret: x\n" + off_loopback)
    assert messages == ["topology.yaml line 1: secret: too weak: 1 character(s), a cluster "
                        "with a node off loopback needs at least 16 (nodes.m2.host is 10.0.0.5)"]
    messages = errors_of(off_loopback, {"TAHIRY_SECRET": "short-secret"})
    assert len(messages) == 1 and "TAHIRY_SECRET" in messages[0] and "at least 16" in messages[0]
    assert "short-secret" not in messages[0]
    loopback = parse("secret: x\n" + GOOD)
    assert loopback.secret == "x"
    assert loopback.warnings == ("topology.yaml line 1: secret: weak: 1 character(s); it is "
                                 "accepted because every node listens on loopback, but a node "
                                 "off loopback needs at least 16",)
    # Strong enough; only the plain TCP off loopback is worth a word (issue 13: `check` warns).
    assert parse("secret: sixteen-chars-ok\n" + off_loopback).warnings == (
        "nodes listen off loopback without TLS: the secret authenticates but nothing is "
        "encrypted (a `tls:` section: docs/SECURITY.md)",)
    assert parse(GOOD).warnings == ()


def test_a_secret_of_the_wrong_type_is_not_echoed():
    messages = errors_of("secret: 123456789012345678\n" + GOOD)
    assert messages == ["topology.yaml line 1: secret: must be a non-empty string, "
                        "not an integer (value not shown: it is the secret)"]


def test_empty_file_and_missing_sections():
    assert errors_of("") == ["topology.yaml line 1: the file is empty (expected a 'nodes' mapping)"]
    messages = errors_of("nodes: {}\n")
    assert any("supervisor: missing" in m for m in messages)
    assert any("nodes: no node defined" in m for m in messages)


def test_every_mistake_is_reported_in_line_order():
    text = GOOD.replace("port: 4950", "port: x").replace("[m1, m2]", "[m9]")
    messages = errors_of(text)
    assert [m.split(":")[0] for m in messages] == ["topology.yaml line 14", "topology.yaml line 20"]


def test_load_topology_of_a_missing_file(tmp_path):
    with pytest.raises(TopologyError, match="cannot read the file"):
        load_topology(tmp_path / "nope.yaml")


def test_write_leases_are_off_by_default_and_their_timings_are_checked():
    assert not parse(GOOD).write_leases.enabled
    on = parse(GOOD + "write_leases: {enabled: true, lease_s: 6, renew_s: 2, margin_s: 1.5}\n")
    assert on.write_leases.enabled
    assert (on.write_leases.lease_s, on.write_leases.renew_s, on.write_leases.margin_s) == \
        (6.0, 2.0, 1.5)
    assert parse(GOOD + "write_leases: {enabled: true}\n").write_leases.lease_s == 3.0
    too_short = errors_of(GOOD + "write_leases: {enabled: true, lease_s: 2}\n")
    assert "renew_s (1) must be below lease_s - margin_s (1)" in too_short[0]
    assert "write_leases.lease_s: must be a number" in errors_of(
        GOOD + "write_leases: {lease_s: -3}\n")[0]
    assert "write_leases.enabled: must be true or false" in errors_of(
        GOOD + "write_leases: {enabled: sometimes}\n")[0]
    assert "write_leases.bogus: unknown key" in errors_of(GOOD + "write_leases: {bogus: 1}\n")[0]


def test_a_data_directory_inside_another_servers_is_refused():
    """Bug: `check` said valid, and `up` crashed with a traceback (OverlappingDataDirectories)
    after creating the inner directory."""
    messages = errors_of(GOOD.replace("data: data/m2", "data: data/m1/m2"))
    assert messages == ["topology.yaml line 15: nodes.m2.data: inside the data directory of "
                        "'m1' (/tmp/cluster/data/m1): each server needs a directory of its own"]
    messages = errors_of(GOOD.replace("data: data/m1", "data: data"))
    assert messages == ["topology.yaml line 15: nodes.m2.data: inside the data directory of "
                        "'m1' (/tmp/cluster/data): each server needs a directory of its own"]


def test_a_data_directory_that_is_a_file_is_refused(tmp_path):
    """Bug: `check` said valid, and `up` crashed with a FileExistsError traceback."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "m2").write_text("not a directory\n")
    with pytest.raises(TopologyError) as caught:
        load_topology_text(tmp_path / "topology.yaml", GOOD)
    assert caught.value.messages == [
        f"topology.yaml line 15: nodes.m2.data: {tmp_path / 'data' / 'm2'} is a file, "
        "not a directory"]
    (tmp_path / "data" / "m1").write_text("not a directory either\n")
    with pytest.raises(TopologyError) as caught:
        load_topology_text(tmp_path / "topology.yaml", GOOD.replace("data/m1", "data/m1/db"))
    assert caught.value.messages[0] == (
        f"topology.yaml line 10: nodes.m1.data: {tmp_path / 'data' / 'm1'} is a file, "
        "not a directory")


def test_a_node_may_not_be_called_supervisor():
    """Bug: a node 'supervisor' was accepted; its output went into logs/supervisor.log, the
    supervisor's own log (two writers rotating one file), and `logs supervisor` mixed both."""
    text = GOOD.replace("  lb:\n", "  supervisor:\n").replace("upstream: lb", "upstream: supervisor")
    messages = errors_of(text)
    assert messages == ["topology.yaml line 16: nodes.supervisor: 'supervisor' is the "
                        "supervisor's own name (its log is logs/supervisor.log): choose another "
                        "node id"]


def test_a_logs_or_run_folder_that_is_a_file_is_refused(tmp_path):
    """Bug: `check` said valid, and `up` crashed with a FileExistsError traceback."""
    (tmp_path / "run").write_text("not a directory\n")
    with pytest.raises(TopologyError) as caught:
        load_topology_text(tmp_path / "topology.yaml", GOOD)
    assert caught.value.messages == [
        f"topology.yaml line 2: supervisor.run: {tmp_path / 'run'} is a file, not a directory "
        "(the supervisor's run files go there)"]
    (tmp_path / "run").unlink()
    (tmp_path / "var").write_text("not a directory\n")
    with pytest.raises(TopologyError) as caught:
        load_topology_text(tmp_path / "topology.yaml",
                           GOOD.replace("  control_port: 4947\n", "  control_port: 4947\n  logs: var/logs\n"))
    assert caught.value.messages == [
        f"topology.yaml line 3: supervisor.logs: {tmp_path / 'var'} is a file, not a directory "
        "(the supervisor's logs go there)"]


def test_a_node_id_longer_than_a_file_name_allows_is_refused():
    """Bug: `check` said valid for a 300-character node id, and `up` crashed with a
    traceback (OSError: File name too long) writing run/<id>.peers.json."""
    long_id = "m" + "x" * 299
    messages = errors_of(GOOD.replace("  m2:\n", f"  {long_id}:\n").replace("[m1, m2]",
                                                                            f"[m1, {long_id}]"))
    assert messages == [f"topology.yaml line 11: nodes.{long_id}: a node id has at most 64 "
                        "characters (it names the node's files), not 300"]
    assert "m" + "x" * 63 in parse(GOOD.replace("  m2:\n", "  m" + "x" * 63 + ":\n").replace(
        "[m1, m2]", "[m1, m" + "x" * 63 + "]")).nodes


def test_yaml_nested_too_deep_or_aliases_multiplied_are_refused_at_once():
    """`[[[[...` 3000 deep raised RecursionError (a traceback from `check`, `up`, a
    reload); nine aliases of nine (a "billion laughs") ran for minutes, expanded."""
    deep = "supervisor: {control_port: 4947}\nnodes: " + "[" * 3000 + "\n"
    messages = errors_of(deep)
    assert len(messages) == 1 and "nested too deep" in messages[0], messages
    laughs = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for name, previous in zip("bcdefgh", "abcdefg", strict=True):
        laughs.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    started = time.monotonic()
    messages = errors_of("\n".join(laughs) + "\nnodes: *h\n")
    assert time.monotonic() - started < 5
    assert len(messages) == 1 and "too many values" in messages[0], messages
    keys = ["a: 1", "nodes:"] + [f"  ? &{name} [{', '.join([f'*{previous}'] * 9)}]\n  : 1"
                                 for name, previous in zip("bcdefgh", "abcdefg", strict=True)]
    keys[2] = keys[2].replace("*a, " * 8 + "*a", ", ".join(["x"] * 9))
    messages = errors_of("\n".join(keys) + "\n")
    assert len(messages) == 1 and "a key must be a name" in messages[0], messages
    # Anchors of a usual size are fine.
    assert parse(GOOD.replace("backends: [m1, m2]", "backends: &pair [m1, m2]")).nodes["lb"]
