"""Conventions of the operator playbooks, checked on their parsed YAML (not their text).

- Every module of the collection is in the action group ``dcm`` (meta/runtime.yml), so that
  ``module_defaults: {group/dcspark.dcm.dcm: ...}`` reaches it.
- The etcd connection is given once per play, in ``module_defaults`` for that group: no task, block,
  play variable or YAML anchor repeats an etcd option. A play with those defaults runs no module
  that takes no etcd options (Ansible hands group defaults to every module of the group, and such a
  module refuses unknown options), and a playbook task of a module that keeps state in etcd runs in a
  play that has them.
- A cluster name is checked in one place, the spec schema's rule through ``dcspark.dcm.dcm_spec``:
  no playbook matches a cluster name against a regex of its own.

Each check is also run on a small playbook that breaks it, so that none can pass vacuously.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
import yaml
from ansible.playbook.task import Task

from support import REPO

ROOT = Path(REPO)
GROUP = "group/dcspark.dcm.dcm"
PREFIX = "dcspark.dcm."
# what reaches etcd (every one needed) and who the module is there (the identity file, or a user and a password file)
CONNECTION = {"etcd_endpoints", "etcd_ca_cert", "etcd_client_cert", "etcd_client_key"}
ETCD_OPTIONS = CONNECTION | {"etcd_user", "etcd_password_file", "etcd_identity_file"}
# the one variable (roles/dcm defaults) playbooks give the group as its module_defaults
SHARED_DEFAULTS = re.compile(r"\{\{\s*dcm_etcd_module_defaults\s*\}\}")
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")
BLOCK_LISTS = ("block", "rescue", "always")
TASK_KEYWORDS = set(Task.fattributes) - {"action"} | {"listen"} | set(BLOCK_LISTS)
INCLUDES = {"ansible.builtin.import_tasks", "ansible.builtin.include_tasks", "import_tasks", "include_tasks"}
ROLE_INCLUDES = {"ansible.builtin.import_role", "ansible.builtin.include_role", "import_role", "include_role"}
# A Jinja test or filter that matches a regular expression.
REGEX_OPERATOR = re.compile(r"\bis\s+(?:not\s+)?(?:match|search|regex)\b|\|\s*regex_(?:search|findall)\b")
# What names a cluster: the -e cluster=... of the operator playbooks, deploy_name, a spec's name.
CLUSTER_NAME = re.compile(r"cluster|deploy_name|spec\w*\.name\b")
# dcm_spec given the -e cluster as it is (a default only turns "not given" into the spec's own message)
CHECKED_NAME = re.compile(r"\{\{\s*cluster\s*(\|\s*default\([^)]*\)\s*)?\}\}")
CLAUSE_SPLIT = re.compile(r"\band\b|\bor\b|\bif\b|\belse\b|[,(\n]")


# -- reading -------------------------------------------------------------------------------------
def load(path: Path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def playbook_files(root: Path) -> list:
    return sorted((root / "playbooks").rglob("*.yml"))


def is_playbook(doc) -> bool:
    return isinstance(doc, list) and any(
        isinstance(item, dict) and ("hosts" in item or any(key.endswith("import_playbook") for key in item))
        for item in doc)


def plays(doc) -> list:
    return [item for item in doc if isinstance(item, dict) and "hosts" in item]


def module_documentation(root: Path, module: str) -> str:
    """The DOCUMENTATION text of plugins/modules/<module>.py, read from its syntax tree (nothing is imported)."""
    path = root / "plugins" / "modules" / f"{module}.py"
    assert path.is_file(), f"no module {module} ({path})"
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return node.value.value
    raise AssertionError(f"{path} has no DOCUMENTATION")


def takes_etcd_options(root: Path, module: str) -> bool:
    """Whether a module documents the etcd options (the dcspark.dcm.etcd fragment, or its own)."""
    text = module_documentation(root, module)
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError:  # documentation that does not parse: ansible-test sanity says so; read its lines
        return bool(re.search(r"^\s*(?:- )?dcspark\.dcm\.etcd\s*$|^  etcd_endpoints:", text, re.MULTILINE))
    fragments = doc.get("extends_documentation_fragment") or []
    fragments = [fragments] if isinstance(fragments, str) else fragments
    return "dcspark.dcm.etcd" in fragments or CONNECTION <= set(doc.get("options") or {})


def needs_etcd(root: Path, module: str) -> bool:
    """Whether a module keeps state in etcd: its ``DcmModule(..., etcd=...)`` is ``"required"`` (the default)."""
    path = root / "plugins" / "modules" / f"{module}.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DcmModule":
            for keyword in node.keywords:
                if keyword.arg == "etcd" and isinstance(keyword.value, ast.Constant):
                    return keyword.value.value == "required"
    return True


def group_defaults(node: dict, inherited: dict | None = None) -> dict:
    """The etcd options the group dcspark.dcm.dcm gets in a play, block or task: its own module_defaults
    for the group when it has some (they replace what it inherits, as in Ansible), else ``inherited``."""
    defaults = node.get("module_defaults") or {}
    entries = [entry for entry in (defaults if isinstance(defaults, list) else [defaults])
               if isinstance(entry, dict) and GROUP in entry]
    if not entries:
        return dict(inherited or {})
    given = entries[-1][GROUP] or {}
    if isinstance(given, str) and SHARED_DEFAULTS.fullmatch(given):
        given = load(ROOT / "roles" / "dcm" / "defaults" / "main.yml")["dcm_etcd_module_defaults"]
    assert isinstance(given, dict), f"module_defaults for {GROUP} must be a mapping or {{{{ dcm_etcd_module_defaults }}}}"
    return {key: value for key, value in given.items() if key in ETCD_OPTIONS}


def action(task: dict) -> str | None:
    """The module or action a task runs: its key that is not a task keyword."""
    for key in task:
        if key not in TASK_KEYWORDS and not key.startswith("with_"):
            return key
    return None


def etcd_keys_in(value, where: str) -> list:
    """Every mapping under ``value`` (module_defaults excepted) with an etcd option, as 'where > key' strings."""
    found = []
    if isinstance(value, dict):
        hits = sorted(ETCD_OPTIONS & set(value))
        if hits:
            found.append(f"{where}: {', '.join(hits)}")
        for key, item in value.items():
            if key != "module_defaults":
                found += etcd_keys_in(item, f"{where} > {key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += etcd_keys_in(item, f"{where}[{index}]")
    return found


def walk_tasks(tasks, where: str, defaults: dict | None = None):
    """(task, 'where', group defaults in force) for every task of a list, blocks opened (the block
    itself first)."""
    for index, task in enumerate(tasks or []):
        if not isinstance(task, dict):
            continue
        label = f"{where} > {task.get('name', f'task {index}')!r}"
        inner = group_defaults(task, defaults)
        yield task, label, inner
        for key in BLOCK_LISTS:
            if isinstance(task.get(key), list):
                yield from walk_tasks(task[key], f"{label} > {key}", inner)


def role_dir(root: Path, name) -> Path | None:
    if not isinstance(name, str) or "{{" in name:
        return None
    short = name[len(PREFIX):] if name.startswith(PREFIX) else name
    folder = root / "roles" / short
    return folder if folder.is_dir() else None


def role_tasks(root: Path, folder: Path, defaults: dict, seen: set):
    """(task, 'where', defaults) of every task file of a role and of the roles it depends on or includes."""
    if folder in seen:
        return
    seen.add(folder)
    meta = folder / "meta" / "main.yml"
    if meta.is_file():
        for dependency in (load(meta) or {}).get("dependencies") or []:
            name = dependency.get("role", dependency.get("name")) if isinstance(dependency, dict) else dependency
            if (dep := role_dir(root, name)) is not None:
                yield from role_tasks(root, dep, defaults, seen)
    for sub in ("tasks", "handlers"):
        for path in sorted((folder / sub).rglob("*.yml")) if (folder / sub).is_dir() else []:
            for task, label, inner in walk_tasks(load(path) or [], f"roles/{folder.name}/{sub}/{path.name}", defaults):
                yield task, label, inner
                yield from included_role_tasks(root, task, inner, seen)


def included_role_tasks(root: Path, task: dict, defaults: dict, seen: set):
    if action(task) in ROLE_INCLUDES:
        spec = task[action(task)]
        name = spec.get("name") if isinstance(spec, dict) else spec
        if (folder := role_dir(root, name)) is not None:
            yield from role_tasks(root, folder, defaults, seen)


def play_tasks(root: Path, path: Path, play: dict, with_roles: bool = True):
    """(task, 'where', group defaults in force, from_playbooks) of everything a play runs: its tasks, the
    task files they include (from playbooks/) and, with_roles, the tasks of its roles (from_playbooks False)."""
    seen: set = set()
    defaults = group_defaults(play)
    where = f"{path.relative_to(root)}: play {play.get('name')!r}"
    if with_roles:
        for entry in play.get("roles") or []:
            name = entry.get("role", entry.get("name")) if isinstance(entry, dict) else entry
            if (folder := role_dir(root, name)) is not None:
                for task, label, inner in role_tasks(root, folder, defaults, seen):
                    yield task, label, inner, False
    pending = [(play.get(key), where, path.parent, defaults) for key in TASK_LISTS]
    while pending:
        tasks, label, folder, inherited = pending.pop(0)
        for task, task_label, inner in walk_tasks(tasks, label, inherited):
            yield task, task_label, inner, True
            name = action(task)
            if name in INCLUDES:
                spec = task[name]
                included = spec.get("file") if isinstance(spec, dict) else spec
                if not isinstance(included, str) or "{{" in included:
                    continue
                for base in (folder, root / "playbooks"):
                    if (base / included).is_file():
                        target = base / included
                        pending.append((load(target), f"{target.relative_to(root)} (from {task_label})",
                                        target.parent, inner))
                        break
                else:
                    raise AssertionError(f"{task_label}: {included} not found")
            elif with_roles:
                for role_task, role_label, role_inner in included_role_tasks(root, task, inner, seen):
                    yield role_task, role_label, role_inner, False


# -- the checks (each returns what it found wrong) ----------------------------------------------
def action_group(root: Path) -> set:
    """The modules of the action group dcm (meta/runtime.yml), by short name."""
    runtime = load(root / "meta" / "runtime.yml") or {}
    return {entry.removeprefix(PREFIX) for entry in (runtime.get("action_groups") or {}).get("dcm") or []
            if isinstance(entry, str)}


def modules_missing_from_group(root: Path) -> list:
    group = action_group(root)
    modules = sorted(path.stem for path in (root / "plugins" / "modules").glob("*.py") if not path.stem.startswith("_"))
    assert modules, "no modules found"
    return [module for module in modules if module not in group]


def etcd_options_outside_module_defaults(root: Path) -> list:
    found = []
    for path in playbook_files(root):
        doc = load(path)
        rel = str(path.relative_to(root))
        if is_playbook(doc):
            for play in plays(doc):
                where = f"{rel}: play {play.get('name')!r}"
                for key, value in play.items():
                    if key in TASK_LISTS:
                        for task, label, _defaults in walk_tasks(value, where):
                            found += etcd_keys_in({k: v for k, v in task.items() if k not in BLOCK_LISTS}, label)
                    elif key != "module_defaults":
                        found += etcd_keys_in(value, f"{where} > {key}")
        elif isinstance(doc, list):  # a task file
            for task, label, _defaults in walk_tasks(doc, rel):
                found += etcd_keys_in({k: v for k, v in task.items() if k not in BLOCK_LISTS}, label)
        else:  # a vars file
            found += etcd_keys_in(doc, rel)
    return found


def module_defaults_misfits(root: Path) -> list:
    """Tasks of a module of the group without etcd options where module_defaults give the group the etcd
    options (roles included), and playbook tasks of a module with them where those defaults are not."""
    found = []
    group = action_group(root)
    for path in playbook_files(root):
        doc = load(path)
        if not is_playbook(doc):
            continue
        for play in plays(doc):
            for task, label, defaults, from_playbooks in play_tasks(root, path, play):
                name = action(task)
                if not (name or "").startswith(PREFIX):
                    continue
                module = name[len(PREFIX):]
                etcd = takes_etcd_options(root, module)
                if defaults and module in group and not etcd:
                    found.append(f"{label}: {name} takes no etcd options, but module_defaults give "
                                 f"them to the group dcspark.dcm.dcm ({', '.join(sorted(defaults))})")
                elif from_playbooks and etcd and needs_etcd(root, module) and not CONNECTION <= set(defaults):
                    found.append(f"{label}: {name} needs the etcd connection: give {GROUP} every one of "
                                 f"{sorted(CONNECTION)} in the play's module_defaults (given: "
                                 f"{sorted(defaults) or 'none'})")
    return found


def strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def regex_on_cluster_name(text: str) -> list:
    """The clauses of ``text`` that match a cluster name against a regex."""
    hits = []
    for match in REGEX_OPERATOR.finditer(text):
        clause = CLAUSE_SPLIT.split(text[:match.start()])[-1]
        if CLUSTER_NAME.search(clause):
            hits.append((clause + text[match.start():match.end()]).strip())
    return hits


def own_cluster_name_rules(root: Path) -> list:
    found = []
    for path in playbook_files(root):
        doc = load(path)
        if is_playbook(doc):
            units = [(play, f"{path.relative_to(root)}: play {play.get('name')!r}") for play in plays(doc)]
        else:
            units = [(doc, str(path.relative_to(root)))]
        for unit, where in units:
            for text in strings_in(unit):
                found += [f"{where}: {hit}" for hit in regex_on_cluster_name(text)]
    return found


def cluster_names_not_checked_by_the_spec_rule(root: Path) -> list:
    """Playbook tasks that hand -e cluster to a module of the collection before dcm_spec checked it."""
    found = []
    for path in playbook_files(root):
        doc = load(path)
        if not is_playbook(doc):
            continue
        checked = False
        for play in plays(doc):
            for task, label, _defaults, _from_playbooks in play_tasks(root, path, play, with_roles=False):
                name, args = action(task) or "", task.get(action(task) or "")
                if not name.startswith(PREFIX) or not isinstance(args, dict):
                    continue
                named = str(args.get("name", "")).strip()
                if name == PREFIX + "dcm_spec" and re.fullmatch(CHECKED_NAME, named):
                    checked = True
                elif not checked and any(re.search(r"\{\{\s*cluster\b", text) for text in strings_in(args)):
                    found.append(f"{label}: {name} gets -e cluster before dcspark.dcm.dcm_spec checked it "
                                 "(name: \"{{ cluster }}\")")
    return found


# -- tests ----------------------------------------------------------------------------------------
def test_every_module_is_in_the_dcm_action_group():
    missing = modules_missing_from_group(ROOT)
    assert not missing, f"meta/runtime.yml action_groups.dcm lacks {missing}"


def plays_reaching_etcd_before_the_masters_addresses(root: Path) -> list:
    """Plays that give the group the etcd connection before their playbook imported masters_facts.yml.

    The etcd endpoints are derived from the master hosts' addresses, which masters_facts.yml gathers;
    without it they fall back to the inventory names, which the members' certificates do not name.
    A play on the control node itself (plan.yml) contacts no pool host: it takes dcm_etcd_* as the
    inventory gives them, or plans without etcd.
    """
    found = []
    for path in playbook_files(root):
        doc = load(path)
        if not is_playbook(doc):
            continue
        imported = False
        for item in doc:
            target = str(item.get("ansible.builtin.import_playbook") or item.get("import_playbook") or "")
            if target.endswith("masters_facts.yml"):
                imported = True
            elif ("hosts" in item and item["hosts"] != "localhost" and group_defaults(item) and not imported
                  and path.name != "masters_facts.yml"):
                found.append(f"{path.relative_to(root)}: play {item.get('name')!r}")
    return found


def test_plays_that_reach_etcd_first_read_the_masters_addresses():
    found = plays_reaching_etcd_before_the_masters_addresses(ROOT)
    assert not found, "import masters_facts.yml before these plays (the etcd endpoints come from it):\n" + \
        "\n".join(found)


def test_no_playbook_gives_etcd_options_outside_module_defaults():
    found = etcd_options_outside_module_defaults(ROOT)
    assert not found, "set the etcd connection once per play, in module_defaults for " + GROUP + ":\n" + "\n".join(found)


def test_module_defaults_fit_the_modules_each_play_runs():
    found = module_defaults_misfits(ROOT)
    assert not found, "\n".join(found)


def test_no_playbook_checks_a_cluster_name_with_its_own_regex():
    found = own_cluster_name_rules(ROOT)
    assert not found, "check cluster names with dcspark.dcm.dcm_spec (name: ...), the spec schema's rule:\n" + \
        "\n".join(found)


def test_a_cluster_named_on_the_command_line_is_checked_by_the_spec_rule_before_use():
    found = cluster_names_not_checked_by_the_spec_rule(ROOT)
    assert not found, "\n".join(found)


# -- the checks catch what they are for ------------------------------------------------------------
MODULE = '''DOCUMENTATION = r"""
module: {name}
short_description: test double
{fragment}
options:
  name:
    type: str
"""
'''

ETCD_ANCHOR_PLAYBOOK = """
- name: Old style
  hosts: dcm_masters[0]
  vars:
    old_etcd: &etcd
      etcd_endpoints: "{{ dcm_etcd_endpoints }}"
      etcd_client_key: "{{ dcm_etcd_client_key }}"
  tasks:
    - name: Write
      dcspark.dcm.dcm_cluster:
        name: "{{ cluster }}"
        <<: *etcd
    - name: Guarded
      when: true
      block:
        - name: Read
          dcspark.dcm.dcm_pool_info:
            etcd_ca_cert: /ca.crt
"""

OWN_RULE_PLAYBOOK = """
- name: Own rule
  hosts: localhost
  tasks:
    - name: Check
      ansible.builtin.assert:
        that:
          - cluster is defined
          - cluster is match('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')
    - name: Sandbox names are not cluster names
      ansible.builtin.assert:
        that: sandbox_name is match('^[a-z]+$')
    - name: Remove
      dcspark.dcm.dcm_cluster:
        name: "{{ cluster }}"
        state: absent
"""

MISFIT_PLAYBOOK = """
- name: Defaults reach a module without etcd options
  hosts: dcm_masters[0]
  module_defaults:
    group/dcspark.dcm.dcm:
      etcd_endpoints: "{{ dcm_etcd_endpoints }}"
      etcd_ca_cert: "{{ dcm_etcd_ca_cert }}"
      etcd_client_cert: "{{ dcm_etcd_client_cert }}"
      etcd_client_key: "{{ dcm_etcd_client_key }}"
  roles:
    - role: dcspark.dcm.builder
  tasks:
    - name: Check a name
      dcspark.dcm.dcm_spec:
        name: "{{ cluster }}"
- name: No defaults for a module that needs them
  hosts: localhost
  tasks:
    - name: Read the pool
      ansible.builtin.include_tasks: tasks/read.yml
"""


@pytest.fixture
def broken(tmp_path):
    """A collection tree whose playbooks break every convention (the old style)."""
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "runtime.yml").write_text(
        "action_groups:\n  dcm:\n    - dcm_cluster\n    - dcspark.dcm.dcm_spec\n    - dcm_registry_image\n")
    modules = tmp_path / "plugins" / "modules"
    modules.mkdir(parents=True)
    for name, fragment in (("dcm_cluster", True), ("dcm_pool_info", True), ("dcm_spec", False),
                           ("dcm_registry_image", False)):
        text = MODULE.format(name=name, fragment="extends_documentation_fragment: [dcspark.dcm.etcd]" if fragment else "")
        (modules / f"{name}.py").write_text(text)
    role = tmp_path / "roles" / "builder" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text("- name: Look the images up\n  dcspark.dcm.dcm_registry_image:\n"
                                   "    registry: r:5000\n    images: []\n")
    (tmp_path / "playbooks" / "tasks").mkdir(parents=True)
    (tmp_path / "playbooks" / "old.yml").write_text(ETCD_ANCHOR_PLAYBOOK)
    (tmp_path / "playbooks" / "own_rule.yml").write_text(OWN_RULE_PLAYBOOK)
    (tmp_path / "playbooks" / "misfit.yml").write_text(MISFIT_PLAYBOOK)
    (tmp_path / "playbooks" / "tasks" / "read.yml").write_text(
        "- name: Read\n  dcspark.dcm.dcm_pool_info:\n    etcd_client_cert: /c.crt\n")
    return tmp_path


def test_the_checks_catch_the_old_style(broken):
    assert modules_missing_from_group(broken) == ["dcm_pool_info"]

    found = etcd_options_outside_module_defaults(broken)
    assert any("old.yml" in f and "> vars > old_etcd: etcd_client_key, etcd_endpoints" in f for f in found), found
    assert any("'Write' > dcspark.dcm.dcm_cluster: etcd_client_key, etcd_endpoints" in f for f in found), found
    assert any("'Guarded' > block > 'Read'" in f and "etcd_ca_cert" in f for f in found), found
    assert any(f.startswith(os.path.join("playbooks", "tasks", "read.yml")) for f in found), found

    misfits = module_defaults_misfits(broken)
    assert any("roles/builder/tasks/main.yml" in f and "dcm_registry_image takes no etcd options" in f
               for f in misfits), misfits
    assert any("'Check a name'" in f and "dcm_spec takes no etcd options" in f for f in misfits), misfits
    assert any("read.yml" in f and "dcm_pool_info needs the etcd connection" in f for f in misfits), misfits

    assert any("old.yml" not in f and "misfit.yml: play 'Defaults reach a module without etcd options'" in f
               for f in plays_reaching_etcd_before_the_masters_addresses(broken))

    rules = own_cluster_name_rules(broken)
    assert len(rules) == 1 and rules[0].endswith("cluster is match"), rules  # not the sandbox name
    assert any("'Remove'" in f for f in cluster_names_not_checked_by_the_spec_rule(broken))
    assert any("'Write'" in f for f in cluster_names_not_checked_by_the_spec_rule(broken))
