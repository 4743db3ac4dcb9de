"""One place that decides where engines compute and with how many CPU threads.

The studio (from its settings) or the CLI (from ``--device``) calls :func:`set_device_override`
and :func:`set_threads`; every engine calls :func:`get_device`. torch is imported lazily so
importing this module is cheap.
"""

from __future__ import annotations

import os
import sys

_override: str | None = os.environ.get("SPECTRA_DEVICE") or None
_threads: int = 0  # 0 = not set by the user: libraries keep their defaults
_VALID = ("auto", "cpu", "cuda", "mps")
#: the most CPU threads a user may ask for (100,000 made the OpenMP start-up crash the process)
MAX_THREADS = 1024


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
    """Set the CPU threads of torch and of numba's compiled kernels (``None`` or 0 = one per core).

    Returns the value set. numba's setting is per thread and capped by the pool size it started
    with: engines that run numba kernels on a worker thread call :func:`apply_numba_threads`
    there. If numba is not imported yet, ``NUMBA_NUM_THREADS`` is set so its pool starts at this size.
    Raises ValueError for a count outside 0..:data:`MAX_THREADS`.
    """
    global _threads
    if count is not None and not 0 <= count <= MAX_THREADS:
        raise ValueError(f"threads must be from 1 to {MAX_THREADS} (0: one per core), got {count}")
    import torch

    if not count:
        count = os.cpu_count() or 1
    _threads = int(count)
    if "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(_threads)
    apply_numba_threads()  # first: numba's OpenMP layer sets the OpenMP thread count torch shares
    torch.set_num_threads(_threads)
    return _threads


def configured_threads() -> int:
    """The threads setting last applied with :func:`set_threads` (0: never set, libraries' defaults)."""
    return _threads


def apply_numba_threads() -> None:
    """Apply the threads setting to numba on the calling thread (no-op if numba is not loaded)."""
    numba = sys.modules.get("numba")
    if numba is not None and _threads:
        numba.set_num_threads(max(1, min(_threads, numba.config.NUMBA_NUM_THREADS)))


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
    cuda = getattr(sys.modules.get("torch"), "cuda", None)  # None while torch is still being imported
    try:
        if cuda is not None and cuda.is_available():
            rss += cuda.memory_allocated() / 2**20
    except Exception:  # noqa: BLE001 - a half-imported torch (start-up thread): RSS only
        pass
    return rss
