"""Fixtures of the dashboard tests."""

import pytest


@pytest.fixture(autouse=True)
def store_dir(tmp_path, monkeypatch):
    """Every test saves models into its own store folder."""
    monkeypatch.setenv("GFDT_DASH_STORE", str(tmp_path / "store"))
    return tmp_path / "store"
