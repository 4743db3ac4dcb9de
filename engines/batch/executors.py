"""Executors: where a batch's tasks run, chosen at run time.

``serial``   every task in this process, one after another (no Ray needed);
``local``    a Ray instance started on this machine, ``workers`` tasks at once (default: one per core);
``auto``     the Ray cluster started on this machine with ``ray start --head`` (or ``$RAY_ADDRESS``);
``ray://HOST:PORT``  a remote cluster through Ray Client (port 10001 on the head by default);
``HOST:PORT``        a cluster's GCS address (``ray start --head`` prints it; port 6379).

Ray is optional (``pip install -e ".[cluster]"``) and imported only when a Ray executor starts.
Inputs travel by content (``ray.put`` once per distinct file); the code of ``engines`` and
``studio`` travels as a runtime-env ``py_modules`` package, so workers need no shared file system
and always run the driver's version of the code. An executor's :meth:`run` is a generator of
task outcomes (dicts from :func:`engines.batch.worker.run_task`) in completion order; ``None``
is a heartbeat while waiting. Closing it cancels the tasks that have not finished.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from engines.batch.spec import TaskSpec
from engines.batch.worker import run_task

__all__ = ["EXECUTOR_CHOICES", "Executor", "RayExecutor", "SerialExecutor", "code_runtime_env", "make_executor", "ray_available"]

EXECUTOR_CHOICES = ("serial", "local", "auto", "ray://HOST:PORT", "HOST:PORT")
_ROOT = Path(__file__).resolve().parents[2]


def code_runtime_env() -> dict:
    """The Ray runtime env that ships this checkout's ``engines`` and ``studio`` packages to every
    worker (pass it to ``ray.init``; Ray accepts local folders only there)."""
    return {"py_modules": [str(_ROOT / "engines"), str(_ROOT / "studio")],
            "excludes": ["__pycache__", "*.pyc"], "env_vars": {"OMP_NUM_THREADS": "1"}}


def ray_available() -> bool:
    """True when the optional ``ray`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _blobs_for(task: TaskSpec) -> tuple[dict, list[str], list[str]]:
    digests = {role: ref.sha256 for role, ref in task.inputs.items()}
    roles = list(digests)
    return digests, roles, [digests[r] for r in roles]


class Executor:
    """Common interface: :meth:`start`, :meth:`run` (generator of outcomes), :meth:`close`."""

    name = "executor"
    startup_seconds = 0.0

    def describe(self) -> dict:
        """JSON-able description for the batch manifest."""
        return {"executor": self.name, "startup_seconds": round(self.startup_seconds, 3)}

    def start(self) -> None:
        """Get ready to run tasks (Ray executors connect or start Ray here)."""

    def run(self, tasks: list[TaskSpec], blobs: dict[str, bytes]) -> Iterator[dict | None]:
        """Run ``tasks`` and yield their outcomes as they finish (``None`` = still waiting)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`start` acquired."""


class SerialExecutor(Executor):
    """Runs every task in this process, one after another."""

    name = "serial"

    def __init__(self, threads_per_task: int = 1) -> None:
        self.threads = threads_per_task

    def run(self, tasks, blobs):
        """Run each task in turn; cancelling (closing the generator) skips the rest."""
        for task in tasks:
            digests, roles, keys = _blobs_for(task)
            yield run_task(task.id, task.kind, task.params, digests, {r: blobs[k] for r, k in zip(roles, keys)},
                           self.threads)


def _ray_entry(task_id, kind, params, digests, roles, threads, *datas):
    """Remote entry point: Ray resolves the input references in ``datas`` to bytes."""
    return run_task(task_id, kind, params, digests, dict(zip(roles, datas)), threads)


class RayExecutor(Executor):
    """Runs tasks on Ray: a local instance (``address=None``) or an existing cluster.

    ``workers``: local -> CPUs given to the local Ray (default: one per core); cluster -> at most
    this many tasks at once (default: as many as the cluster has CPUs). ``threads_per_task``: torch
    threads and Ray CPUs per task. ``temp_dir``: Ray's session folder for a local instance.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, threads_per_task: int = 1,
                 temp_dir: str | None = None, max_retries: int = 2) -> None:
        if workers is not None and workers < 1:
            raise ValueError("workers must be at least 1")
        self.address = address
        self.workers = workers
        self.threads = max(1, int(threads_per_task))
        self.temp_dir = temp_dir
        self.max_retries = max_retries
        self.name = "local" if address is None else address
        self._owned = False
        self._slots = 1
        self._nodes: list[str] = []

    def describe(self) -> dict:
        """Executor, address, slots, node hosts and start-up time."""
        info = super().describe()
        info.update(address=self.address, workers=self._slots, threads_per_task=self.threads, nodes=self._nodes)
        return info

    def start(self) -> None:
        """Start a local Ray instance or connect to the cluster (reuses an existing connection)."""
        if not ray_available():
            raise ValueError('Ray is not installed: pip install -e ".[cluster]" (or use --executor serial)')
        import ray

        clock = time.monotonic()
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, "runtime_env": code_runtime_env(),
                      "logging_level": logging.WARNING}
            if self.address is None:
                kwargs.update(num_cpus=self.workers or os.cpu_count() or 1)
                if self.temp_dir:
                    kwargs["_temp_dir"] = self.temp_dir
                ray.init(**kwargs)
            else:
                kwargs.pop("include_dashboard")
                _check_reachable(self.address)
                try:
                    ray.init(address=self.address, **kwargs)
                except Exception as exc:
                    raise ValueError(_connect_error(self.address, exc)) from exc
            self._owned = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._slots = max(1, min(self.workers or cpus, cpus) // self.threads)
        self._nodes = sorted({n.get("NodeManagerHostname", "?") for n in ray.nodes() if n.get("Alive")})
        self._remote = ray.remote(_ray_entry).options(num_cpus=self.threads, max_retries=self.max_retries)
        self.startup_seconds = time.monotonic() - clock

    def run(self, tasks, blobs):
        """Submit with a window of ``2 x slots`` tasks in flight; yield outcomes as they finish.
        Closing the generator cancels every submitted task that has not finished."""
        import ray
        from ray.exceptions import RayError, TaskCancelledError

        refs = {key: ray.put(data) for key, data in blobs.items()}  # each input once in the object store
        queue, pending = list(tasks), {}
        window = 2 * self._slots
        try:
            while queue or pending:
                while queue and len(pending) < window:
                    task = queue.pop(0)
                    digests, roles, keys = _blobs_for(task)
                    ref = self._remote.remote(task.id, task.kind, task.params, digests, roles, self.threads,
                                              *[refs[k] for k in keys])
                    pending[ref] = task
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
                if not ready:
                    yield None
                    continue
                for ref in ready:
                    task = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except TaskCancelledError:
                        continue
                    except RayError as exc:  # worker crash after retries, lost node ...
                        text = str(exc).strip().splitlines()
                        yield {"id": task.id, "status": "failed", "files": {}, "record": {}, "host": "",
                               "error": f"the Ray worker failed: {text[-1] if text else 'no details'}"}
        finally:
            for ref in pending:
                ray.cancel(ref)
            refs.clear()

    def close(self) -> None:
        """Shut Ray down if this executor started or connected it."""
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (ValueError) when a ``HOST:PORT`` / ``ray://HOST:PORT`` address refuses TCP
    connections, instead of Ray's minute of retries."""
    import socket

    text = address.removeprefix("ray://")
    if not _looks_like_host_port(text):
        return
    host, _, port = text.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ValueError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}") from None


def _connect_error(address: str, exc: Exception) -> str:
    """One line saying why connecting to ``address`` failed and what to do."""
    text = f"{exc} {exc.__cause__ or ''}"
    if "AuthToken" in text or "Authentication" in text or "Unauthenticated" in text:
        return (f"the Ray cluster at {address} uses token authentication: set RAY_AUTH_MODE=token and "
                "RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token")
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"cannot connect to the Ray cluster at {address}: {lines[-1] if lines else type(exc).__name__}"


def make_executor(spec: str | None, workers: int | None = None, threads_per_task: int = 1,
                  temp_dir: str | None = None) -> Executor:
    """The executor for ``spec``: ``serial`` (or empty), ``local``, ``auto``, ``ray://HOST:PORT``
    or ``HOST:PORT``. Raises ValueError for anything else."""
    text = (spec or "serial").strip()
    if workers is not None and workers < 1:
        raise ValueError("--workers must be at least 1")
    if text == "serial":
        return SerialExecutor(threads_per_task)
    if text == "local":
        return RayExecutor(None, workers, threads_per_task, temp_dir)
    if text == "auto" or text.startswith("ray://") or _looks_like_host_port(text):
        return RayExecutor(text, workers, threads_per_task)
    raise ValueError(f"unknown executor {text!r}; use serial, local, auto, ray://HOST:PORT or HOST:PORT")


def _looks_like_host_port(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)
