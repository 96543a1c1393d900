import os

import pytest
import torch

# The test grids are tiny: intra-op threads buy nothing there and, on a loaded 2-core machine,
# OpenMP spin-waiting makes small FFTs up to 100× slower. Tests (not the library) set this.
torch.set_num_threads(int(os.environ.get("GFDT_DASH_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Tests use explicit generators; this only guards against accidental global-RNG use."""
    state = torch.random.get_rng_state()
    yield
    torch.random.set_rng_state(state)


def pytest_collection_modifyitems(config, items):
    # Paper-preset recomputations run only when asked for by marker (-m paper).
    if "paper" not in (config.getoption("markexpr") or ""):
        skip_paper = pytest.mark.skip(reason="paper-preset recomputation; select with -m paper")
        for item in items:
            if item.get_closest_marker("paper") is not None:
                item.add_marker(skip_paper)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_scan_spec():
    """A fresh tiny OU scan spec (two values of U on 8×8, a few seconds on one worker), as a
    dict for ``ScanSpec.from_dict``; ``seeds`` as given."""

    def make(seeds=(0,)):
        return {
            "system": "ou",
            "preset": "classroom",
            "seeds": list(seeds),
            "model": "none",
            "methods": ["gaussian", "analytic"],
            "params": {"U": [0.05, 0.1]},
            "fixed": {
                "n": 8,
                "members": 4,
                "frame_members": 4,
                "record": 40.0,
                "max_lag": 8.0,
                "restart_every": 8.0,
            },
        }

    return make


@pytest.fixture
def clean_registry():
    """The system registry, restored after the test: systems registered and plug-in files loaded
    in the test are removed again, so other tests see the built-in systems only."""
    import sys

    from gfdt_dash.systems import registry

    specs, files, modules = dict(registry._SPECS), dict(registry._PLUGIN_FILES), set(sys.modules)
    yield registry
    registry._SPECS.clear()
    registry._SPECS.update(specs)
    registry._PLUGIN_FILES.clear()
    registry._PLUGIN_FILES.update(files)
    for name in set(sys.modules) - modules:
        if name.startswith("gfdt_dash_plugin_"):
            del sys.modules[name]
