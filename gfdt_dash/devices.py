"""Device and dtype resolution shared by the whole core."""

from __future__ import annotations

import torch

__all__ = ["available_devices", "resolve_device", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def available_devices() -> list[str]:
    """Names of the devices usable in this process, CPU always included."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; an unavailable explicit choice is an error."""
    if isinstance(device, torch.device):
        return device
    if device is not None and not isinstance(device, str):
        raise ValueError(
            f"device: expected a name (auto, cpu, cuda, cuda:N, mps) or a torch.device, got "
            f"{device!r:.60}"
        )
    if device is not None and not device.strip():
        raise ValueError("device: empty name; allowed: auto, cpu, cuda, mps")
    name = (device or "auto").strip().lower()
    avail = available_devices()
    if name == "auto":
        for candidate in ("cuda", "mps", "cpu"):
            if candidate in avail:
                return torch.device(candidate)
    base = name.split(":")[0]
    if base not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: unknown device {device!r}; allowed: auto, cpu, cuda, mps")
    if base not in avail:
        raise ValueError(f"device: {device!r} is not available here; available: {', '.join(avail)}")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"device: {device!r} is not a device name (e.g. cpu, cuda, cuda:1, mps)"
        ) from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device: {device!r} does not exist; this machine has {torch.cuda.device_count()} "
            "CUDA device(s)"
        )
    return dev


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` (or the torch dtypes) → torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"dtype: {dtype} not supported; allowed: float32, float64")
        return dtype
    try:
        return _DTYPES[str(dtype)]
    except KeyError:
        raise ValueError(f"dtype: {dtype!r} not supported; allowed: float32, float64") from None
