"""``param.Parameterized`` mirrors of the system config dataclasses.

A mirror is generated from the dataclass's ``field_specs()`` metadata (bounds, unit, doc,
integer, choices), so the widgets cannot drift from the validated configs (STYLE rule 1). The
mirror holds the editable values; ``to_config()`` validates them into a frozen config that a job
receives as an immutable snapshot.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

import panel as pn
import param

from gfdt_dash.systems import SystemConfig

__all__ = ["ConfigMirror", "mirror_class", "mirror_widgets"]


class ConfigMirror(param.Parameterized):
    """Base class of the generated mirrors; ``config_cls`` is set on each subclass."""

    config_cls: type[SystemConfig]

    def to_config(self) -> SystemConfig:
        """The validated frozen config for the current values (raises ``ValueError``)."""
        values = {name: getattr(self, name) for name in self.config_cls.field_specs()}
        return self.config_cls(**values)

    def set_config(self, config: SystemConfig) -> None:
        """Show ``config``'s values (one batched update, so watchers fire once)."""
        if type(config) is not self.config_cls:
            raise TypeError(f"config: expected {self.config_cls.__name__}, got {type(config)}")
        self.param.update(**dataclasses.asdict(config))


def _parameter(name: str, default: Any, meta: dict[str, Any]) -> param.Parameter:
    unit = meta.get("unit") or ""
    doc = meta.get("doc") or name
    doc = f"{doc} [{unit}]" if unit else doc
    label = f"{name} ({unit})" if unit else name
    choices = meta.get("choices")
    if choices is not None:
        if set(choices) <= {True, False}:
            return param.Boolean(default=bool(default), doc=doc, label=label)
        return param.Selector(default=default, objects=list(choices), doc=doc, label=label)
    bounds = (meta.get("lo"), meta.get("hi"))
    inclusive = (not meta.get("lo_open", False), True)
    if meta.get("integer"):
        return param.Integer(
            default=default, bounds=bounds, inclusive_bounds=inclusive, doc=doc, label=label
        )
    return param.Number(
        default=float(default), bounds=bounds, inclusive_bounds=inclusive, doc=doc, label=label
    )


@cache
def mirror_class(config_cls: type[SystemConfig]) -> type[ConfigMirror]:
    """The ``ConfigMirror`` subclass for ``config_cls`` (one class per config, cached)."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    params = {
        name: _parameter(name, defaults[name], meta)
        for name, meta in config_cls.field_specs().items()
    }
    cls = param.parameterized_class(f"{config_cls.__name__}Mirror", params, bases=ConfigMirror)
    cls.config_cls = config_cls
    return cls


def mirror_widgets(mirror: ConfigMirror) -> pn.Param:
    """Bounded numeric inputs (not sliders: the ranges span decades) with docs as tooltips."""
    widgets: dict[str, Any] = {}
    for name, p in mirror.param.objects("existing").items():
        if name == "name":
            continue
        lo, hi = getattr(p, "bounds", None) or (None, None)
        if isinstance(p, param.Integer):
            widgets[name] = {"type": pn.widgets.IntInput, "start": lo, "end": hi}
        elif isinstance(p, param.Number):
            # An open lower bound of 0 cannot be expressed by a spinner; validation catches 0.
            widgets[name] = {"type": pn.widgets.FloatInput, "start": lo, "end": hi}
    return pn.Param(
        mirror,
        parameters=[n for n in mirror.param if n != "name"],
        widgets=widgets,
        show_name=False,
        sizing_mode="stretch_width",
    )
