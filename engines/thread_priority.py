"""Background threads give way to the GUI thread: job threads run at a lower CPU priority.

On a machine with few cores a job (a fit, a ray-cast export, a file being prepared) keeps every core
busy; the GUI thread, and on a machine without a GPU the software-OpenGL threads drawing the 3D views,
then get a share equal to the job's and each frame or event takes two to three times as long. A
background thread at nice +10 (Linux, Windows: below normal) still gets all the CPU the GUI leaves
idle, but yields it as soon as the GUI needs it. On Linux the threads a lowered thread starts (its
helper threads, the OpenMP / numba pools it creates) inherit the priority.

``SPECTRA_BACKGROUND_NICE`` sets the nice value (0: leave threads as they are).
"""

from __future__ import annotations

import os
import sys
import threading

#: nice value of background threads (Linux scheduler weight ~1/10 of a normal thread's)
BACKGROUND_NICE = 10

_state = threading.local()


def background_nice() -> int:
    """The nice value background threads get (``$SPECTRA_BACKGROUND_NICE``, default 10; 0 turns it off)."""
    try:
        return max(0, min(19, int(os.environ.get("SPECTRA_BACKGROUND_NICE", BACKGROUND_NICE))))
    except ValueError:
        return BACKGROUND_NICE


def lower_current_thread() -> bool:
    """Run the calling thread as a background thread from now on (it cannot be raised again without
    privileges: call it only on threads that do background work). Returns True when the priority
    was lowered (or already was), False where the platform or the setting does not allow it."""
    nice = background_nice()
    if nice <= 0:
        return False
    if getattr(_state, "lowered", False):
        return True
    done = False
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()  # a thread is a task: PRIO_PROCESS with its id sets this thread only
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            done = True
        except OSError:
            done = False
    elif sys.platform == "win32":
        done = _lower_windows_thread()
    _state.lowered = done
    return done


def current_thread_lowered() -> bool:
    """True when :func:`lower_current_thread` lowered the calling thread."""
    return bool(getattr(_state, "lowered", False))


def _lower_windows_thread() -> bool:
    try:
        import ctypes

        kernel32 = ctypes.windll.kernel32
        below_normal = -1  # THREAD_PRIORITY_BELOW_NORMAL
        return bool(kernel32.SetThreadPriority(kernel32.GetCurrentThread(), below_normal))
    except (AttributeError, OSError):
        return False
