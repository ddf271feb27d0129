"""The fixed layout, the packaging promises of the README and the package boundaries hold.

The boundaries (docs/ARCHITECTURE.md, "Dependency rules") are checked on the
imports themselves: every `import` and `from ... import` of every module of
engine/, nodes/ and supervisor/, read with `ast` (function-level imports
included, relative imports resolved), never by searching the text.
"""

import ast
import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL_PACKAGES = ("engine", "nodes", "supervisor")
NODE_PACKAGES = ("nodes.server", "nodes.balancer", "nodes.proxycache", "nodes.client")
# The one relay composes two nodes (a proxy cache running the balancer in its
# process): the one package allowed to import other node packages.
RELAY_PACKAGE = "nodes.relay"
RUNNABLE_PACKAGES = (*NODE_PACKAGES, RELAY_PACKAGE, "engine", "supervisor")


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
    # The shipped default, kept under tests/: the user's topology.yaml may be edited.
    nodes = yaml.safe_load((ROOT / "tests" / "supervisor" / "shipped_topology.yaml").read_text())["nodes"]
    assert (nodes["m1"]["port"], nodes["m1"]["data"]) == (3948, "data/m1")
    assert (nodes["m2"]["port"], nodes["m2"]["data"]) == (3950, "data/m2")
    assert nodes["lb"]["kind"] == "balancer" and nodes["lb"]["port"] == 3949
    proxy = nodes["proxy"]
    assert (proxy["kind"], proxy["port"], proxy["ttl_ms"], proxy["max_entries"]) == (
        "proxycache", 3951, 3000, 200)
    assert all(n["host"] == "127.0.0.1" for n in nodes.values())


# --- the imports -------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One imported name as an absolute dotted path, and where it is imported."""

    importer: str      # the importing module, e.g. "engine.language.lexer"
    imported: str      # e.g. "engine.evaluation.values.MAX_NUMBER"
    where: str         # "engine/language/lexer.py:25", for the failure message


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[Import]:
    """Every import of one module. `from X import Y` counts as `X.Y`: a
    submodule imported by name (`from engine import evaluation`) is then seen
    under its own package, and a name from a module still starts with that
    module's path."""
    importer = module_name(path)
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(importer, alias.name, where) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found += [Import(importer, f"{source}.{alias.name}", where) for alias in node.names]
    return found


@functools.cache
def all_imports() -> tuple[Import, ...]:
    found = []
    for top in TOP_LEVEL_PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            found += imports_of(path)
    return tuple(found)


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(importers: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    """The imports by modules of `importers` of anything within `forbidden`,
    except what lies within `allowed` (a narrower package)."""
    return [f"{i.where}: {i.importer} imports {i.imported}"
            for i in all_imports()
            if within(i.importer, importers)
            and any(within(i.imported, f) for f in forbidden)
            and not any(within(i.imported, a) for a in allowed)]


def test_the_import_reader_sees_relative_and_nested_imports():
    imports = {i.imported for i in imports_of(ROOT / "supervisor" / "cli.py")}
    assert "supervisor.topology.TopologyError" in imports  # `from .topology import ...`
    assert any(within(i.imported, "engine") for i in all_imports() if within(i.importer, "nodes"))


# Leaf modules at the top of engine/ that every layer may use; they import
# nothing of the engine themselves.
SHARED_ENGINE_MODULES = ("engine.collector", "engine.errors", "engine.lru", "engine.vocabulary")

BOUNDARIES = [
    pytest.param("engine", ("nodes", "supervisor"), (), id="engine-not-nodes-or-supervisor"),
    pytest.param("nodes", ("supervisor",), (), id="nodes-not-supervisor"),
    pytest.param("engine.language", ("engine.evaluation",), (), id="language-not-evaluation"),
    pytest.param("engine.storage", ("engine.evaluation",), (), id="storage-not-evaluation"),
    pytest.param("engine.language", ("engine.storage",), (), id="language-not-storage"),
    pytest.param("engine.storage", ("engine.language",), (), id="storage-not-language"),
    # Nothing of the engine but themselves and the shared leaves (not
    # engine.session, engine.progress nor engine.__main__ either).
    pytest.param("engine.language", ("engine",), ("engine.language", *SHARED_ENGINE_MODULES),
                 id="language-only-shared"),
    pytest.param("engine.storage", ("engine",), ("engine.storage", *SHARED_ENGINE_MODULES),
                 id="storage-only-shared"),
    *[pytest.param(shared, ("engine",), (shared,), id=f"{shared.split('.')[1]}-is-a-leaf")
      for shared in SHARED_ENGINE_MODULES],
    pytest.param("nodes.protocol", ("nodes",), ("nodes.protocol", "nodes.errors"),
                 id="protocol-only-protocol"),
    pytest.param("nodes.runtime", ("nodes",), ("nodes.protocol", "nodes.runtime", "nodes.errors"),
                 id="runtime-only-protocol"),
    pytest.param("nodes.errors", ("nodes", "engine"), ("nodes.errors",), id="node-errors-is-a-leaf"),
    *[pytest.param(node, ("nodes",), (node, "nodes.protocol", "nodes.runtime", "nodes.errors"),
                   id=f"{node.split('.')[1]}-no-other-node")
      for node in NODE_PACKAGES],
    pytest.param(RELAY_PACKAGE, ("nodes",), (RELAY_PACKAGE, "nodes.proxycache", "nodes.balancer",
                                             "nodes.protocol", "nodes.runtime", "nodes.errors"),
                 id="relay-only-proxycache-and-balancer"),
]


@pytest.mark.parametrize("importers, forbidden, allowed", BOUNDARIES)
def test_package_boundaries(importers, forbidden, allowed):
    assert violations(importers, forbidden, allowed) == []


# --- the packages ------------------------------------------------------------


def packages() -> list[str]:
    return sorted(module_name(init) for top in TOP_LEVEL_PACKAGES
                  for init in (ROOT / top).rglob("__init__.py"))


@pytest.mark.parametrize("package", packages())
def test_every_package_has_a_docstring(package):
    init = ROOT / package.replace(".", "/") / "__init__.py"
    assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)} has no docstring"


@pytest.mark.parametrize("package", RUNNABLE_PACKAGES)
def test_runnable_packages_have_a_main(package):
    assert (ROOT / package.replace(".", "/") / "__main__.py").is_file(), package


def test_the_package_list_covers_the_layout():
    assert {"engine.language", "engine.evaluation", "engine.storage", "nodes.protocol",
            "nodes.runtime", *NODE_PACKAGES, RELAY_PACKAGE} <= set(packages())
