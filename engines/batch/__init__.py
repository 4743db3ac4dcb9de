"""Batches of independent tasks run serially, on a local Ray instance or on a Ray cluster (no Qt).

Build a :class:`Batch` of :class:`TaskSpec` (kinds in :mod:`engines.batch.tasks`), choose an
executor with :func:`make_executor` and drive :func:`batch_job` like any engine job.
"""

from engines.batch.executors import (
    EXECUTOR_CHOICES,
    RayExecutor,
    SerialExecutor,
    make_executor,
    ray_available,
)
from engines.batch.runner import MANIFEST, BatchReport, batch_job, prepare_folder
from engines.batch.spec import Batch, InputRef, TaskOutput, TaskSpec, safe_name

__all__ = [
    "EXECUTOR_CHOICES",
    "MANIFEST",
    "Batch",
    "BatchReport",
    "InputRef",
    "RayExecutor",
    "SerialExecutor",
    "TaskOutput",
    "TaskSpec",
    "batch_job",
    "make_executor",
    "prepare_folder",
    "ray_available",
    "safe_name",
]
