"""Turn a module's ``spec`` parameter (a path or a dict) into a normalized spec."""

from __future__ import annotations

import os

from ..core.errors import SpecError
from .model import load_spec_file, normalize_spec


def spec_from_param(value: object) -> dict:
    if isinstance(value, dict):
        return normalize_spec(value, "(inline spec)")
    if isinstance(value, str) and value:
        return load_spec_file(value)
    raise SpecError(["spec must be a path to a JSON spec file or a dict"], None)


def escaping_links(base_dir: str, relative: str) -> list:
    """What of the spec's app folder ``relative`` (under ``base_dir``) leads out of the spec's folder once
    symlinks are resolved: the folder itself, or files and folders in it (the build copies what links
    point to, so a link to the pool's CA key would ship the key). ``[]`` when everything stays inside."""
    root = os.path.realpath(base_dir)
    folder = os.path.join(base_dir, relative)

    def outside(path: str) -> bool:
        real = os.path.realpath(path)
        return real != root and not real.startswith(root + os.sep)

    if outside(folder):
        return [relative]
    found = []
    for current, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = os.path.join(current, name)
            if os.path.islink(path) and outside(path):
                found.append(os.path.relpath(path, base_dir))
    return sorted(found)
