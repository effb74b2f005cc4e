"""Draw docs/architecture.svg: the data flow of one cluster and the layers of plugins/module_utils.

    .venv/bin/python scripts/draw_architecture.py           # write docs/architecture.svg
    .venv/bin/python scripts/draw_architecture.py --check   # exit 1 when docs/architecture.svg is stale

The SVG is built as text, without a graphics library, so the same input always gives the same
bytes. The files of each layer are read from plugins/module_utils: adding, removing or moving one
makes the picture stale until it is drawn again. Names in code font are functions and methods of
plugins/module_utils; tests/unit/test_architecture_doc.py checks that each one exists.
"""

from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_UTILS = os.path.join(REPO, "plugins", "module_utils")
TARGET = os.path.join(REPO, "docs", "architecture.svg")

# -- what the picture says ----------------------------------------------------------------------
# Text markup: `module.function` or `Class.method` is code (checked by the test), *text* is italic.

# The stages of the data flow, top to bottom: (name, what it produces, more lines, the layer that
# computes it: the box takes that layer's colour).
STAGES = [
    ("cluster spec", "a JSON file, or a dict", [], ""),
    ("1  spec", "normalized spec", ["checked against the schema,", "defaults filled in, memory in bytes"], "spec"),
    ("2  plan", "placement", ["master, driver and each worker", "on a host; nothing written"], "policy"),
    ("3  reserve", "/dcm/clusters/<name> in etcd",
     ["the record of a new generation,", "its history, rollout, prune queue"], "state"),
    ("4  converge", "containers on every host", ["each node's status reported", "to /dcm/status/<host>/<name>/<node>"],
     "daemons"),
    ("5  repair", "placement off lost hosts", ["nodes of lost or drained hosts", "moved, or the cluster degraded"],
     "daemons"),
]

# The arrow into each stage after the first: lines of its label.
ARROWS = [
    ["`loading.spec_from_param` \u2192 `model.normalize_spec`",
     "*module dcm_spec*"],
    ["`placement.plan_cluster` \u2192 `scheduler.schedule`",
     "Eq. 2 least-requested (master, driver), Eq. 3 packing (workers)",
     "*module dcm_schedule; dcm_cluster plans again inside reserve*"],
    ["`DcmStore.reserve`: plan, then one etcd transaction guarded",
     "on the revision the plan was read at (re-read and re-plan on conflict)",
     "*module dcm_cluster*"],
    ["`Converger.once` \u2192 `converge.desired_nodes` \u2192 `converge.plan_actions`",
     "\u2192 `DockerNodes.apply`, then a status report per node",
     "*dcm-agent on every host, every converge_interval*"],
    ["`Master.check` \u2192 `master.reconcile` \u2192 `scheduler.reschedule`",
     "hosts without a lease past host_grace, or drained",
     "*dcm-master, the elected leader, every interval*"],
]

# The arrow from repair back to the record.
LOOP = "new placement, written under the leader's fence"

# The layers, top to bottom; a row of two is drawn side by side: (directory, what it owns, the layers
# it may import). tests/unit/test_architecture_doc.py holds these to the rules tests/unit/test_layers.py
# checks the code against.
LAYERS = [
    [("interface", "the way in for Ansible modules", ("core", "spec", "policy", "state", "host", "ops", "daemons"))],
    [("daemons", "the dcm-agent and dcm-master loops", ("core", "spec", "policy", "state", "host", "ops"))],
    [("ops", "operations modules and daemons carry out", ("core", "spec", "policy", "state", "host"))],
    [("state", "the pool's state in etcd", ("core", "spec", "policy")),
     ("host", "facts, Docker, the registry", ("core", "spec", "policy"))],
    [("policy", "decisions: pure, no I/O", ("core", "spec"))],
    [("spec", "the cluster spec", ("core",))],
    [("core", "errors, units, names", ())],
]

# -- geometry and style -------------------------------------------------------------------------
WIDTH = 900
MARGIN = 24
FLOW_X = 70  # left edge of the stage boxes (the repair loop runs left of it)
STAGE_W = 250
STAGE_LINE = 16
ARROW_LINE = 17
LAYER_X = MARGIN
LAYER_W = WIDTH - 2 * MARGIN - 36  # room on the right for the "imports" arrow
LAYER_GAP = 14
LAYER_LINE = 18
OWNS_X = 112  # where a layer's "what it owns" starts, right of its name
MONO_EM = 0.602  # advance of DejaVu Sans Mono, in em
SANS_EM = 0.62  # a generous average advance of DejaVu Sans, in em

SANS = "'DejaVu Sans', Helvetica, Arial, sans-serif"
MONO = "'DejaVu Sans Mono', Menlo, Consolas, monospace"

# per-layer fill and edge colours
COLOURS = {
    "interface": ("#f3e8fb", "#8e5bb0"),
    "daemons": ("#fdeedd", "#c27a2c"),
    "ops": ("#e4f4f4", "#2f8a8a"),
    "state": ("#e3f0fb", "#3d78b5"),
    "host": ("#e6f5ea", "#3f8f57"),
    "policy": ("#fdf7d9", "#a58a12"),
    "spec": ("#fbe7e7", "#b5524f"),
    "core": ("#ececec", "#6b6b6b"),
}

STYLE = f"""
text {{ font-family: {SANS}; fill: #1d1d1d; }}
.title {{ font-size: 19px; font-weight: bold; }}
.heading {{ font-size: 16px; font-weight: bold; }}
.stage {{ font-size: 14px; font-weight: bold; }}
.what {{ font-size: 13px; }}
.small {{ font-size: 12px; fill: #444444; }}
.label {{ font-size: 12.5px; }}
.fn {{ font-family: {MONO}; fill: #0b3d91; }}
.em {{ font-style: italic; fill: #555555; }}
.files {{ font-family: {MONO}; font-size: 12px; fill: #1d1d1d; }}
.box {{ fill: #ffffff; stroke: #4a4a4a; stroke-width: 1.3; }}
.input {{ fill: #fafafa; stroke: #8a8a8a; stroke-width: 1.2; stroke-dasharray: 5 3; }}
.arrow {{ fill: none; stroke: #333333; stroke-width: 1.5; marker-end: url(#head); }}
.loop {{ fill: none; stroke: #b5524f; stroke-width: 1.5; stroke-dasharray: 6 3; marker-end: url(#head-red); }}
""".strip("\n")


def esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def runs(line: str) -> list:
    """``[(css class or "", text)]`` of a line with `code` and *italic* markup."""
    out = []
    kind, text = "", ""
    for char in line:
        mark = {"`": "fn", "*": "em"}.get(char)
        if mark and kind in ("", mark):
            if text:
                out.append((kind, text))
            kind, text = ("" if kind == mark else mark), ""
        else:
            text += char
    if kind:
        raise ValueError(f"unclosed markup in {line!r}")
    if text:
        out.append((kind, text))
    return out


def text(x: float, y: float, line: str, cls: str = "", anchor: str = "", extra: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    attrs += f' text-anchor="{anchor}"' if anchor else ""
    attrs += f" {extra}" if extra else ""
    body = "".join(f'<tspan class="{kind}">{esc(part)}</tspan>' if kind else esc(part) for kind, part in runs(line))
    return f'<text x="{num(x)}" y="{num(y)}"{attrs}>{body}</text>'


def num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def rect(x: float, y: float, w: float, h: float, cls: str = "", fill: str = "", stroke: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    if fill:
        attrs += f' fill="{fill}" stroke="{stroke}" stroke-width="1.3"'
    return f'<rect x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" rx="6"{attrs}/>'


def path(d: str, cls: str) -> str:
    return f'<path d="{d}" class="{cls}"/>'


# -- the layers, read from the tree -------------------------------------------------------------
def layer_files(root: str = MODULE_UTILS) -> dict:
    """``{layer: [module names]}`` of every package under ``root`` (``__init__`` left out), sorted."""
    found = {}
    for entry in sorted(os.listdir(root)):
        directory = os.path.join(root, entry)
        if not os.path.isdir(directory) or entry.startswith(("_", ".")):
            continue
        modules = sorted(name[:-3] for name in os.listdir(directory)
                         if name.endswith(".py") and name != "__init__.py")
        if modules:
            found[entry] = modules
    return found


def check_layers(found: dict) -> None:
    drawn = {name for row in LAYERS for name, _owns, _imports in row}
    missing = sorted(set(found) - drawn)
    if missing:
        raise SystemExit(f"draw_architecture: plugins/module_utils/{missing[0]}/ is not in LAYERS; "
                         "describe it there and in docs/architecture.md")
    empty = sorted(drawn - set(found))
    if empty:
        raise SystemExit(f"draw_architecture: LAYERS names {empty[0]}/, which has no module in plugins/module_utils")


# -- drawing ------------------------------------------------------------------------------------
def draw_flow(top: float) -> tuple:
    """SVG elements of the data flow and the y where it ends."""
    parts = [text(MARGIN, top, "Data flow: one cluster from its spec to a repair", "heading")]
    centre = FLOW_X + STAGE_W / 2
    y = top + 18
    boxes = []
    for index, (name, what, more, layer) in enumerate(STAGES):
        if index:
            label = ARROWS[index - 1]
            gap = max(54, len(label) * ARROW_LINE + 16)
            parts.append(path(f"M {num(centre)} {num(y)} V {num(y + gap - 2)}", "arrow"))
            for line_no, line in enumerate(label):
                parts.append(text(centre + 16, y + 17 + line_no * ARROW_LINE, line, "label"))
            y += gap
        height = 30 + (1 + len(more)) * STAGE_LINE
        if layer:
            fill, stroke = COLOURS[layer]
            parts.append(rect(FLOW_X, y, STAGE_W, height, fill=fill, stroke=stroke))
        else:
            parts.append(rect(FLOW_X, y, STAGE_W, height, "input"))
        parts.append(text(FLOW_X + 12, y + 21, name, "stage"))
        parts.append(text(FLOW_X + 12, y + 21 + STAGE_LINE + 2, what, "what"))
        for line_no, line in enumerate(more):
            parts.append(text(FLOW_X + 12, y + 23 + (line_no + 2) * STAGE_LINE, line, "small"))
        boxes.append((y, height))
        y += height
    # repair -> the record: the loop on the left
    (reserve_y, reserve_h), (repair_y, repair_h) = boxes[3], boxes[5]
    start, end = repair_y + repair_h / 2, reserve_y + reserve_h / 2
    left = FLOW_X - 34
    parts.append(path(f"M {num(FLOW_X)} {num(start)} H {num(left)} V {num(end)} H {num(FLOW_X - 2)}", "loop"))
    middle = (start + end) / 2
    parts.append(text(left - 8, middle, LOOP, "small", "middle",
                      f'transform="rotate(-90 {num(left - 8)} {num(middle)})"'))
    return parts, y


def wrap(items: list, width: float, size: float, sep: str = " \u00b7 ") -> list:
    """``items`` joined by ``sep`` into lines of monospace text no wider than ``width``."""
    lines, line = [], ""
    for item in items:
        candidate = f"{line}{sep}{item}" if line else item
        if line and len(candidate) * size * MONO_EM > width:
            lines.append(line)
            candidate = item
        line = candidate
    return lines + [line] if line else lines


def draw_layers(top: float, found: dict) -> tuple:
    """SVG elements of the layer stack and the y where it ends."""
    parts = [text(LAYER_X, top, "Layers of plugins/module_utils", "heading")]
    y = top + 18
    parts.append(rect(LAYER_X, y, LAYER_W, 42, "input"))
    parts.append(text(LAYER_X + 12, y + 18, "plugins/modules/", "stage"))
    parts.append(text(LAYER_X + 12, y + 34, "the Ansible modules (dcm_spec, dcm_schedule, dcm_cluster, ...)", "small"))
    y += 42 + LAYER_GAP
    first = y
    for row in LAYERS:
        gap = 12
        width = (LAYER_W - gap * (len(row) - 1)) / len(row)
        boxes = []
        for name, owns, imports in row:
            title = f"{name}/"
            beside = OWNS_X + len(owns) * 12 * SANS_EM <= width - 12
            files = wrap(found[name], width - 24, 12)
            boxes.append((name, title, owns, imports, beside, files))
        lines = max((1 if beside else 2) + len(files) + 1 for *_rest, beside, files in boxes)
        height = 12 + lines * LAYER_LINE
        for column, (name, title, owns, imports, beside, files) in enumerate(boxes):
            x = LAYER_X + column * (width + gap)
            fill, stroke = COLOURS[name]
            parts.append(rect(x, y, width, height, fill=fill, stroke=stroke))
            line_y = y + 21
            parts.append(text(x + 12, line_y, title, "stage"))
            if beside:
                parts.append(text(x + OWNS_X, line_y, owns, "small"))
            else:
                line_y += LAYER_LINE
                parts.append(text(x + 12, line_y, owns, "small"))
            for line in files:
                line_y += LAYER_LINE
                parts.append(text(x + 12, line_y, line, "files"))
            parts.append(text(x + 12, line_y + LAYER_LINE, "imports: " + (", ".join(imports) or "nothing"), "small"))
        y += height + LAYER_GAP
    # imports go downward
    arrow_x = LAYER_X + LAYER_W + 16
    parts.append(path(f"M {num(arrow_x)} {num(first + 4)} V {num(y - LAYER_GAP - 4)}", "arrow"))
    middle = (first + y - LAYER_GAP) / 2
    parts.append(text(arrow_x + 12, middle, "imports go downward only", "small", "middle",
                      f'transform="rotate(90 {num(arrow_x + 12)} {num(middle)})"'))
    return parts, y - LAYER_GAP


def render(root: str = MODULE_UTILS) -> str:
    found = layer_files(root)
    check_layers(found)
    top = MARGIN + 20
    body = [text(MARGIN, top, "dcspark.dcm: how a cluster spec becomes running containers", "title")]
    flow, flow_end = draw_flow(top + 36)
    layers, layers_end = draw_layers(flow_end + 44, found)
    height = int(layers_end + MARGIN)
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}">',
        "<title>dcspark.dcm architecture: data flow and layers</title>",
        f"<style>\n{STYLE}\n</style>",
        "<defs>",
        '<marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto"><path d="M 0 1 L 9 5 L 0 9 z" fill="#333333"/></marker>',
        '<marker id="head-red" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto"><path d="M 0 1 L 9 5 L 0 9 z" fill="#b5524f"/></marker>',
        "</defs>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    return "\n".join(head + body + flow + layers + ["</svg>"]) + "\n"


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when docs/architecture.svg differs from what would be drawn")
    args = parser.parse_args(argv)
    svg = render()
    where = os.path.relpath(TARGET, REPO)
    if args.check:
        try:
            with open(TARGET, encoding="utf-8") as handle:
                current = handle.read()
        except FileNotFoundError:
            current = None
        if current != svg:
            print(f"{where} is stale: run .venv/bin/python scripts/draw_architecture.py", file=sys.stderr)
            return 1
        print(f"{where} is up to date")
        return 0
    with open(TARGET, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(svg)
    print(f"wrote {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
