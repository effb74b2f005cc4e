"""Fixtures shared by the scenario's verifier tests."""

from __future__ import annotations

import pytest
from test_clusters import Pool


@pytest.fixture(scope="module")
def pool(request) -> Pool:
    """The scenario's pool, from the inventory testinfra was given."""
    inventory = request.config.option.ansible_inventory
    assert inventory, "run through molecule (testinfra's --ansible-inventory names the scenario's inventory)"
    return Pool(inventory)
