"""Simulators: the system registry, configs, grid operators, steppers and the driver.

Every system (the three built in, and plug-ins) is a :class:`SystemSpec` in the registry
(:mod:`gfdt_dash.systems.registry`): ``register_system``, ``system_spec``, ``system_names``,
``load_plugin``. ``SYSTEMS`` is a live view ``name → config class`` of it.

The OU / Allen–Cahn family picks its time integrator by ``config.integrator`` (``"lm"``, the
default, or ``"rk4"``, the original study's scheme; :mod:`gfdt_dash.systems.steppers`).

Quick start::

    from gfdt_dash.systems import AllenCahnConfig, simulate
    ds = simulate(AllenCahnConfig.preset("classroom"), seed=1)
    ds.field  # (member, time, y, x)
"""

from gfdt_dash.systems.base import PairedRun, SimulationDiverged, State, System, cat_batches
from gfdt_dash.systems.config import (
    INTEGRATORS,
    SYSTEMS,
    AllenCahnConfig,
    NavierStokesConfig,
    OUConfig,
    SystemConfig,
    config_from_dict,
    config_from_json,
    get_config,
)
from gfdt_dash.systems.config import spec as config_field
from gfdt_dash.systems.fields import FieldSystem, linear_stationary_state
from gfdt_dash.systems.grid import Grid
from gfdt_dash.systems.navier_stokes import NavierStokesSystem
from gfdt_dash.systems.registry import (
    BUILTIN_SYSTEMS,
    SystemSpec,
    load_plugin,
    load_plugins,
    loaded_plugins,
    plugins_from_env,
    register_system,
    system_names,
    system_spec,
    unregister_system,
)
from gfdt_dash.systems.simulate import advance, make_system, output_bytes, simulate
from gfdt_dash.systems.steppers import STEPPERS, Stepper, make_stepper

__all__ = [
    "BUILTIN_SYSTEMS",
    "INTEGRATORS",
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
    "SystemSpec",
    "advance",
    "cat_batches",
    "config_field",
    "config_from_dict",
    "config_from_json",
    "get_config",
    "linear_stationary_state",
    "load_plugin",
    "load_plugins",
    "loaded_plugins",
    "make_stepper",
    "make_system",
    "output_bytes",
    "plugins_from_env",
    "register_system",
    "simulate",
    "system_names",
    "system_spec",
    "unregister_system",
]
