"""One place that decides where engines compute and with how many CPU threads.

The studio (from its settings) or the CLI (from ``--device``) calls :func:`set_device_override`
and :func:`set_threads`; every engine calls :func:`get_device`. torch is imported lazily so
importing this module is cheap.
"""

from __future__ import annotations

import os

_override: str | None = os.environ.get("SPECTRA_DEVICE") or None
_VALID = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """Devices torch can use on this machine, best first (``cpu`` is always last)."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def pick_device(override: str | None = None) -> str:
    """Return ``cuda``, then ``mps``, then ``cpu`` - or ``override`` if given and usable.

    Raises ValueError for an unknown name or a device this machine does not have.
    """
    choice = (override or "auto").lower()
    if choice not in _VALID and not choice.startswith("cuda:"):
        raise ValueError(f"unknown device {override!r}; use one of {', '.join(_VALID)}")
    devices = available_devices()
    if choice == "auto":
        return devices[0]
    if choice.split(":")[0] not in devices:
        raise ValueError(f"device {choice!r} is not available here (available: {', '.join(devices)})")
    return choice


def set_device_override(name: str | None) -> None:
    """Make :func:`get_device` return ``name`` (``None`` or ``"auto"`` restores auto-selection)."""
    global _override
    if name in (None, "", "auto"):
        _override = None
    else:
        pick_device(name)  # validate now, not in the middle of a job
        _override = name


def get_device() -> str:
    """The device every engine should use now (override, else the best available)."""
    return pick_device(_override)


def device_label(device: str | None = None) -> str:
    """A human name for a device, e.g. ``cpu`` or ``cuda (NVIDIA RTX 4090)``."""
    import torch

    device = device or get_device()
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def set_threads(count: int | None) -> int:
    """Set torch's intra-op CPU threads (``None`` or 0 = one per core); returns the value set."""
    import torch

    if not count:
        count = os.cpu_count() or 1
    torch.set_num_threads(int(count))
    return int(count)


def memory_in_use_mb() -> float:
    """Resident memory of this process in MiB (plus allocated CUDA memory when torch uses CUDA)."""
    rss = 0.0
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = float(line.split()[1]) / 1024.0
                    break
    except OSError:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        rss += torch.cuda.memory_allocated() / 2**20
    return rss
