"""CUDA code path: the same step on the GPU and the CPU agree (skipped without a CUDA device)."""

import pytest
import torch

from gfdt_dash.systems import get_config, make_system, simulate

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("system", ["ou", "allen_cahn", "navier_stokes"])
def test_cuda_step_matches_cpu(system):
    config = get_config(system, "classroom")
    cpu = make_system(config, "cpu", "float64")
    gpu = make_system(config, "cuda", "float64")
    gen = cpu.generator(0)
    state = cpu.initial_state(8, gen)
    for _ in range(20):
        noise = cpu.draw_noise(8, gen)
        expected = cpu.step(state, noise)
        got = gpu.step(
            {k: v.cuda() for k, v in state.items()}, {k: v.cuda() for k, v in noise.items()}
        )
        torch.testing.assert_close(
            got["field_hat"].cpu(), expected["field_hat"], rtol=1e-10, atol=1e-10
        )
        state = expected


def test_cuda_simulation_is_reproducible():
    config = get_config("allen_cahn", "classroom", record=20.0, spinup=5.0)
    a = simulate(config, seed=3, device="cuda")
    b = simulate(config, seed=3, device="cuda")
    assert a.attrs["device"].startswith("cuda")
    assert (a.field.values == b.field.values).all()
