from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero import Device

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _reset_pin_factory():
    """gpiozero keeps a global pin factory; no test may see another's pins."""
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()
    Device.pin_factory = None


@pytest.fixture
def shared_data() -> Path:
    path = SHARED / "data"
    assert path.is_dir(), f"shared data missing at {path}"
    return path
