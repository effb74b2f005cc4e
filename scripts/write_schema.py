"""Write schemas/cluster-spec.schema.json from the schema in module_utils (the source of truth)."""

from __future__ import annotations

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins"))

from module_utils.spec.schema import SCHEMA  # noqa: E402

TARGET = os.path.join(REPO, "schemas", "cluster-spec.schema.json")


def render() -> str:
    return json.dumps(SCHEMA, indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    with open(TARGET, "w", encoding="utf-8") as handle:
        handle.write(render())
    print(f"wrote {os.path.relpath(TARGET, REPO)}")
