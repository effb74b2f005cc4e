from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import UnitError
from ansible_collections.dcspark.dcm.plugins.module_utils.core.units import (
    format_cpus,
    format_memory,
    human_bytes,
    parse_cpus,
    parse_memory,
)


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("1", 1), ("1k", 1024), ("1K", 1024), ("512m", 512 << 20), ("4g", 4 << 30), ("2t", 2 << 40),
    (1024, 1024),
])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["", "4 g", "4gb", "1.5g", "-1", "g", "4x", True, None, 1.5, -3, [4]])
def test_parse_memory_rejects(bad):
    with pytest.raises(UnitError, match="memory"):
        parse_memory(bad)


@pytest.mark.parametrize("num, text", [(0, "0"), (1000, "1000"), (1024, "1k"), (1536 << 20, "1536m"), (4 << 30, "4g"), (3 << 40, "3t")])
def test_format_memory(num, text):
    assert format_memory(num) == text


@given(st.integers(min_value=0, max_value=1 << 50))
def test_memory_round_trip(num):
    assert parse_memory(format_memory(num)) == num


@pytest.mark.parametrize("value, milli", [(1, 1000), (0.5, 500), ("2", 2000), ("250m", 250), (0, 0), (1.25, 1250)])
def test_parse_cpus(value, milli):
    assert parse_cpus(value) == milli


@pytest.mark.parametrize("bad", [-1, "x", True, 0.0001, "-5m", None])
def test_parse_cpus_rejects(bad):
    with pytest.raises(UnitError, match="cpus"):
        parse_cpus(bad)


def test_format_cpus():
    assert format_cpus(2000) == 2 and isinstance(format_cpus(2000), int)
    assert format_cpus(1500) == 1.5


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(3 << 29) == "1.5 GiB"
