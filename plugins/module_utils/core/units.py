"""CPU and memory quantities: the one place they are parsed and formatted.

Memory uses binary units (``k`` = 1024 bytes) like Docker and Spark. CPU is
kept internally as integer millicpus so that sums and comparisons are exact.
"""

from __future__ import annotations

import math
import re

from .errors import UnitError

MEMORY_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# The JSON Schema uses the same rule; keep the two in step (tests check it).
MEMORY_PATTERN = r"^[0-9]+[kKmMgGtT]?$"
_MEMORY_RE = re.compile(MEMORY_PATTERN)


def parse_memory(value: object) -> int:
    """Return bytes for ``value``: an int (bytes) or a string like ``4g``, ``512m``, ``1024``."""
    if isinstance(value, bool):
        raise UnitError(f"memory must be a size like '4g' or '512m', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"memory must not be negative, got {value}")
        return value
    if isinstance(value, str) and _MEMORY_RE.match(value):
        suffix = value[-1].lower() if value[-1].isalpha() else ""
        return int(value[:-1] if suffix else value) * MEMORY_UNITS[suffix]
    raise UnitError(
        "memory must be a whole number with an optional k/m/g/t suffix (binary units), "
        f"like '4g' or '512m', got {value!r}"
    )


def format_memory(num_bytes: int) -> str:
    """Format bytes with the largest binary unit that divides them exactly (``4g``, ``1536m``)."""
    if num_bytes < 0:
        raise UnitError(f"memory must not be negative, got {num_bytes}")
    for suffix in ("t", "g", "m", "k"):
        unit = MEMORY_UNITS[suffix]
        if num_bytes and num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)


def human_bytes(num_bytes: float) -> str:
    """Approximate size for messages: ``3.5 GiB``."""
    value = float(num_bytes)
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or suffix == "TiB":
            return f"{value:.0f} {suffix}" if suffix == "B" else f"{value:.1f} {suffix}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def parse_cpus(value: object) -> int:
    """Return millicpus for ``value`` (``2`` -> 2000, ``0.5`` -> 500, ``"1500m"`` -> 1500)."""
    if isinstance(value, bool):
        raise UnitError(f"cpus must be a number like 2 or 0.5, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("m"):
                milli = int(text[:-1])
                if milli < 0:
                    raise ValueError
                return milli
            value = float(text)
        except ValueError:
            raise UnitError(f"cpus must be a number like 2 or 0.5 (or millicpus '500m'), got {value!r}") from None
    if isinstance(value, (int, float)):
        if value < 0 or math.isnan(value):
            raise UnitError(f"cpus must not be negative, got {value!r}")
        milli = round(value * 1000)
        if abs(milli - value * 1000) > 1e-6:
            raise UnitError(f"cpus supports at most 3 decimals (millicpus), got {value!r}")
        return int(milli)
    raise UnitError(f"cpus must be a number like 2 or 0.5, got {value!r}")


def format_cpus(millicpus: int) -> int | float:
    """Millicpus back to a number of CPUs (int when whole)."""
    if millicpus % 1000 == 0:
        return millicpus // 1000
    return millicpus / 1000
