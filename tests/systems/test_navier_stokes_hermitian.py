"""The Navier–Stokes state stays the rfft2 of a real field (no non-Hermitian round-off build-up).

In rfft2 storage the k_x = 0 and Nyquist columns hold both k and −k; a real field has
ẑ(−k) = conj ẑ(k) there. Round-off can break that, and irfft2 cannot see the breach, so only
the linear part acts on it: a linear rate > 0 would grow it without bound (what made the
Allen–Cahn simulator diverge for n ≥ 20). Here every linear rate is ≤ −min(ν_h²/|k|⁴ + ν²|k|⁴)
< 0, and the simulator also projects the state on real fields after every step, so the mirrored
coefficients are exact conjugates at all times.
"""

import pytest
import torch

from gfdt_dash.systems import NavierStokesConfig, make_system

SIZES = [24, 32, 64]


def _paper(n, **overrides):
    return NavierStokesConfig.preset("paper", n=n, members=2, frame_members=2, **overrides)


def _hermitian_defect(system, field_hat):
    """Largest |ẑ(−k) − conj ẑ(k)| over the two self-mirrored columns (0: exactly Hermitian)."""
    rows = (-torch.arange(system.grid.n)) % system.grid.n
    cols = torch.tensor([0, system.grid.n // 2])
    mirrored = field_hat[:, rows][..., cols]
    return float((mirrored - field_hat[..., cols].conj()).abs().max())


def _real_field_defect(system, field_hat):
    """|rfft2(irfft2(ẑ)) − ẑ| relative to max |ẑ|: how far ẑ is from the rfft2 of a real field."""
    g = system.grid
    round_trip = g.to_spectral(g.to_physical(field_hat))
    return float((round_trip - field_hat).abs().max() / field_hat.abs().max())


@pytest.mark.parametrize("n", SIZES)
def test_no_linear_rate_is_positive(n):
    system = make_system(_paper(n), "cpu", "float64")
    # the smallest damping is 2√(ν_h² ν²) ≈ 6.3e-4 near |k|⁴ = ν_h²/ν²; the mean's is 1
    assert float(system.linear_hat.real.max()) < -5e-4


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", SIZES)
def test_state_stays_the_rfft2_of_a_real_field_over_long_runs(n, dtype):
    """16 time units (2048 steps) of the paper physics from the study's initial state."""
    system = make_system(_paper(n), "cpu", dtype)
    gen = system.generator(1)
    state = system.initial_state(2, gen)
    eps = torch.finfo(system.dtype).eps
    for block in range(16):
        for _ in range(128):
            state = system.step(state, system.draw_noise(2, gen))
        assert system.is_finite(state), f"non-finite after {block + 1} time units"
        assert _hermitian_defect(system, state["field_hat"]) == 0.0
        # FFT round trip of a real field: a few eps (measured ≤ 1.6e-7 in float32)
        assert _real_field_defect(system, state["field_hat"]) < 100 * eps
    # turbulent, not decayed: the forcing keeps the vorticity O(10)
    assert float(system.observe(state).abs().max()) > 1.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", SIZES)
def test_initial_state_kick_and_step_give_exactly_hermitian_states(n, dtype):
    system = make_system(_paper(n), "cpu", dtype)
    gen = system.generator(2)
    state = system.initial_state(2, gen)
    assert _hermitian_defect(system, state["field_hat"]) == 0.0
    kicked = system.kick(state, 1 / 64, (3, 5))
    assert _hermitian_defect(system, kicked["field_hat"]) == 0.0
    # the kick is still one pixel: δ at (3, 5), nothing elsewhere (to round-off)
    diff = system.observe(kicked) - system.observe(state)  # (batch, y, x)
    expected = torch.zeros_like(diff)
    expected[:, 3, 5] = 1 / 64
    assert torch.allclose(diff, expected, atol=1e3 * torch.finfo(system.dtype).eps)
    stepped = system.step(kicked, system.draw_noise(2, gen))
    assert _hermitian_defect(system, stepped["field_hat"]) == 0.0


def test_a_non_hermitian_part_is_removed_not_evolved():
    """An anti-Hermitian perturbation of the k_x = 0 column is invisible on the grid; one step
    removes it and the grid field evolves as if it had never been there."""
    system = make_system(_paper(32), "cpu", "float64")
    gen = system.generator(3)
    state = system.initial_state(2, gen)
    for _ in range(64):
        state = system.step(state, system.draw_noise(2, gen))
    bad = state["field_hat"].clone()
    bad[:, 3, 0] += 1.0 + 2.0j  # no partner at row −3: not the rfft2 of any real field
    bad[:, 32 - 3, 0] += -1.0 + 2.0j  # with the line above: i·(2, 2) antisymmetric, 1 symmetric
    assert _hermitian_defect(system, bad) > 1.0
    noise = system.draw_noise(2, gen)
    clean = system.grid.hermitian(bad)
    assert _hermitian_defect(system, clean) == 0.0
    to_grid = system.grid.to_physical
    assert torch.allclose(to_grid(clean), to_grid(bad), atol=1e-12)
    out_bad = system.step({**state, "field_hat": bad}, noise)
    out_clean = system.step({**state, "field_hat": clean}, noise)
    assert _hermitian_defect(system, out_bad["field_hat"]) == 0.0
    assert torch.equal(out_bad["field_hat"], out_clean["field_hat"])


@pytest.mark.parametrize("n", [16, 24])
def test_the_flat_projection_equals_the_strided_one_bit_for_bit(n):
    """``Grid.hermitian_`` projects a contiguous array through gathers and a scatter on the flat
    spectrum, any other through strided views of the two edge columns: the same two numbers
    added, halved, so the two must agree exactly, including on blocks of members."""
    system = make_system(_paper(n), "cpu", "float32")
    g = torch.Generator().manual_seed(0)
    field_hat = torch.randn(5, n, n // 2 + 1, dtype=torch.complex64, generator=g)
    strided = torch.cat([field_hat, field_hat], -1)[..., : n // 2 + 1]  # not contiguous
    assert not strided.is_contiguous()
    want = system.grid.hermitian_(strided)
    got = system.grid.hermitian_(field_hat[1:4].clone())
    assert torch.equal(got, want[1:4])
    assert _hermitian_defect(system, got) == 0.0
    assert not torch.equal(got, field_hat[1:4])  # a random array is not Hermitian
    leaf = field_hat[1:4].clone().requires_grad_()
    tracked = system.grid.hermitian_(leaf * 1)  # the autograd-safe path
    assert torch.equal(tracked.detach(), want[1:4])
    tracked.real.sum().backward()
    assert leaf.grad is not None


def test_the_step_projects_only_what_is_not_already_exactly_real():
    """An exactly Hermitian state is used as it is (no copy); any other is projected on a copy,
    and the caller's array is never written."""
    system = make_system(_paper(16), "cpu", "float32")
    gen = system.generator(0)
    state = system.step(system.initial_state(3, gen), system.draw_noise(3, gen))
    clean = state["field_hat"]
    assert system.grid.real_field(clean) is clean
    bad = clean.clone()
    bad[1, 3, 0] += 0.25j  # breaks the conjugate pair of (k_y, k_x) = (±3, 0) in one member
    before = bad.clone()
    got = system.grid.real_field(bad)
    assert got is not bad and torch.equal(bad, before)
    assert torch.equal(got, system.grid.hermitian(bad))
    assert not torch.equal(got, bad)
    strided = torch.cat([clean, clean], -1)[..., : clean.shape[-1]]  # not contiguous
    assert torch.equal(system.grid.real_field(strided), clean)
