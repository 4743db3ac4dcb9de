"""The Generate history on disk: each result is a PNG (our provenance JSON, A1111 text and the
input images inside) in a folder next to the studio's settings, pruned oldest-first to a size
limit, read back at start-up by a job (never on the GUI thread)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_MAX_BYTES", "HistoryStore"]

DEFAULT_MAX_BYTES = 256 << 20
MAX_ENTRIES_LOADED = 500
#: side of the thumbnails the load job makes (the history strip's 72 px icons at pixel ratio 2)
THUMBNAIL_SIDE = 144


def fit_thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """``image`` (H, W, 3) uint8 shrunk to fit ``side`` × ``side`` (aspect kept; never enlarged), for a
    history icon: made by the load job, so the GUI thread scales a small picture, not every result."""
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    picture = Image.fromarray(np.ascontiguousarray(image))
    picture.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(picture)


class HistoryStore:
    """``folder`` holds one ``<time>-<n>.png`` per result; ``max_bytes`` bounds the folder."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._count = itertools.count()

    @classmethod
    def for_settings(cls, settings) -> HistoryStore | None:
        """The store beside the settings file (``generate-history/``), or None without settings."""
        qs = getattr(settings, "_qs", None)
        name = qs.fileName() if qs is not None else ""
        if not name:
            return None
        return cls(Path(name).parent / "generate-history")

    @staticmethod
    def stamp() -> str:
        """Now, as the start of a result's file name (``<date>-<time>-<ns>``): names sort by time."""
        now = time.time_ns()
        return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now // 10**9))}-{now % 10**9:09d}"

    def add(self, entry: dict) -> None:
        """Write ``entry`` (image, provenance, inputs) on a helper thread, then prune."""
        name = f"{self.stamp()}-{next(self._count):04d}.png"
        thread = threading.Thread(target=self._write, args=(self.folder / name, entry), daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every pending write has finished."""
        for thread in list(self._threads):
            thread.join(timeout)

    def _write(self, path: Path, entry: dict) -> None:
        from engines.thread_priority import lower_current_thread
        from studio.export import ExportError, save_png

        lower_current_thread()  # a background write gives way to the GUI thread

        attachments = None
        if entry.get("inputs"):
            from engines.generation.input_images import INPUTS_PNG_CHUNK, encode_inputs

            attachments = {INPUTS_PNG_CHUNK: encode_inputs(entry["inputs"])}
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                save_png(path, entry["image"], entry["provenance"], attachments=attachments)
            except (ExportError, OSError):
                return  # history is a convenience: a full disk must not break generation
            self._prune()

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.png") if p.is_file())

    def _prune(self) -> None:
        files = self._files()
        sizes = [p.stat().st_size for p in files]
        total = sum(sizes)
        for path, size in zip(files, sizes):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    def size_bytes(self) -> int:
        """Bytes the stored history takes."""
        return sum(p.stat().st_size for p in self._files())

    def clear(self, before: str | None = None) -> None:
        """Delete every stored result (only those stored before the :meth:`stamp` ``before``, if given)."""
        self.flush()
        with self._lock:
            for path in self._files():
                if before is None or path.name < before:
                    path.unlink(missing_ok=True)

    def clear_job(self, before: str | None = None):
        """Job: :meth:`clear` (it waits for pending writes and deletes up to hundreds of files)."""
        from engines.jobs import Progress

        yield Progress(0, 1, "deleting the stored results")
        self.clear(before)

    def load_job(self):
        """Job: read the stored results (oldest first); returns a list of history entries, each with a
        ``thumbnail`` for the strip (:func:`fit_thumbnail`)."""
        from engines.generation.input_images import INPUTS_PNG_CHUNK, decode_inputs
        from engines.jobs import Progress
        from studio.export import ExportError, read_png_chunk, read_provenance

        files = self._files()[-MAX_ENTRIES_LOADED:]
        entries = []
        for i, path in enumerate(files):
            yield Progress(i, len(files), f"history {i + 1}/{len(files)}")
            try:
                record = read_provenance(path)
                if not record or record.get("panel") != "generate":
                    continue
                from PIL import Image

                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
                data = read_png_chunk(path, INPUTS_PNG_CHUNK)
                inputs = decode_inputs(data) if data is not None else {}
            except (ExportError, ValueError, OSError):
                continue  # a damaged file is skipped, not fatal
            params = dict(record.get("parameters") or {})
            mode = (record.get("generation") or {}).get("mode", "txt2img")
            entries.append({"image": pixels, "params": params, "provenance": record, "mode": mode, "inputs": inputs,
                            "thumbnail": fit_thumbnail(pixels)})
        return entries
