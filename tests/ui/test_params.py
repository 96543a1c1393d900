"""The parameter mirrors stay in sync with the config dataclasses."""

import dataclasses

import param
import pytest

from gfdt_dash.systems import SYSTEMS, get_config
from gfdt_dash.ui.params import mirror_class


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_mirror_has_every_field_with_its_bounds_and_default(system):
    cls = SYSTEMS[system]
    mirror = mirror_class(cls)()
    specs = cls.field_specs()
    names = set(mirror.param) - {"name"}
    assert names == set(specs)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name, meta in specs.items():
        p = mirror.param[name]
        assert getattr(mirror, name) == defaults[name], name
        if meta["choices"] is None:
            assert p.bounds == (meta["lo"], meta["hi"]), name
            assert isinstance(p, param.Integer) == meta["integer"], name
            assert p.inclusive_bounds[0] == (not meta["lo_open"]), name
        assert meta["doc"] in p.doc, name
        if meta["unit"]:
            assert meta["unit"] in p.label, name
    assert mirror.to_config() == cls()


@pytest.mark.parametrize("system", list(SYSTEMS))
@pytest.mark.parametrize("preset", ["classroom", "paper"])
def test_mirror_round_trips_presets(system, preset):
    config = get_config(system, preset)
    mirror = mirror_class(SYSTEMS[system])()
    mirror.set_config(config)
    assert mirror.to_config() == config


def test_mirror_refuses_values_outside_the_bounds():
    mirror = mirror_class(SYSTEMS["ou"])()
    with pytest.raises(ValueError, match="n"):
        mirror.n = 1000
    with pytest.raises(ValueError, match="dt"):
        mirror.dt = 0.0  # open lower bound


def test_cross_field_validation_happens_in_to_config():
    mirror = mirror_class(SYSTEMS["ou"])()
    mirror.frame_every = 0.7  # within its bounds, but not a whole multiple of dt
    with pytest.raises(ValueError, match="frame_every"):
        mirror.to_config()
