"""docs/architecture.md and its picture stay true to the code.

- docs/architecture.svg is what scripts/draw_architecture.py draws today (a stale picture fails);
- every function, method or class the page or the picture cites as `module.function`,
  `Class.method` or `layer.module.function` exists in plugins/module_utils, so a rename cannot
  leave the page wrong;
- every path the page cites exists;
- the layers each layer may import, as the picture shows them, are the rules tests/unit/test_layers.py
  holds the code to.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys

from support import REPO

PACKAGE = "ansible_collections.dcspark.dcm.plugins.module_utils"
MODULE_UTILS = os.path.join(REPO, "plugins", "module_utils")
SCRIPT = os.path.join(REPO, "scripts", "draw_architecture.py")
DOC = os.path.join(REPO, "docs", "architecture.md")
SVG = os.path.join(REPO, "docs", "architecture.svg")

DOTTED = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
FILE_SUFFIXES = ("py", "yml", "json", "svg", "md", "sh")  # `store.py` is a file, not a citation


def load_script():
    spec = importlib.util.spec_from_file_location("draw_architecture", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_names() -> list:
    """Dotted names, below module_utils, of every package and module there: ``state``, ``state.store``..."""
    names = []
    for directory, subdirs, files in os.walk(MODULE_UTILS):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(("_", ".")))
        relative = os.path.relpath(directory, MODULE_UTILS)
        prefix = "" if relative == "." else relative.replace(os.sep, ".") + "."
        if prefix:
            names.append(prefix[:-1])
        names += [prefix + name[:-3] for name in sorted(files) if name.endswith(".py") and name != "__init__.py"]
    return names


def index() -> dict:
    """``{first part of a citation: [objects it may name]}``: packages and modules by their last name,
    classes by their name."""
    found: dict = {}
    for name in module_names():
        module = importlib.import_module(f"{PACKAGE}.{name}")
        found.setdefault(name.rsplit(".", 1)[-1], []).append(module)
        for attr, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                found.setdefault(attr, []).append(obj)
    return found


def resolve(citation: str, found: dict) -> str:
    """``""`` when ``citation`` names exactly one thing defined in module_utils, else what is wrong."""
    first, *rest = citation.split(".")
    hits = []
    for obj in found.get(first, []):
        for attr in rest:
            owner, obj = obj, getattr(obj, attr, None)
            if obj is None or (inspect.ismodule(owner) and not inspect.ismodule(obj)
                               and getattr(obj, "__module__", owner.__name__) != owner.__name__):
                obj = None  # absent, or only imported there: `store.plan_cluster` names no definition
                break
        else:
            hits.append(obj)
    if len(hits) == 1:
        return ""
    if not hits:
        return f"{citation}: defined nowhere in plugins/module_utils (a name a module only imports does not count)"
    return f"{citation}: ambiguous ({len(hits)} matches); cite it as layer.module.function"


def doc_text() -> str:
    with open(DOC, encoding="utf-8") as handle:
        return handle.read()


def doc_code() -> list:
    """Every `code span` of the page (fenced blocks left out)."""
    prose = re.sub(r"^```.*?^```", "", doc_text(), flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", prose)


def svg_citations() -> list:
    with open(SVG, encoding="utf-8") as handle:
        return re.findall(r'<tspan class="fn">([^<]+)</tspan>', handle.read())


def test_picture_is_current():
    run = subprocess.run([sys.executable, SCRIPT, "--check"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr + run.stdout


def test_check_catches_a_stale_picture(tmp_path, monkeypatch):
    script = load_script()
    stale = tmp_path / "architecture.svg"
    stale.write_text(script.render().replace("imports go downward only", "imports go anywhere"), encoding="utf-8")
    monkeypatch.setattr(script, "TARGET", str(stale))
    assert script.main(["--check"]) == 1
    assert script.main([]) == 0
    assert script.main(["--check"]) == 0


def test_drawing_is_deterministic():
    script = load_script()
    assert script.render() == script.render()


def test_picture_cites_only_what_exists():
    citations = svg_citations()
    assert len(citations) >= 10, "the picture should name the functions along the data flow"
    found = index()
    problems = [resolve(name, found) if DOTTED.match(name) else f"{name}: not a dotted name" for name in citations]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


def test_page_cites_only_what_exists():
    """Every `a.b` code span must resolve; `a.b.c` ones are checked when ``a`` is a layer (others are
    collection names such as dcspark.dcm.dcm)."""
    found = index()
    layers = {name for name in module_names() if "." not in name}
    citations = [span for span in doc_code() if DOTTED.match(span) and span.rsplit(".", 1)[1] not in FILE_SUFFIXES]
    checked = [span for span in citations if span.count(".") == 1 or span.split(".")[0] in layers]
    assert len(checked) >= 10
    problems = [resolve(name, found) for name in checked]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


def test_page_classes_exist():
    """A bare `CamelCase` name is a class of plugins/module_utils (`DcmStore`, `CorruptRecord`)."""
    found = index()
    classes = sorted({span for span in doc_code() if re.match(r"^[A-Z][a-z]+[A-Z]\w*$|^[A-Z][a-z]+$", span)})
    assert "DcmStore" in classes
    missing = [name for name in classes if not any(inspect.isclass(obj) for obj in found.get(name, []))]
    assert not missing, f"docs/architecture.md names classes plugins/module_utils does not have: {missing}"


def test_page_paths_exist():
    """`plugins/...`, `scripts/...`, `layer/file.py`: each exists (in the repository or in module_utils)."""
    paths = [span for span in doc_code() if "/" in span and re.match(r"^[\w./-]+\.(py|yml|json|svg|md)$", span)]
    assert paths
    missing = [p for p in paths
               if not os.path.exists(os.path.join(REPO, p)) and not os.path.exists(os.path.join(MODULE_UTILS, p))]
    assert not missing, f"docs/architecture.md cites paths that do not exist: {missing}"


def test_page_files_exist():
    """A bare `name.py` is a file of plugins/module_utils (the paragraph of its layer says which)."""
    files = {name for _dir, _subdirs, names in os.walk(MODULE_UTILS) for name in names}
    cited = [span for span in doc_code() if re.match(r"^\w+\.py$", span)]
    assert cited
    missing = sorted(set(cited) - files)
    assert not missing, f"docs/architecture.md names files plugins/module_utils does not have: {missing}"


def test_page_shows_the_picture_and_every_layer():
    text = doc_text()
    assert "](architecture.svg)" in text
    script = load_script()
    for row in script.LAYERS:
        for name, _owns, _imports in row:
            assert f"### `{name}/`" in text, f"docs/architecture.md has no paragraph on {name}/"


def test_picture_states_the_layer_rules_the_code_is_checked_against():
    """The "imports:" line of each layer is what tests/unit/test_layers.py enforces on the code."""
    from test_layers import ALLOWED  # pylint: disable=import-outside-toplevel

    drawn = {name: set(imports) for row in load_script().LAYERS for name, _owns, imports in row}
    enforced = {name: set(allowed) - {name} for name, allowed in ALLOWED.items()}
    assert drawn == enforced, (
        "scripts/draw_architecture.py LAYERS and tests/unit/test_layers.py ALLOWED disagree; "
        "fix LAYERS and the paragraphs of docs/architecture.md, then draw again")
