"""``param.Parameterized`` mirrors of the system config dataclasses.

A mirror is generated from the dataclass's ``field_specs()`` metadata (bounds, unit, doc,
integer, choices), so the widgets cannot drift from the validated configs. The
mirror holds the editable values; ``to_config()`` validates them into a frozen config that a job
receives as an immutable snapshot.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import panel as pn
import param

from gfdt_dash.systems import SystemConfig

__all__ = [
    "ConfigMirror",
    "NumberField",
    "format_value",
    "label_of",
    "mirror_class",
    "mirror_widgets",
    "parse_number",
]

# The symbol each parameter has in the systems' equations; the rest are named in words.
SYMBOLS = {
    "n": "n",
    "eps2": "ε²",
    "kappa": "κ",
    "U": "U",
    "lam": "λ",
    "gamma": "γ",
    "dt": "Δt",
    "delta": "δ",
    "U0": "U₀",
    "nu2": "ν²",
    "nuh2": "ν_h²",
    "kf": "k_f",
    "forcing_amp": "A_f",
    "mean_forcing_removed": "c_S",
    "phase_diffusion": "D",
}


def label_of(name: str, meta: dict[str, Any], short: bool = False) -> str:
    """A parameter's label: its symbol with words and unit (``"λ — double-well strength"``), or
    with ``short`` the symbol alone (the name when it has none)."""
    symbol = SYMBOLS.get(name)
    if short:
        return symbol or name
    doc = (meta.get("doc") or name).strip()
    if symbol:
        # the symbol's first stand-alone occurrence in the doc (not inside a formula or word)
        doc = re.sub(rf"(?<!\S){re.escape(symbol)}(?!\S)", "", doc, count=1)
        doc = re.sub(r"\s+", " ", doc).strip()
        label = f"{symbol} — {doc}"
    else:
        label = f"{doc} ({name})"
    unit = meta.get("unit") or ""
    return f"{label} [{unit}]" if unit else label


def format_value(value: Any) -> str:
    """A parameter value as typed back to the user (``1000`` not ``1000.0``; ``0.0625``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def parse_number(
    text: str,
    label: str,
    *,
    integer: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
) -> int | float:
    """The number typed in ``text``, or ``ValueError`` naming ``label`` and what is allowed.

    Refuses what a spinner would misread: ``1e309`` (not finite), ``3.7`` for a whole number,
    values outside ``lo … hi`` (``lo`` excluded when ``lo_open``), and non-numbers.
    """
    raw = str(text).strip().replace("_", "")
    allowed = ""
    if lo is not None or hi is not None:
        low = "" if lo is None else f"{'more than ' if lo_open else ''}{format_value(lo)}"
        allowed = f"; allowed: {low} … {'' if hi is None else format_value(hi)}".replace("  ", " ")
    if not raw:
        raise ValueError(f"{label}: enter a number{allowed}")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{label}: {text.strip()!r} is not a number{allowed}") from None
    if not math.isfinite(value):
        raise ValueError(f"{label}: {text.strip()} is not a finite number{allowed}")
    if integer:
        if not value.is_integer():
            raise ValueError(f"{label}: {text.strip()} is not a whole number{allowed}")
        value = int(value)
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    if too_low or (hi is not None and value > hi):
        raise ValueError(f"{label}: {text.strip()} is out of range{allowed}")
    return value


class NumberField(pn.viewable.Viewer):
    """A text box for one numeric parameter of ``owner``, with its error shown inline.

    What is typed is parsed by :func:`parse_number`; a valid number is set on ``owner``, an
    invalid one leaves ``owner`` unchanged, shows the message under the box (in red, naming the
    parameter) and is reported through ``on_error(name, message)``; fixing it clears both
    (``on_error(name, None)``). Changes of the parameter elsewhere (a preset) show in the box.
    """

    def __init__(
        self,
        owner: param.Parameterized,
        name: str,
        label: str,
        *,
        integer: bool,
        lo: float | None,
        hi: float | None,
        lo_open: bool = False,
        doc: str = "",
        on_error: Callable[[str, str | None], None] | None = None,
    ) -> None:
        super().__init__()
        self.owner, self.name_, self.label = owner, name, label
        self._spec = dict(integer=integer, lo=lo, hi=hi, lo_open=lo_open)
        self._on_error = on_error
        self.input = pn.widgets.TextInput(
            label=label, value=format_value(getattr(owner, name)), description=doc or None
        )
        self.error = pn.pane.HTML(
            "",
            visible=False,
            css_classes=["gfdt-input-error"],
            styles={"color": "#b00020", "font-size": "0.85em"},
            margin=(0, 10),
        )
        self.input.param.watch(self._typed, "value")
        owner.param.watch(self._changed, name)

    def _typed(self, event: param.parameterized.Event) -> None:
        try:
            value = parse_number(event.new, self.label, **self._spec)
        except ValueError as exc:
            self._show(str(exc))
            return
        self._show(None)
        if getattr(self.owner, self.name_) != value:
            setattr(self.owner, self.name_, value)

    def _changed(self, event: param.parameterized.Event) -> None:
        try:
            typed = parse_number(self.input.value, self.label, **self._spec)
        except ValueError:
            typed = None
        if typed != event.new:
            self.input.value = format_value(event.new)  # a preset: shown, and valid
        self._show(None)

    def _show(self, message: str | None) -> None:
        self.error.object = f"⚠ {message}" if message else ""
        self.error.visible = bool(message)
        if self._on_error is not None:
            self._on_error(self.name_, message)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.input, self.error, margin=0, sizing_mode="stretch_width")


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
    label = label_of(name, meta)
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


def mirror_widgets(
    mirror: ConfigMirror, on_error: Callable[[str, str | None], None] | None = None
) -> pn.Column:
    """One labelled input per parameter (symbol, words, unit; the doc as tooltip): text boxes
    for numbers (:class:`NumberField`: what is typed is checked, never misread, and an error is
    shown under its box and reported to ``on_error``), check boxes and selectors for choices."""
    specs = mirror.config_cls.field_specs()
    rows: list[Any] = []
    for name, meta in specs.items():
        p = mirror.param[name]
        if isinstance(p, param.Boolean):
            rows.append(pn.widgets.Checkbox.from_param(p, label=p.label))
        elif isinstance(p, param.Selector):
            rows.append(pn.widgets.Select.from_param(p, label=p.label))
        else:
            rows.append(
                NumberField(
                    mirror,
                    name,
                    p.label,
                    integer=bool(meta.get("integer")),
                    lo=meta.get("lo"),
                    hi=meta.get("hi"),
                    lo_open=bool(meta.get("lo_open")),
                    doc=p.doc,
                    on_error=on_error,
                )
            )
    return pn.Column(*rows, sizing_mode="stretch_width")
