"""Fixtures of the dashboard tests."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """As ``app.py`` does: tiny grids run far faster on one intra-op thread (see app.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def store_dir(tmp_path, monkeypatch):
    """Every test saves models into its own store folder."""
    monkeypatch.setenv("GFDT_DASH_STORE", str(tmp_path / "store"))
    return tmp_path / "store"
