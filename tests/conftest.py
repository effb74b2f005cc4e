"""Shared test set-up: make the checkout importable as ``ansible_collections.dcspark.dcm``."""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".collections")
_LINK = os.path.join(COLLECTIONS, "ansible_collections", "dcspark", "dcm")

if not os.path.islink(_LINK):  # `make setup` creates it; direct pytest runs get it here
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(os.path.relpath(REPO, os.path.dirname(_LINK)), _LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
