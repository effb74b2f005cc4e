"""The shape of the DCM core, checked on its syntax trees: layers import only downward, and only the
state API touches the pool's keys.

These read the code's imports and calls (``ast``), not its text, so a comment or a docstring that
mentions ``/dcm/`` or ``txn`` is fine, and a renamed import cannot slip past.
"""

from __future__ import annotations

import ast
import os

import pytest

from support import REPO

CORE = os.path.join(REPO, "plugins", "module_utils")
MODULES = os.path.join(REPO, "plugins", "modules")

# Each layer and the layers it may import (its own included). Order is the architecture, bottom up.
ALLOWED = {
    "core": {"core"},
    "spec": {"core", "spec"},
    "policy": {"core", "spec", "policy"},
    "state": {"core", "spec", "policy", "state"},
    "host": {"core", "spec", "policy", "host"},
    "ops": {"core", "spec", "policy", "state", "host", "ops"},
    "daemons": {"core", "spec", "policy", "state", "host", "ops", "daemons"},
    "interface": {"core", "spec", "policy", "state", "host", "ops", "daemons", "interface"},
}
# What may leave the state layer: the client and its configuration, never keys or transaction parts.
STATE_EXPORTS_FOR_OTHERS = {"store": None, "etcd": {"EtcdClient", "EtcdConfig", "etcd_config_from"},
                            "events": {"EventLog", "KINDS"}, "flannel_network": None, "access": None}
ETCD_CALLS = {"txn", "get_prefix", "range", "lease_grant", "lease_keepalive", "lease_revoke"}
POOL_PREFIX = "/dcm/"


def core_files() -> list:
    found = []
    for folder, _dirs, files in os.walk(CORE):
        for name in files:
            if name.endswith(".py"):
                found.append(os.path.join(folder, name))
    return sorted(found)


def module_files() -> list:
    return sorted(os.path.join(MODULES, name) for name in os.listdir(MODULES) if name.endswith(".py"))


def layer_of(path: str) -> str | None:
    parts = os.path.relpath(path, CORE).split(os.sep)
    return parts[0] if len(parts) == 2 else None


def parse(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as handle:
        return ast.parse(handle.read(), path)


def imported_core_modules(path: str, tree: ast.Module) -> list:
    """``[(layer, module or None, names)]`` of every import of the DCM core in ``path``."""
    found = []
    layer = os.path.basename(os.path.dirname(path))  # relative imports start from the file's own folder
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        names = {alias.name for alias in node.names}
        if node.level:  # relative: from ..state.etcd import x / from . import keys / from .store import x
            base = [] if node.level == 2 else [layer]
            parts = base + (node.module.split(".") if node.module else [])
        elif node.module and ".plugins.module_utils" in node.module:
            parts = node.module.split(".plugins.module_utils")[1].strip(".").split(".")
            parts = [p for p in parts if p]
        else:
            continue
        if not parts:
            continue
        if len(parts) == 1:  # from ..state import keys, store
            found.extend((parts[0], name, {name}) for name in names)
        else:
            found.append((parts[0], parts[1], names))
    return found


def docstring_nodes(tree: ast.Module) -> set:
    """The string constants that are docstrings (they may mention keys)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def state_violations(path: str, tree: ast.Module) -> list:
    """What ``path`` (outside the state layer) does that only the state API may do."""
    problems = []
    for layer, module, names in imported_core_modules(path, tree):
        if layer != "state":
            continue
        allowed = STATE_EXPORTS_FOR_OTHERS.get(module, set())
        if module not in STATE_EXPORTS_FOR_OTHERS:
            problems.append(f"imports state.{module} (key layout or etcd internals)")
        elif allowed is not None and not names <= allowed:
            problems.append(f"imports {sorted(names - allowed)} from state.{module}")
    docstrings = docstring_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ETCD_CALLS:
            problems.append(f"line {node.lineno}: calls .{node.func.attr}() on an etcd client")
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                and node.value.startswith(POOL_PREFIX)):
            problems.append(f"line {node.lineno}: spells a pool key {node.value!r}")
    return problems


@pytest.mark.parametrize("path", [p for p in core_files() if layer_of(p)], ids=lambda p: os.path.relpath(p, CORE))
def test_each_core_file_imports_only_its_own_layer_and_those_below(path):
    layer = layer_of(path)
    assert layer in ALLOWED, f"{path}: a folder of module_utils that is not a known layer"
    wrong = sorted({f"{imported}.{module}" for imported, module, _names in imported_core_modules(path, parse(path))
                    if imported not in ALLOWED[layer]})
    assert not wrong, f"{os.path.relpath(path, CORE)} ({layer}) imports {', '.join(wrong)}"


def test_the_core_has_no_module_outside_a_layer():
    loose = [os.path.relpath(p, CORE) for p in core_files()
             if layer_of(p) is None and os.path.basename(p) != "__init__.py"]
    assert not loose, f"files outside the layer folders: {loose}"


@pytest.mark.parametrize("path", [p for p in core_files() if layer_of(p) != "state"] + module_files(),
                         ids=lambda p: os.path.relpath(p, REPO))
def test_only_the_state_api_builds_pool_keys_or_transactions(path):
    problems = state_violations(path, parse(path))
    assert not problems, f"{os.path.relpath(path, REPO)}: " + "; ".join(problems)


def test_the_checks_catch_a_key_built_outside_the_state_api(tmp_path):
    """The checks above must be able to fail: a daemon that writes a key itself is caught."""
    folder = tmp_path / "daemons"
    folder.mkdir()
    bad = folder / "rogue.py"
    bad.write_text('from ..state import keys\nfrom ..state.etcd import op_put\n'
                   'def go(client):\n    """Writes /dcm/clusters/x (a docstring may say so)."""\n'
                   '    client.txn([], [op_put(keys.cluster_key("x"), "{}")])\n'
                   '    client.put("/dcm/leader", "me")\n')
    problems = state_violations(str(bad), parse(str(bad)))
    assert any("state.keys" in p for p in problems)
    assert any("op_put" in p for p in problems)
    assert any(".txn()" in p for p in problems)
    assert any("'/dcm/leader'" in p for p in problems)
    assert not any("clusters/x (a docstring" in p for p in problems)


def test_the_checks_catch_a_policy_that_imports_io(tmp_path):
    folder = tmp_path / "policy"
    folder.mkdir()
    bad = folder / "sneaky.py"
    bad.write_text("from ..host.docker import connect\nfrom ..core.errors import DcmError\n")
    found = {layer for layer, _module, _names in imported_core_modules(str(bad), parse(str(bad)))}
    assert found == {"host", "core"}
    assert not found <= ALLOWED["policy"]
