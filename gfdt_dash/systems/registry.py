"""The system registry: what each system is and can do, declared once.

Every system is one frozen :class:`SystemSpec`: its config class (presets, bounds, title), the
factory of its simulator, the closed-form score and response where they exist, the shipped score
model, and the text the dashboard shows. The command line, the pipeline, the response
estimators, the shipped models and the dashboard all read this registry, so a system registered
here (built in, or a plug-in) works everywhere.

Public API::

    register_system(spec)          # add a system; duplicates and malformed specs are refused
    system_spec(name_or_config)    # the spec of a name or a config
    system_names()                 # registered names, in registration order
    load_plugin(path)              # run a Python file that registers systems
    load_plugins(paths)            # several; loaded_plugins() lists the files loaded so far

Plug-ins come from three places: ``--plugin PATH`` on the command line, the environment variable
``GFDT_DASH_PLUGINS`` (paths separated by ``:``) in the dashboard, and installed packages that
declare an entry point in the group ``gfdt_dash.systems`` (loaded at the registry's first use;
the entry point may name a module that registers on import, a :class:`SystemSpec`, or a
callable returning one).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gfdt_dash.systems.config import (
    AllenCahnConfig,
    NavierStokesConfig,
    OUConfig,
    SystemConfig,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "SystemSpec",
    "load_plugin",
    "load_plugins",
    "loaded_plugins",
    "plugins_from_env",
    "register_system",
    "system_names",
    "system_spec",
    "unregister_system",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "gfdt_dash.systems"
PLUGINS_ENV = "GFDT_DASH_PLUGINS"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class SystemSpec:
    """One system's capabilities (validated at construction; an error names the field).

    Attributes
    ----------
    name
        Identifier (lower-case letters, digits, ``_``), equal to ``config_class.system``.
    config_class
        A :class:`~gfdt_dash.systems.SystemConfig` subclass with a ``"classroom"`` preset.
    make_system
        ``(config, device, dtype) → System``: the simulator.
    field_name, field_label, units
        The observed field's symbol (``θ``), its long name (``field θ``) and units.
    exact_score
        ``(config, device, dtype) → score callable`` on fields ``(B, n, n)``, or ``None``.
    analytic_response
        ``(config, lags) → array (lag, y, x)``: the exact response at time lags ``lags`` to a
        unit kick at pixel (0, 0), or ``None``.
    shipped_model
        Folder name of the shipped classroom score model under ``assets/models``, or ``None``.
    story
        The dashboard's "what to look for" paragraph (Markdown).
    scan_parameter
        The parameter a new scan of this system starts with (``None``: the first one).
    title
        Display name; default the config class's ``title``.
    """

    name: str
    config_class: type[SystemConfig]
    make_system: Callable[..., Any]
    field_name: str = "θ"
    field_label: str = "field θ"
    units: str = ""
    exact_score: Callable[..., Any] | None = None
    analytic_response: Callable[[Any, np.ndarray], np.ndarray] | None = None
    shipped_model: str | None = None
    story: str = ""
    scan_parameter: str | None = None
    title: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"SystemSpec.name: {self.name!r} is not a system name (lower-case letters, "
                "digits and _, starting with a letter)"
            )
        cls = self.config_class
        if not (isinstance(cls, type) and issubclass(cls, SystemConfig)) or cls is SystemConfig:
            raise ValueError(
                f"SystemSpec.config_class: expected a subclass of SystemConfig, got {cls!r:.80}"
            )
        if cls.system != self.name:
            raise ValueError(
                f"SystemSpec.config_class: {cls.__name__}.system is {cls.system!r}, the spec's "
                f"name is {self.name!r}; they must be equal"
            )
        if "classroom" not in cls.presets:
            raise ValueError(
                f"SystemSpec.config_class: {cls.__name__} has no 'classroom' preset "
                f"(presets: {', '.join(cls.presets) or 'none'})"
            )
        for attr in ("make_system",):
            if not callable(getattr(self, attr)):
                raise ValueError(f"SystemSpec.{attr}: must be callable")
        for attr in ("exact_score", "analytic_response"):
            value = getattr(self, attr)
            if value is not None and not callable(value):
                raise ValueError(f"SystemSpec.{attr}: must be callable or None, got {value!r:.60}")
        for attr in ("field_name", "field_label", "units", "story", "title"):
            if not isinstance(getattr(self, attr), str):
                raise ValueError(f"SystemSpec.{attr}: must be a string")
        if not self.field_name:
            raise ValueError("SystemSpec.field_name: must not be empty")
        if self.shipped_model is not None and (
            not isinstance(self.shipped_model, str) or not _NAME.match(self.shipped_model)
        ):
            raise ValueError(
                f"SystemSpec.shipped_model: {self.shipped_model!r} is not a model folder name"
            )
        if self.scan_parameter is not None and self.scan_parameter not in cls.field_specs():
            raise ValueError(
                f"SystemSpec.scan_parameter: {self.scan_parameter!r} is not a parameter of "
                f"{cls.__name__}"
            )
        if not self.title:
            object.__setattr__(self, "title", cls.title or self.name)

    @property
    def methods(self) -> tuple[str, ...]:
        """The closed-form methods this system has (``exact_score``, ``analytic``)."""
        have = (("exact_score", self.exact_score), ("analytic", self.analytic_response))
        return tuple(m for m, fn in have if fn is not None)


# -- the registry -----------------------------------------------------------------------------
_SPECS: dict[str, SystemSpec] = {}
_PLUGIN_FILES: dict[str, tuple[str, ...]] = {}  # resolved path → names it registered
_LOCK = threading.RLock()
_ENTRY_POINTS_LOADED = False


def register_system(spec: SystemSpec) -> SystemSpec:
    """Add ``spec`` to the registry (returns it). A name already registered is refused."""
    if not isinstance(spec, SystemSpec):
        raise ValueError(f"spec: expected a SystemSpec, got {type(spec).__name__}")
    with _LOCK:
        if spec.name in _SPECS:
            raise ValueError(
                f"name: a system named {spec.name!r} is already registered "
                f"({_SPECS[spec.name].config_class.__module__}); choose another name"
            )
        _SPECS[spec.name] = spec
    return spec


def unregister_system(name: str) -> None:
    """Remove a registered system (for tests and interactive sessions)."""
    with _LOCK:
        if name not in _SPECS:
            raise ValueError(f"system: {name!r} is not registered")
        del _SPECS[name]


def _ensure_loaded() -> None:
    """Load the installed packages' entry points once, at the registry's first use."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    with _LOCK:
        if _ENTRY_POINTS_LOADED:
            return
        _ENTRY_POINTS_LOADED = True  # before loading: a plug-in may use the registry itself
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, type | SystemSpec):
                    obj = obj()
                if isinstance(obj, SystemSpec) and _SPECS.get(obj.name) is not obj:
                    register_system(obj)
            except Exception as exc:
                raise ValueError(
                    f"entry point {ep.name} = {ep.value!r} (group {ENTRY_POINT_GROUP}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc


def system_names() -> tuple[str, ...]:
    """Names of the registered systems, in registration order (built-in ones first)."""
    _ensure_loaded()
    return tuple(_SPECS)


def system_spec(system: str | SystemConfig | type[SystemConfig]) -> SystemSpec:
    """The spec of a system name, a config or a config class; an unknown name lists the
    registered ones."""
    _ensure_loaded()
    if isinstance(system, SystemConfig) or (
        isinstance(system, type) and issubclass(system, SystemConfig)
    ):
        name = system.system
    else:
        name = system
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        hint = (
            " (a plug-in system is known once its file is loaded: --plugin PATH, "
            f"{PLUGINS_ENV} or load_plugin)"
            if isinstance(name, str) and name
            else ""
        )
        allowed = ", ".join(_SPECS)
        raise ValueError(f"system: unknown system {name!r}; allowed: {allowed}{hint}") from None


# -- plug-in files ----------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    stem = re.sub(r"\W", "_", path.stem)
    return f"gfdt_dash_plugin_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def load_plugin(path: str | os.PathLike) -> tuple[str, ...]:
    """Run the Python file ``path``, which registers one or more systems; returns their names.

    Loading a file again is a no-op (its names are returned). A missing file, one that fails to
    import or one that registers nothing is a ``ValueError`` naming the path.
    """
    _ensure_loaded()
    if not isinstance(path, str | os.PathLike):
        raise ValueError(f"plugin: expected the path of a Python file, got {path!r:.60}")
    raw = os.fspath(path)
    where = f"plugin {raw!r}"
    p = Path(raw).expanduser()
    if not p.is_file():
        reason = "is not a regular file" if p.exists() else "no such file"
        raise ValueError(f"{where}: {reason}")
    resolved = p.resolve()
    key = str(resolved)
    with _LOCK:
        if key in _PLUGIN_FILES:
            return _PLUGIN_FILES[key]
        name = _module_name(resolved)
        module_spec = importlib.util.spec_from_file_location(name, resolved)
        if module_spec is None or module_spec.loader is None:
            raise ValueError(f"{where}: not a Python source file (.py)")
        module = importlib.util.module_from_spec(module_spec)
        before = list(_SPECS)
        sys.modules[name] = module  # dataclasses and pickle look the module up by name
        try:
            module_spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(name, None)
            for added in set(_SPECS) - set(before):
                del _SPECS[added]
            if isinstance(exc, KeyboardInterrupt):
                raise  # a plug-in's sys.exit() is a failure to load, not the program's exit
            msg = " ".join(str(exc).split()) or "no message"
            raise ValueError(f"{where}: failed to load ({type(exc).__name__}: {msg})") from exc
        names = tuple(n for n in _SPECS if n not in before)
        if not names:
            sys.modules.pop(name, None)
            raise ValueError(
                f"{where}: registered no system (call gfdt_dash.systems.register_system)"
            )
        _PLUGIN_FILES[key] = names
        log.info("plugin %s: registered %s", key, ", ".join(names))
        return names


def load_plugins(paths: Iterable[str | os.PathLike] | None) -> tuple[str, ...]:
    """:func:`load_plugin` for each path; returns every name registered."""
    if isinstance(paths, str | os.PathLike):
        raise ValueError(f"plugins: expected a list of paths, got the single path {paths!r}")
    names: list[str] = []
    for path in paths or ():
        names.extend(load_plugin(path))
    return tuple(names)


def loaded_plugins() -> tuple[str, ...]:
    """The plug-in files loaded in this process (resolved paths), to pass to other processes."""
    return tuple(_PLUGIN_FILES)


def plugins_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Load the plug-ins of ``GFDT_DASH_PLUGINS`` (paths separated by ``:``); their names."""
    raw = (os.environ if environ is None else environ).get(PLUGINS_ENV, "")
    paths = [p for p in raw.split(os.pathsep) if p.strip()]
    try:
        return load_plugins(p.strip() for p in paths)
    except ValueError as exc:
        raise ValueError(f"{PLUGINS_ENV}: {exc}") from None


# -- the built-in systems ---------------------------------------------------------------------
def _field_system(config: Any, device: Any = "auto", dtype: Any = "float32") -> Any:
    from gfdt_dash.systems.fields import FieldSystem

    return FieldSystem(config, device, dtype)


def _navier_stokes_system(config: Any, device: Any = "auto", dtype: Any = "float32") -> Any:
    from gfdt_dash.systems.navier_stokes import NavierStokesSystem

    return NavierStokesSystem(config, device, dtype)


def _field_exact_score(config: Any, device: Any = "auto", dtype: Any = "float32") -> Any:
    """``s(θ) = (2/N²)[λ(θ − θ³) + Σ⁻¹(κΔ − γP₀)θ]`` (see :mod:`gfdt_dash.systems.fields`)."""
    return _field_system(config, device, dtype).score


def ou_analytic_response(config: OUConfig, lags: np.ndarray) -> np.ndarray:
    """Exact OU response ``R̂(k,t) = exp(−(κ|k|² + γδ_k0)t − iUk_x t)``, float64 on the CPU."""
    import torch

    from gfdt_dash.systems.grid import Grid

    c = config
    g = Grid(c.n, torch.device("cpu"), torch.float64)
    rate = -(c.kappa * g.k2 + torch.where(g.is_mean, c.gamma, 0.0)) - c.U * g.ikx
    t = torch.tensor(np.asarray(lags, dtype=np.float64))[:, None, None]
    return g.to_physical(torch.exp(rate * t)).numpy()


_BUILTIN = (
    SystemSpec(
        name=OUConfig.system,
        config_class=OUConfig,
        make_system=_field_system,
        field_name="θ",
        field_label="field θ",
        exact_score=_field_exact_score,
        analytic_response=ou_analytic_response,
        shipped_model=OUConfig.system,
        scan_parameter="kappa",
        story=(
            "**What to look for.** A linear field: its stationary density is Gaussian, so every "
            "method should match the analytic response (black), and the Gaussian estimate is "
            "exact — a benchmark for the learned score. The flow U carries the kick downstream "
            "(the peak arrives later in the panels further right and moves right in the maps) "
            "while diffusion κ spreads it."
        ),
    ),
    SystemSpec(
        name=AllenCahnConfig.system,
        config_class=AllenCahnConfig,
        make_system=_field_system,
        field_name="θ",
        field_label="field θ",
        exact_score=_field_exact_score,
        shipped_model=AllenCahnConfig.system,
        scan_parameter="lam",
        story=(
            "**What to look for.** The double well (λ) pushes each pixel towards one of two "
            "values: the histogram has two humps where a Gaussian has one. The Gaussian estimate "
            "C(t)C(0)⁻¹ therefore misses the response, while the GFDT with the exact or the "
            "learned score follows direct perturbation (orange dots, the truth). Change λ and "
            "compare."
        ),
    ),
    SystemSpec(
        name=NavierStokesConfig.system,
        config_class=NavierStokesConfig,
        make_system=_navier_stokes_system,
        field_name="ζ",
        field_label="vorticity ζ",
        shipped_model=NavierStokesConfig.system,
        scan_parameter="U0",
        story=(
            "**What to look for.** Turbulent vorticity driven by a forcing whose phases drift "
            "(dynamics hidden from the field). No closed-form score exists: only the learned "
            "score and the Gaussian estimate can be compared with direct perturbation (orange "
            "dots, the truth), as the mean flow U₀ carries the response downstream."
        ),
    ),
)
BUILTIN_SYSTEMS: tuple[str, ...] = tuple(s.name for s in _BUILTIN)
for _spec in _BUILTIN:
    register_system(_spec)
del _spec
