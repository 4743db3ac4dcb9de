"""The job protocol shared by every engine.

A long engine job is a plain generator: it yields :class:`Progress`, :class:`Preview`
and :class:`Log` events and ``return``\\ s its result. Whoever drives it (the studio's
worker threads, or :func:`run_job` on the command line) may stop pulling at any yield
and call ``close()``; the generator then sees ``GeneratorExit`` at that yield, runs its
``finally`` blocks and ends. That is cancellation: nothing after the last yield runs.

Code that cannot yield (for instance a diffusers pipeline callback) can take a
:class:`CancelToken` and call :meth:`CancelToken.raise_if_cancelled`, which raises
:class:`JobCancelled`.

Example::

    def blur_job(image, steps):
        for i in range(steps):
            image = smooth(image)
            yield Progress(i + 1, steps, "smoothing")
            yield Preview(image)
        return image

    result = run_job(blur_job(img, 10))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from engines.thread_priority import current_thread_lowered, lower_current_thread

__all__ = [
    "CancelToken",
    "JobCancelled",
    "JobEvent",
    "JobGenerator",
    "Log",
    "Preview",
    "Progress",
    "run_job",
    "wait_in_thread",
]


@dataclass
class Progress:
    """``done`` of ``total`` units are finished; ``message`` says what is being done."""

    done: float
    total: float
    message: str = ""

    @property
    def fraction(self) -> float:
        """Progress in [0, 1] (0 when ``total`` is not positive)."""
        if self.total <= 0:
            return 0.0
        return max(0.0, min(1.0, float(self.done) / float(self.total)))


@dataclass
class Preview:
    """An intermediate result to show while the job runs.

    ``image`` is an ``(H, W, 3)`` or ``(H, W)`` array, uint8 or float in [0, 1], or None.
    ``data`` carries anything else a panel plots live (loss, PSNR, step number ...).
    """

    image: Any = None
    data: dict = field(default_factory=dict)
    label: str = ""


@dataclass
class Log:
    """A message for the studio's log. ``level`` is ``"info"``, ``"warning"`` or ``"error"``."""

    message: str
    level: str = "info"
    details: str = ""


JobEvent = Progress | Preview | Log
JobGenerator = Generator[JobEvent, Any, Any]


class JobCancelled(Exception):
    """Raised inside a job (via :class:`CancelToken`) when its driver asked it to stop."""


class CancelToken:
    """A thread-safe flag that a driver sets and a job checks where it cannot yield."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if cancellation was requested."""
        if self._event.is_set():
            raise JobCancelled("cancelled")


def run_job(
    job: Iterator[JobEvent],
    on_event: Callable[[JobEvent], None] | None = None,
    cancel: CancelToken | None = None,
) -> Any:
    """Drive a job generator to the end on this thread and return its result.

    ``on_event`` receives every yielded event. If ``cancel`` is set between two events
    the generator is closed and :class:`JobCancelled` is raised.
    """
    try:
        while True:
            if cancel is not None and cancel.cancelled:
                raise JobCancelled("cancelled")
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            if on_event is not None:
                on_event(event)
    finally:
        close = getattr(job, "close", None)
        if close is not None:
            close()


def wait_in_thread(fn: Callable[..., Any], *args, message: str = "", poll: float = 0.1,
                   event: Progress | None = None, announce: Progress | None = None, **kwargs):
    """Job step: run ``fn(*args, **kwargs)`` on a helper thread, yielding ``event`` (default
    ``Progress(0, 1, message)``) every ``poll`` s until it returns.

    ``announce`` is ``event`` for a new step: it is yielded once before ``fn`` starts (a cancel
    there never starts it), then every ``poll`` s like ``event``. Give one of the two, not both.

    For work that cannot be interrupted (a first heavy import, a model load, a numba compile): the
    job keeps reaching yields, so a cancel stops it within ``poll`` seconds. The abandoned call then
    finishes in the background (daemon thread); whatever it caches is there for the next run.
    The helper thread does not inherit thread-local state such as torch's ``no_grad`` / autocast
    mode or numba's thread count: ``fn`` must set what it relies on itself.
    Returns ``fn``'s result or raises its exception.
    """
    if announce is not None:
        if event is not None:
            raise TypeError("wait_in_thread takes event or announce, not both")
        event = announce
        yield announce
    box: dict[str, Any] = {}
    done = threading.Event()
    background = current_thread_lowered()

    def work() -> None:
        if background:  # Linux threads inherit the priority; Windows threads do not
            lower_current_thread()
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the job's thread below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name=f"job-step {getattr(fn, '__name__', 'call')}", daemon=True).start()
    event = event or Progress(0, 1, message)
    while not done.wait(poll):
        yield event
    if "error" in box:
        raise box["error"]
    return box["value"]


class Stopwatch:
    """Elapsed time and a simple remaining-time estimate from a progress fraction."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since creation."""
        return time.monotonic() - self.start

    def remaining(self, fraction: float) -> float | None:
        """Seconds left if progress is linear in time, or None before any progress."""
        if fraction <= 0.0:
            return None
        return self.elapsed() * (1.0 - fraction) / fraction
