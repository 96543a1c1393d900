"""The system registry: contents, capabilities, and the errors of its public API."""

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from gfdt_dash.pipeline import default_methods
from gfdt_dash.response import analytic_response, exact_score
from gfdt_dash.score import shipped_model_path
from gfdt_dash.score.shipped import shipped_systems
from gfdt_dash.systems import (
    BUILTIN_SYSTEMS,
    SYSTEMS,
    AllenCahnConfig,
    NavierStokesConfig,
    OUConfig,
    config_from_dict,
    get_config,
    make_system,
    register_system,
    system_names,
    system_spec,
    unregister_system,
)

BUILTIN = {"ou": OUConfig, "allen_cahn": AllenCahnConfig, "navier_stokes": NavierStokesConfig}


@dataclass(frozen=True)
class ToyConfig(OUConfig):
    """An OU field under another name: enough to exercise registration."""

    system: ClassVar[str] = "toy_ou"
    title: ClassVar[str] = "Toy OU"


def toy_spec(**changes):
    fields = {"name": "toy_ou", "config_class": ToyConfig, "title": "", "story": "toy"}
    return dataclasses.replace(system_spec("ou"), **{**fields, **changes})


def test_builtin_systems_and_their_capabilities():
    assert system_names()[:3] == BUILTIN_SYSTEMS == tuple(BUILTIN)
    assert {k: SYSTEMS[k] for k in BUILTIN} == BUILTIN
    assert list(SYSTEMS) == list(system_names()) and len(SYSTEMS) == len(system_names())
    caps = {name: system_spec(name).methods for name in BUILTIN}
    assert caps == {
        "ou": ("exact_score", "analytic"),
        "allen_cahn": ("exact_score",),
        "navier_stokes": (),
    }
    for name, cls in BUILTIN.items():
        spec = system_spec(name)
        assert spec.config_class is cls and spec.title == cls.title and spec.story
        assert system_spec(cls) is spec and system_spec(cls.preset("classroom")) is spec
        assert spec.scan_parameter in cls.field_specs()
        assert shipped_model_path(name).parent.name == spec.shipped_model == name
    assert system_spec("navier_stokes").field_label == "vorticity ζ"
    assert shipped_systems() == tuple(BUILTIN)


def test_pipeline_methods_follow_the_capabilities():
    assert default_methods(get_config("ou")) == (
        "learned_score",
        "exact_score",
        "gaussian",
        "perturbation",
        "analytic",
    )
    assert default_methods(get_config("allen_cahn"), with_model=False) == (
        "exact_score",
        "gaussian",
        "perturbation",
    )
    assert default_methods(get_config("navier_stokes")) == (
        "learned_score",
        "gaussian",
        "perturbation",
    )
    assert default_methods(None) == ("learned_score", "gaussian")


def test_unknown_system_lists_the_registered_ones():
    for call in (
        lambda: system_spec("lorenz"),
        lambda: get_config("lorenz"),
        lambda: config_from_dict({"system": "lorenz"}),
    ):
        with pytest.raises(
            ValueError,
            match=r"^system: unknown system 'lorenz'; allowed: ou, "
            r"allen_cahn, navier_stokes",
        ):
            call()
    with pytest.raises(
        ValueError,
        match="^config: an exact score exists only for ou, allen_cahn, got NavierStokesConfig",
    ):
        exact_score(NavierStokesConfig.preset("classroom"))
    with pytest.raises(ValueError, match="^config: the analytic response exists only for ou,"):
        analytic_response(AllenCahnConfig.preset("classroom"), [0.0])


def test_duplicate_and_non_spec_registrations_are_refused():
    with pytest.raises(ValueError, match="^name: a system named 'ou' is already registered"):
        register_system(system_spec("ou"))
    with pytest.raises(ValueError, match="^spec: expected a SystemSpec, got dict"):
        register_system({"name": "x"})
    with pytest.raises(ValueError, match="^system: 'toy_ou' is not registered"):
        unregister_system("toy_ou")
    assert system_names()[:3] == BUILTIN_SYSTEMS  # nothing half-registered


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (dict(name="Bad Name"), "name"),
        (dict(name=""), "name"),
        (dict(config_class=dict), "config_class"),
        (dict(config_class=OUConfig), "config_class"),  # its system is "ou", not "toy_ou"
        (dict(make_system=None), "make_system"),
        (dict(exact_score="closed form"), "exact_score"),
        (dict(analytic_response=3), "analytic_response"),
        (dict(field_name=""), "field_name"),
        (dict(story=None), "story"),
        (dict(shipped_model="../../etc"), "shipped_model"),
        (dict(scan_parameter="nonsense"), "scan_parameter"),
    ],
)
def test_malformed_specs_name_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"^SystemSpec\.{field}: "):
        toy_spec(**changes)


def test_a_config_class_without_a_classroom_preset_is_refused():
    @dataclass(frozen=True)
    class NoPreset(OUConfig):
        system: ClassVar[str] = "toy_ou"
        presets: ClassVar[dict] = {"paper": {}}

    with pytest.raises(ValueError, match=r"^SystemSpec\.config_class: NoPreset has no 'classroom'"):
        toy_spec(config_class=NoPreset)


def test_a_registered_system_is_seen_everywhere(clean_registry):
    spec = register_system(toy_spec(analytic_response=None))
    assert spec.title == "Toy OU"  # from the config class
    assert "toy_ou" in SYSTEMS and system_names()[-1] == "toy_ou"
    cfg = get_config("toy_ou", n=8)
    assert isinstance(cfg, ToyConfig) and config_from_dict(cfg.to_dict()) == cfg
    assert default_methods(cfg) == ("learned_score", "exact_score", "gaussian", "perturbation")
    score = exact_score(cfg, "cpu")
    theta = torch.randn(2, 8, 8)
    want = make_system(OUConfig.preset("classroom", n=8), "cpu").score(theta)
    torch.testing.assert_close(score(theta), want)
    with pytest.raises(
        ValueError, match="^config: the analytic response exists only for ou, got ToyConfig"
    ):
        analytic_response(cfg, [0.0])
    unregister_system("toy_ou")
    assert "toy_ou" not in SYSTEMS


def test_a_malformed_analytic_response_is_caught(clean_registry):
    register_system(toy_spec(analytic_response=lambda config, lags: np.zeros((1, 2))))
    with pytest.raises(ValueError, match="^analytic_response: toy_ou's closed form returned"):
        analytic_response(get_config("toy_ou"), [0.0, 1.0])


class _EntryPoint:
    def __init__(self, name, obj):
        self.name, self.value, self._obj = name, f"toy_package:{name}", obj

    def load(self):
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def test_entry_points_are_loaded_at_first_use(clean_registry, monkeypatch):
    import importlib.metadata

    seen = []

    def fake(group):
        seen.append(group)
        return [
            _EntryPoint("spec", toy_spec()),
            _EntryPoint("factory", lambda: toy_spec(name="toy_two", config_class=Toy2)),
        ]

    @dataclass(frozen=True)
    class Toy2(OUConfig):
        system: ClassVar[str] = "toy_two"

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    monkeypatch.setattr(clean_registry, "_ENTRY_POINTS_LOADED", False)
    assert system_names()[-2:] == ("toy_ou", "toy_two")
    assert seen == ["gfdt_dash.systems"]
    system_names()
    assert seen == ["gfdt_dash.systems"]  # once


def test_a_broken_entry_point_names_itself(clean_registry, monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group: [_EntryPoint("broken", ImportError("no module named x"))],
    )
    monkeypatch.setattr(clean_registry, "_ENTRY_POINTS_LOADED", False)
    with pytest.raises(
        ValueError,
        match=r"^entry point broken = 'toy_package:broken' \(group "
        r"gfdt_dash.systems\): ImportError: no module named x",
    ):
        system_names()
