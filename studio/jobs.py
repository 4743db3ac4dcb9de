"""Background jobs for the GUI: worker threads, a queue with per-device slots, cancel and pause.

An engine job is a plain generator (see :mod:`engines.jobs`). :class:`JobQueue` runs each one
on a superqt :class:`~superqt.utils.GeneratorWorker` in Qt's thread pool, at most
``max_running`` at a time per device; further jobs wait in order. Events reach the GUI thread
through queued signals, throttled to about 30 per second per kind so that a job that yields
very often cannot flood the event loop. Exceptions become an ``errored`` job plus a log entry;
the application keeps running.

States tell the truth: ``queued`` until a worker thread really starts the generator (also while
it waits for a free pool thread), ``running`` / ``paused`` while it runs, ``cancelling`` from the
cancel request until the generator has really stopped, then ``cancelled``, ``done`` or
``failed``. A job holds its device slot until its worker has ended. :meth:`JobRecord.remaining`
is the one time-left estimate (job table and status bar both show it).
"""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from qtpy.QtCore import QObject, Signal
from superqt.utils import GeneratorWorker

from engines.jobs import CancelToken, Log, Preview, Progress
from engines.thread_priority import lower_current_thread
from studio.errors import describe_error

QUEUED, RUNNING, PAUSED, CANCELLING = "queued", "running", "paused", "cancelling"
DONE, CANCELLED, FAILED = "done", "cancelled", "failed"
FINAL_STATES = (DONE, CANCELLED, FAILED)
ACTIVE_STATES = (RUNNING, PAUSED, CANCELLING)
_EVENT_INTERVAL = 1.0 / 30.0
#: the lane where paths are examined (sniffed, checked): not behind a long file open on ``io``
EXAMINE_LANE = "examine"
_now = time.monotonic  # the queue's clock (tests may replace it)


class EngineFailure(Exception):
    """Wraps an exception raised inside an engine job (keeps its traceback text)."""

    def __init__(self, original: BaseException, details: str) -> None:
        super().__init__(describe_error(original))
        self.original = original
        self.details = details


def _throttled(job: Iterator[Any]) -> Iterator[Any]:
    """Forward ``job``'s events, dropping Progress/Preview events that come too fast.

    Log events always pass; the newest dropped Progress/Preview is forwarded later, so the
    last state is never lost. The wrapped generator's return value is passed through.
    """
    last_sent = {Progress: 0.0, Preview: 0.0}
    pending: dict[type, Any] = {}
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                for held in pending.values():
                    yield held
                return stop.value
            kind = type(event) if type(event) in last_sent else None
            if kind is None:
                yield event
                continue
            now = time.monotonic()
            if now - last_sent[kind] >= _EVENT_INTERVAL:
                last_sent[kind] = now
                pending.pop(kind, None)
                yield event
            else:
                pending[kind] = event
    finally:
        close = getattr(job, "close", None)
        if close is not None:
            close()


class EngineWorker(GeneratorWorker):
    """A GeneratorWorker that closes the engine generator on abort and reports every error.

    (superqt's own loop treats a RuntimeError from the generator as a deleted worker and only
    warns; torch raises RuntimeError for real failures, so they are wrapped here.)
    """

    def work(self):
        lower_current_thread()  # jobs give way to the GUI thread (engines.thread_priority)
        try:
            result = super().work()
        finally:
            if self.abort_requested:
                self._gen.close()
        if isinstance(result, RuntimeError):  # superqt would drop it silently (and skip `finished`)
            return EngineFailure(result, "".join(traceback.format_exception(result)))
        return result


def _run_engine(job: Iterator[Any]):
    """Generator run by :class:`EngineWorker`: throttles events, wraps engine exceptions."""
    try:
        result = yield from _throttled(job)
    except Exception as exc:  # every engine failure reaches the error signal
        raise EngineFailure(exc, traceback.format_exc()) from exc
    return result


#: the progress text of a job handed to the thread pool that no thread has started yet
WAITING_FOR_THREAD = "waiting for a worker thread"


def is_housekeeping(record: JobRecord) -> bool:
    """Whether ``record`` is a housekeeping job (on the :data:`EXAMINE_LANE`: examining a drop, scanning
    model folders, listing files): the job table shows it only while it is slow or when it failed."""
    return record.device == EXAMINE_LANE


def percent(fraction: float) -> int:
    """The whole percent a progress bar of range 0..1000 shows for ``fraction`` (Qt's ``%p``: rounded
    down), so the job table, the ended jobs' texts and the panels' own bars give one figure."""
    return int(fraction * 1000) * 100 // 1000


def final_message(record: JobRecord) -> str:
    """The progress text an ended job keeps: no stale "waiting …" or step text from before a cancel
    or failure; a finished job keeps its last progress message."""
    if record.state == CANCELLED:
        if record.started is None:
            return "cancelled before it started"
        return f"cancelled at {percent(record.fraction)}%" if record.fraction > 0 else "cancelled"
    if record.state == FAILED:
        return f"failed at {percent(record.fraction)}%" if record.started is not None and record.fraction > 0 \
            else "failed"
    return "" if record.message == WAITING_FOR_THREAD else record.message


@dataclass
class JobRecord:
    """What the queue knows of one job (shown in the job table)."""

    id: int
    name: str
    panel: str
    device: str
    state: str = QUEUED
    fraction: float = 0.0
    message: str = ""
    error: str = ""
    details: str = ""
    submitted: float = field(default_factory=lambda: _now())
    started: float | None = None
    ended: float | None = None
    result: Any = None
    #: a failure's message was shown by the submitter's ``on_error`` (the queue then shows none)
    reported: bool = False

    @property
    def title(self) -> str:
        """The name as the job table and messages show it, in sentence case: ``examine ct.nii.gz`` →
        ``Examine ct.nii.gz`` (names are given as lower-case verb phrases, some start with a name)."""
        return self.name[:1].upper() + self.name[1:]

    def elapsed(self) -> float:
        """Seconds the job has run (0 while queued)."""
        if self.started is None:
            return 0.0
        return (self.ended or _now()) - self.started

    def remaining(self) -> float | None:
        """Estimated seconds left (linear in progress), or None when not running or no progress yet.

        The one estimate per job: the job table and the status bar both show this.
        """
        if self.state != RUNNING or self.fraction <= 0.0:
            return None
        return self.elapsed() * (1.0 - self.fraction) / self.fraction


class JobHandle:
    """Returned by :meth:`JobQueue.submit`; lets the submitter cancel or pause its job."""

    def __init__(self, queue: JobQueue, record: JobRecord, cancel_token: CancelToken) -> None:
        self._queue = queue
        self.record = record
        self.cancel_token = cancel_token

    @property
    def id(self) -> int:
        """The job's number in the queue."""
        return self.record.id

    def cancel(self) -> None:
        """Cancel the job (drops it if still queued)."""
        self._queue.cancel(self.record.id)

    def pause(self) -> None:
        """Pause the job at its next yield."""
        self._queue.pause(self.record.id)

    def resume(self) -> None:
        """Resume a paused job."""
        self._queue.resume(self.record.id)

    @property
    def state(self) -> str:
        """queued, running, paused, cancelling, done, cancelled or failed."""
        return self.record.state


@dataclass
class _Entry:
    record: JobRecord
    factory: Callable[[], Iterator[Any]]
    token: CancelToken
    on_event: Callable[[Any], None] | None
    on_result: Callable[[Any], None] | None
    on_error: Callable[[JobRecord], None] | None
    on_cancel: Callable[[], None] | None
    worker: EngineWorker | None = None
    holds_slot: bool = False  # dispatched to the pool and its worker has not ended yet


class JobQueue(QObject):
    """Runs engine jobs on worker threads, ``max_running`` at a time per device.

    Signals: ``job_added(record)``, ``job_changed(record)`` (progress, state), ``log(level,
    message, details)``, ``failed(record)`` for a non-modal notification (a failure the submitter's
    ``on_error`` reported itself is neither logged nor emitted again: see :meth:`failure_reported`).
    """

    job_added = Signal(object)
    job_changed = Signal(object)
    log = Signal(str, str, str)
    failed = Signal(object)

    def __init__(self, max_running: int = 1, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.max_running = max(1, int(max_running))
        self._ids = itertools.count(1)
        self._entries: dict[int, _Entry] = {}
        self._waiting: list[int] = []
        self._reporting: list[JobRecord] = []  # failed jobs whose on_error runs now (see failure_reported)

    # -- public API -------------------------------------------------------------------
    def submit(
        self,
        name: str,
        panel: str,
        factory: Callable[[], Iterator[Any]],
        *,
        device: str = "cpu",
        cancel_token: CancelToken | None = None,
        on_event: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[JobRecord], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
    ) -> JobHandle:
        """Queue a job. ``factory()`` is called on the worker thread and must return the generator.

        ``on_event`` gets every Preview/Progress/Log event on the GUI thread; ``on_result`` gets
        the generator's return value; ``on_error`` the failed record; ``on_cancel`` is called
        when the job is cancelled (its result is discarded).
        """
        token = cancel_token or CancelToken()
        record = JobRecord(id=next(self._ids), name=name, panel=panel, device=device)
        entry = _Entry(record, factory, token, on_event, on_result, on_error, on_cancel)
        self._entries[record.id] = entry
        self._waiting.append(record.id)
        self.job_added.emit(record)
        self._start_waiting()
        return JobHandle(self, record, token)

    def records(self) -> list[JobRecord]:
        """Every job this queue has seen, oldest first."""
        return [entry.record for entry in self._entries.values()]

    def running_count(self, device: str | None = None) -> int:
        """How many jobs are running, paused or cancelling (on ``device``, if given)."""
        return sum(
            1
            for e in self._entries.values()
            if e.record.state in ACTIVE_STATES and (device is None or e.record.device == device)
        )

    def waiting_count(self) -> int:
        """How many jobs wait for a slot or a worker thread."""
        return sum(1 for e in self._entries.values() if e.record.state == QUEUED)

    def _slots_used(self, device: str) -> int:
        return sum(1 for e in self._entries.values() if e.holds_slot and e.record.device == device)

    def cancel(self, job_id: int) -> None:
        """Cancel a job: a waiting one ends at once; a running one shows ``cancelling`` until its
        generator has really stopped."""
        entry = self._entries.get(job_id)
        if entry is None or entry.record.state in FINAL_STATES or entry.record.state == CANCELLING:
            return
        entry.token.cancel()
        if job_id in self._waiting:
            self._waiting.remove(job_id)
            self._finish(entry, CANCELLED)
            return
        if entry.record.state == QUEUED and self._take_back(entry):
            self._finish(entry, CANCELLED)
            return
        self._set_state(entry, CANCELLING)
        if entry.worker is not None:
            if entry.worker.is_paused:
                entry.worker.resume()
            entry.worker.quit()

    def _take_back(self, entry: _Entry) -> bool:
        """Remove a dispatched job that no pool thread has started yet; True if it never ran."""
        from qtpy.QtCore import QThreadPool

        try:
            taken = QThreadPool.globalInstance().tryTake(entry.worker)
        except (AttributeError, TypeError, RuntimeError):
            return False
        if taken:
            entry.holds_slot = False
        return bool(taken)

    def cancel_all(self) -> None:
        """Cancel every job that has not ended."""
        for job_id in list(self._entries):
            self.cancel(job_id)

    def pause(self, job_id: int) -> None:
        """Pause a running job at its next yield."""
        entry = self._entries.get(job_id)
        if entry and entry.worker is not None and entry.record.state == RUNNING:
            entry.worker.pause()

    def resume(self, job_id: int) -> None:
        """Resume a paused job."""
        entry = self._entries.get(job_id)
        if entry and entry.worker is not None and entry.record.state == PAUSED:
            entry.worker.resume()

    def set_max_running(self, count: int) -> None:
        """Change how many jobs may run at once per device."""
        self.max_running = max(1, int(count))
        self._start_waiting()

    def wait_all(self, timeout: float = 60.0) -> bool:
        """Process events until no job is queued or running (for tests and shutdown)."""
        from qtpy.QtCore import QCoreApplication, QThreadPool

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            QCoreApplication.processEvents()
            if all(e.record.state in FINAL_STATES for e in self._entries.values()):
                QThreadPool.globalInstance().waitForDone(int(max(0.0, deadline - time.monotonic()) * 1000))
                QCoreApplication.processEvents()
                return True
            time.sleep(0.005)
        return False

    # -- internals --------------------------------------------------------------------
    def _start_waiting(self) -> None:
        for job_id in list(self._waiting):
            entry = self._entries[job_id]
            if self._slots_used(entry.record.device) >= self.max_running:
                continue
            self._waiting.remove(job_id)
            self._start(entry)

    def _start(self, entry: _Entry) -> None:
        """Hand the job to the thread pool; it stays ``queued`` until a thread really starts it."""

        def body():
            return (yield from _run_engine(entry.factory()))

        worker = EngineWorker(body)
        entry.worker = worker
        entry.holds_slot = True
        entry.record.message = entry.record.message or WAITING_FOR_THREAD
        worker.started.connect(lambda e=entry: self._on_started(e))
        worker.yielded.connect(lambda event, e=entry: self._on_event(e, event))
        worker.returned.connect(lambda result, e=entry: self._on_returned(e, result))
        worker.errored.connect(lambda exc, e=entry: self._on_errored(e, exc))
        worker.paused.connect(lambda e=entry: self._set_state(e, PAUSED))
        worker.resumed.connect(lambda e=entry: self._set_state(e, RUNNING))
        worker.finished.connect(lambda e=entry: self._on_finished(e))
        self.job_changed.emit(entry.record)
        worker.start()

    def _on_started(self, entry: _Entry) -> None:
        record = entry.record
        if record.state == QUEUED:
            record.started = _now()
            if record.message == WAITING_FOR_THREAD:
                record.message = ""
            self._set_state(entry, RUNNING)

    def _on_finished(self, entry: _Entry) -> None:
        """The worker has ended (its generator is closed): free the slot, end a cancelled job."""
        entry.holds_slot = False
        if entry.record.state not in FINAL_STATES:
            if not entry.token.cancelled:
                entry.record.error = "the job ended without a result"
            self._finish(entry, CANCELLED if entry.token.cancelled else FAILED)
        self._start_waiting()

    def _set_state(self, entry: _Entry, state: str) -> None:
        record = entry.record
        if record.state in FINAL_STATES or (record.state == CANCELLING and state != CANCELLING):
            return
        record.state = state
        self.job_changed.emit(record)

    def _on_event(self, entry: _Entry, event: Any) -> None:
        if entry.record.state in FINAL_STATES or entry.record.state == CANCELLING:
            return
        if isinstance(event, Progress):
            entry.record.fraction = event.fraction
            entry.record.message = event.message
            self.job_changed.emit(entry.record)
        elif isinstance(event, Log):
            self.log.emit(event.level, f"[{entry.record.name}] {event.message}", event.details)
        if entry.on_event is not None:
            self._safely(entry, entry.on_event, event)

    def _on_returned(self, entry: _Entry, result: Any) -> None:
        if entry.token.cancelled:
            return  # ends as cancelled when the worker has finished
        entry.record.result = result
        entry.record.fraction = 1.0
        self._finish(entry, DONE)
        if entry.on_result is not None:
            self._safely(entry, entry.on_result, result)

    def _on_errored(self, entry: _Entry, exc: BaseException) -> None:
        from engines.jobs import JobCancelled

        original = getattr(exc, "original", exc)
        if isinstance(original, JobCancelled) or entry.token.cancelled:
            entry.token.cancel()
            return  # ends as cancelled when the worker has finished
        entry.record.error = describe_error(original)
        entry.record.details = getattr(exc, "details", "") or "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)
        )
        self._finish(entry, FAILED)

    def _finish(self, entry: _Entry, state: str) -> None:
        record = entry.record
        if record.state in FINAL_STATES:
            return
        record.state = state
        record.ended = _now()
        record.message = final_message(record)
        self.job_changed.emit(record)
        if state == FAILED:
            self._report_failure(entry)
        elif state == CANCELLED:
            self.log.emit("info", f"[{record.name}] cancelled", "")
            if entry.on_cancel is not None:
                self._safely(entry, entry.on_cancel)
        else:
            self.log.emit("info", f"[{record.name}] finished in {record.elapsed():.1f} s", "")
        self._start_waiting()

    def _report_failure(self, entry: _Entry) -> None:
        """One failure, one message: the submitter's ``on_error`` runs first; when it showed a message
        of its own (it called :meth:`failure_reported`, as ``StudioServices.notify`` does), that one
        stands, else the queue logs the failure and emits ``failed`` (the window's toast)."""
        record = entry.record
        if entry.on_error is not None:
            self._reporting.append(record)
            try:
                self._safely(entry, entry.on_error, record, report=False)
            finally:
                self._reporting.remove(record)
        if not record.reported:
            self.log.emit("error", f"[{record.name}] failed: {record.error}", record.details)
            self.failed.emit(record)

    def failure_reported(self) -> str:
        """Say that the message being shown now reports the failed job whose ``on_error`` is running (its
        own message replaces the queue's); returns that job's details (the traceback) for the log, or
        "" when no failure is being handled."""
        if not self._reporting:
            return ""
        record = self._reporting[-1]
        record.reported = True
        return record.details

    def _safely(self, entry: _Entry, callback: Callable, *args: Any, report: bool = True) -> None:
        """Run a panel callback; a failure in it is logged, never raised into Qt."""
        try:
            callback(*args)
        except Exception as exc:  # a panel bug must not kill the app
            details = traceback.format_exc()
            self.log.emit("error", f"[{entry.record.name}] {describe_error(exc)}", details)
            if report:
                entry.record.error = describe_error(exc)
                self.failed.emit(entry.record)
