"""The fixed layout and the packaging promises of the README hold."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_top_level_layout_is_present():
    for name in ("topology.yaml", "engine", "nodes", "supervisor", "tests", "logs", "bench",
                 "README.md", "pyproject.toml", ".ci/run", "tahiry"):
        assert (ROOT / name).exists(), name


def test_every_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    for requirement in requirements:
        assert "==" in requirement, f"{requirement} is not pinned"
    names = {r.split("==")[0].lower() for r in requirements}
    assert {"pyyaml", "psutil", "watchdog", "sly", "pytest"} <= names


def test_default_topology_is_the_seed_cluster():
    nodes = yaml.safe_load((ROOT / "topology.yaml").read_text())["nodes"]
    assert (nodes["m1"]["port"], nodes["m1"]["data"]) == (3948, "data/m1")
    assert (nodes["m2"]["port"], nodes["m2"]["data"]) == (3950, "data/m2")
    assert nodes["lb"]["kind"] == "balancer" and nodes["lb"]["port"] == 3949
    proxy = nodes["proxy"]
    assert (proxy["kind"], proxy["port"], proxy["ttl_ms"], proxy["max_entries"]) == (
        "proxycache", 3951, 3000, 200)
    assert all(n["host"] == "127.0.0.1" for n in nodes.values())


def test_engine_never_imports_nodes_or_supervisor():
    for path in (ROOT / "engine").rglob("*.py"):
        text = path.read_text()
        assert "import nodes" not in text and "from nodes" not in text, path
        assert "import supervisor" not in text and "from supervisor" not in text, path
    for path in (ROOT / "nodes").rglob("*.py"):
        text = path.read_text()
        assert "import supervisor" not in text and "from supervisor" not in text, path
