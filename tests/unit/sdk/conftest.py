"""Fixtures for tests/unit/sdk (helpers: sdk_support.py)."""
import pytest

from sdk_support import HEAT2D_PY, heat2d_binary, sdk_library


@pytest.fixture(scope="session", autouse=True)
def artefacts_exist():
    for p in (heat2d_binary(), sdk_library(), HEAT2D_PY):
        if not p.exists():
            pytest.fail(f"{p} is missing: build first (cmake --build build)")
