"""Shared test helpers: where the fixtures are, and the vectors that stay in ../shared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
# AGPL/GPL vectors are read from ../shared/vectors beside the checkout, never copied (see
# fixtures/vectors/README.md); CI has that folder.
SHARED_VECTORS = ROOT.parent / "shared" / "vectors"


def load_fixture(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def load_shared_vector(name: str) -> Any:
    path = SHARED_VECTORS / name
    if not path.exists():
        pytest.skip(f"{name} is read from {SHARED_VECTORS} (AGPL/GPL, not copied), which is absent")
    return json.loads(path.read_text(encoding="utf-8"))
