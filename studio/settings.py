"""Persisted settings (QSettings): device, threads, theme, recent files, layout, panel parameters."""

from __future__ import annotations

import json
import os
from typing import Any

from qtpy.QtCore import QByteArray, QSettings

from studio import APP_NAME, ORG_NAME

MAX_RECENT = 10


class StudioSettings:
    """Typed access to the studio's QSettings.

    ``path`` = an INI file (tests use a temporary one); default = the platform's native store.
    """

    def __init__(self, path: str | None = None) -> None:
        if path:
            self._qs = QSettings(path, QSettings.Format.IniFormat)
        else:
            self._qs = QSettings(ORG_NAME, APP_NAME)

    def sync(self) -> None:
        """Write pending changes to storage."""
        self._qs.sync()

    def _get(self, key: str, default: Any) -> Any:
        value = self._qs.value(key, default)
        return default if value is None else value

    # -- compute ---------------------------------------------------------------------
    @property
    def device(self) -> str:
        """Device override: ``auto``, ``cpu``, ``cuda`` or ``mps``."""
        return str(self._get("compute/device", "auto"))

    @device.setter
    def device(self, value: str) -> None:
        self._qs.setValue("compute/device", value)

    @property
    def threads(self) -> int:
        """torch CPU threads (0 = one per core)."""
        return int(self._get("compute/threads", 0))

    @threads.setter
    def threads(self, value: int) -> None:
        self._qs.setValue("compute/threads", int(value))

    @property
    def max_running_jobs(self) -> int:
        """Jobs that may run at once per device."""
        return max(1, int(self._get("compute/max_running_jobs", 1)))

    @max_running_jobs.setter
    def max_running_jobs(self, value: int) -> None:
        self._qs.setValue("compute/max_running_jobs", int(value))

    # -- batches ---------------------------------------------------------------------
    @property
    def executor(self) -> str:
        """Where batch actions run: ``serial``, ``local`` (Ray on this machine) or ``cluster``."""
        value = str(self._get("batch/executor", "serial"))
        return value if value in ("serial", "local", "cluster") else "serial"

    @executor.setter
    def executor(self, value: str) -> None:
        self._qs.setValue("batch/executor", value)

    @property
    def cluster_address(self) -> str:
        """The Ray cluster for ``cluster``: ``auto``, ``ray://HOST:10001`` or ``HOST:6379``."""
        return str(self._get("batch/cluster_address", "auto"))

    @cluster_address.setter
    def cluster_address(self, value: str) -> None:
        self._qs.setValue("batch/cluster_address", value.strip())

    @property
    def batch_workers(self) -> int:
        """Tasks at once (0 = one per core locally, every CPU of a cluster)."""
        return max(0, int(self._get("batch/workers", 0)))

    @batch_workers.setter
    def batch_workers(self, value: int) -> None:
        self._qs.setValue("batch/workers", int(value))

    def executor_spec(self) -> tuple[str, int | None]:
        """``(executor, workers)`` as :func:`engines.batch.make_executor` takes them."""
        spec = {"serial": "serial", "local": "local"}.get(self.executor, self.cluster_address or "auto")
        return spec, self.batch_workers or None

    # -- appearance ------------------------------------------------------------------
    @property
    def theme(self) -> str:
        """``light`` or ``dark``."""
        value = str(self._get("view/theme", "dark"))
        return value if value in ("light", "dark") else "dark"

    @theme.setter
    def theme(self, value: str) -> None:
        self._qs.setValue("view/theme", value)

    @property
    def active_panel(self) -> str:
        """The panel shown last."""
        return str(self._get("view/active_panel", ""))

    @active_panel.setter
    def active_panel(self, value: str) -> None:
        self._qs.setValue("view/active_panel", value)

    def window_layout(self) -> tuple[QByteArray | None, QByteArray | None]:
        """Saved (geometry, dock state) of the main window, or Nones."""
        return self._qs.value("view/geometry"), self._qs.value("view/state")

    def set_window_layout(self, geometry: QByteArray, state: QByteArray) -> None:
        """Remember the main window's geometry and dock state."""
        self._qs.setValue("view/geometry", geometry)
        self._qs.setValue("view/state", state)

    # -- files -----------------------------------------------------------------------
    def recent_files(self, existing: bool = True) -> list[str]:
        """Recently opened paths, newest first (missing ones dropped unless ``existing`` is False:
        checking stats every path, slow on a network share, so the GUI thread passes False)."""
        raw = self._get("files/recent", "[]")
        try:
            paths = json.loads(raw) if isinstance(raw, str) else list(raw)
        except (TypeError, json.JSONDecodeError):
            paths = []
        return [p for p in paths if isinstance(p, str) and (not existing or os.path.exists(p))]

    def add_recent_file(self, path: str) -> None:
        """Put ``path`` first in the recent-files list (the others are not checked: no stat on the GUI thread)."""
        path = os.path.abspath(path)
        paths = [p for p in self.recent_files(existing=False) if p != path]
        self._qs.setValue("files/recent", json.dumps([path, *paths][:MAX_RECENT]))

    def forget_recent_file(self, path: str) -> None:
        """Take ``path`` off the recent-files list (it is gone)."""
        paths = self.recent_files(existing=False)
        if path in paths:
            self._qs.setValue("files/recent", json.dumps([p for p in paths if p != path]))

    # -- panels ----------------------------------------------------------------------
    def panel_parameters(self, panel: str) -> dict:
        """The parameters a panel had when the studio last closed."""
        raw = self._get(f"panels/{panel}", "")
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except (TypeError, json.JSONDecodeError):
            return {}
        return value if isinstance(value, dict) else {}

    def set_panel_parameters(self, panel: str, parameters: dict) -> None:
        """Remember a panel's parameters (must be JSON-able)."""
        self._qs.setValue(f"panels/{panel}", json.dumps(parameters, default=str))
