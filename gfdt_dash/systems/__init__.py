"""Simulators of the three systems: configs, grid operators, steppers and the driver.

The OU / Allen–Cahn family picks its time integrator by ``config.integrator`` (``"lm"``, the
default, or ``"rk4"``, the original study's scheme; :mod:`gfdt_dash.systems.steppers`).

Quick start::

    from gfdt_dash.systems import AllenCahnConfig, simulate
    ds = simulate(AllenCahnConfig.preset("classroom"), seed=1)
    ds.field  # (member, time, y, x)
"""

from gfdt_dash.systems.base import PairedRun, SimulationDiverged, State, System, cat_batches
from gfdt_dash.systems.config import (
    SYSTEMS,
    AllenCahnConfig,
    NavierStokesConfig,
    OUConfig,
    SystemConfig,
    config_from_dict,
    config_from_json,
    get_config,
)
from gfdt_dash.systems.fields import FieldSystem
from gfdt_dash.systems.grid import Grid
from gfdt_dash.systems.navier_stokes import NavierStokesSystem
from gfdt_dash.systems.simulate import advance, make_system, output_bytes, simulate
from gfdt_dash.systems.steppers import STEPPERS, Stepper, make_stepper

__all__ = [
    "STEPPERS",
    "SYSTEMS",
    "AllenCahnConfig",
    "FieldSystem",
    "Grid",
    "NavierStokesConfig",
    "NavierStokesSystem",
    "OUConfig",
    "PairedRun",
    "SimulationDiverged",
    "State",
    "Stepper",
    "System",
    "SystemConfig",
    "advance",
    "cat_batches",
    "config_from_dict",
    "config_from_json",
    "get_config",
    "make_stepper",
    "make_system",
    "output_bytes",
    "simulate",
]
