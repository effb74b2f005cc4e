"""Shared test set-up: make the checkout importable as ``ansible_collections.dcspark.dcm``."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from support import ensure_collection_link  # noqa: E402

ensure_collection_link()
