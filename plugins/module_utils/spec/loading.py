"""Turn a module's ``spec`` parameter (a path or a dict) into a normalized spec."""

from __future__ import annotations

from ..core.errors import SpecError
from .model import load_spec_file, normalize_spec


def spec_from_param(value: object) -> dict:
    if isinstance(value, dict):
        return normalize_spec(value, "(inline spec)")
    if isinstance(value, str) and value:
        return load_spec_file(value)
    raise SpecError(["spec must be a path to a JSON spec file or a dict"], None)
