import math

import pytest

from gfdt_dash.systems import (
    SYSTEMS,
    AllenCahnConfig,
    NavierStokesConfig,
    OUConfig,
    config_from_dict,
    config_from_json,
    get_config,
)


@pytest.mark.parametrize("system", sorted(SYSTEMS))
@pytest.mark.parametrize("preset", ["classroom", "paper"])
def test_presets_validate_and_round_trip(system, preset):
    config = get_config(system, preset)
    assert config.system == system
    assert config_from_json(config.to_json()) == config


def test_paper_presets_match_the_reconstruction():
    ou, ac, ns = (
        OUConfig.preset("paper"),
        AllenCahnConfig.preset("paper"),
        NavierStokesConfig.preset("paper"),
    )
    assert (ou.n, ou.eps2, ou.kappa, ou.U, ou.dt, ou.lam) == (32, 0.004, 2.5e-4, 0.02, 1 / 32, 0.0)
    assert (ac.lam, ac.members, ac.n_frames, ac.n_snapshots) == (4000.0, 128, 2000, 200)
    assert ac.n_experiments == 12800 and ou.n_experiments == 1280
    assert (ns.n, ns.U0, ns.nu2, ns.nuh2, ns.forcing_amp, ns.dt) == (
        32,
        math.pi,
        1e-5,
        1e-2,
        18.75,
        1 / 128,
    )
    assert ns.members * ns.n_snapshots == 8192 and ns.n_frames == 1024


@pytest.mark.parametrize(
    ("cls", "overrides", "field", "fragment"),
    [
        (OUConfig, {"n": 15}, "n", "even"),
        (OUConfig, {"n": 2}, "n", "[4, 256]"),
        (OUConfig, {"n": 512}, "n", "[4, 256]"),
        (OUConfig, {"dt": -0.1}, "dt", "(0.0, 1.0]"),
        (OUConfig, {"U": 10.0, "integrator": "rk4"}, "dt", "RK4 stability"),
        (OUConfig, {"kappa": 0.5}, "dt", "LM stability"),
        (OUConfig, {"integrator": "euler"}, "integrator", "allowed: lm, rk4"),
        (OUConfig, {"lam": 1.0}, "lam", "AllenCahnConfig"),
        (OUConfig, {"gamma": 0.0}, "gamma", "random walk"),
        (OUConfig, {"members": 100_000}, "members", "[1, 4096]"),
        (OUConfig, {"kappa": float("nan")}, "kappa", "finite"),
        (OUConfig, {"members": 2.5}, "members", "integer"),
        (OUConfig, {"frame_every": 0.3}, "frame_every", "multiple of dt"),
        (OUConfig, {"frame_members": 64}, "frame_members", "members"),
        (OUConfig, {"max_lag": 50.0}, "max_lag", "restart_every"),
        (AllenCahnConfig, {"lam": 0.0}, "lam", "(0.0"),
        (AllenCahnConfig, {"lam": 8000.0, "dt": 0.125}, "dt", "LM"),
        (AllenCahnConfig, {"lam": 8000.0, "dt": 0.125, "integrator": "rk4"}, "dt", "RK4"),
        (NavierStokesConfig, {"dealias": "yes"}, "dealias", "allowed"),
        (NavierStokesConfig, {"kf": 0.0}, "kf", "(0.0"),
    ],
)
def test_validation_names_the_field(cls, overrides, field, fragment):
    with pytest.raises(ValueError, match="^" + field + ":") as info:
        cls.preset("classroom", **overrides)
    assert fragment in str(info.value)


def test_dt_limit_depends_on_the_integrator():
    """LM: dt·rate < 2 on the real axis, advection exact; RK4: 2.785 and 2.828 (10 % margin)."""
    # the imaginary rate |U|(n/2 − 1) = 70 at n = 16, U = 10 limits RK4 only
    assert OUConfig.preset("classroom", U=10.0).integrator == "lm"
    with pytest.raises(ValueError, match=r"^dt: .*RK4 .*\(0, 0.03636\]"):
        OUConfig.preset("classroom", U=10.0, integrator="rk4")
    # real rate: 2λε² = 64 at λ = 8000; LM allows dt ≤ 0.9·2/64, RK4 dt ≤ 0.9·2.785/64
    AllenCahnConfig.preset("classroom", lam=8000.0, dt=1 / 36)
    with pytest.raises(ValueError, match=r"^dt: .*LM .*\(0, 0.02813\]"):
        AllenCahnConfig.preset("classroom", lam=8000.0, dt=1 / 32)
    AllenCahnConfig.preset("classroom", lam=8000.0, dt=1 / 32, integrator="rk4")


def test_integrator_default_and_configs_saved_without_it():
    """New configs use LM; a config saved before the field existed was simulated with RK4."""
    for system in ("ou", "allen_cahn"):
        for preset in ("classroom", "paper"):
            assert get_config(system, preset).integrator == "lm"
        legacy = get_config(system).to_dict()
        del legacy["integrator"]
        assert config_from_dict(legacy).integrator == "rk4"
        assert config_from_json(get_config(system, integrator="rk4").to_json()).integrator == "rk4"
    assert "integrator" not in NavierStokesConfig.field_specs()


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="^nu2: not a parameter of ou"):
        OUConfig.preset("classroom").replace(nu2=1.0)
    with pytest.raises(ValueError, match="^preset: unknown preset 'huge'"):
        OUConfig.preset("huge")
    with pytest.raises(ValueError, match="^system: unknown system 'lorenz'"):
        get_config("lorenz")


def test_configs_are_frozen():
    config = OUConfig.preset("classroom")
    with pytest.raises(AttributeError):
        config.n = 8


def test_field_specs_cover_every_numeric_field():
    specs = NavierStokesConfig.field_specs()
    assert specs["U0"]["hi"] == 20.0 and specs["dealias"]["choices"] == (False, True)
    assert all(spec["doc"] for spec in specs.values())


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_every_field_is_in_one_group_and_keys_follow_the_groups(system):
    config = get_config(system)
    groups = {g: config.group(g) for g in config.GROUPS}
    names = [name for fields in groups.values() for name in fields]
    assert sorted(names) == sorted(config.field_specs())  # each field in exactly one group
    assert set(groups["experiment"]) == {"delta", "n_experiments", "restart_every", "max_lag"}
    simulated = ("physics", "grid", "integrator", "ensemble")
    kicked = config.replace(delta=config.delta / 2)
    assert kicked.key(*simulated) == config.key(*simulated)
    assert kicked.key("experiment") != config.key("experiment")
    assert kicked.key() != config.key()
    longer = config.replace(record=2 * config.record)
    assert longer.key(*simulated) != config.key(*simulated)
    assert longer.key("experiment") == config.key("experiment")
    with pytest.raises(ValueError, match="^groups: unknown group 'protocol'"):
        config.group("protocol")


def test_keys_of_different_systems_differ():
    ou, ac = OUConfig(), AllenCahnConfig()
    assert ou.key("experiment") != ac.key("experiment")
