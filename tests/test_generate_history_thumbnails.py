"""The Generate history loaded at start-up: the load job makes each icon's small picture, so the GUI
thread only scales ~144 px thumbnails; the thumbnails are the results shrunk (aspect kept)."""

import numpy as np

from engines.jobs import run_job
from engines.provenance import build_record
from panels.generate.history_store import THUMBNAIL_SIDE, HistoryStore, fit_thumbnail


def _entry(image, seed):
    params = {"prompt": "", "class_label": 1, "sampler": "euler", "steps": 2, "cfg": 3.0, "seed": seed}
    return {"image": image, "params": params, "mode": "txt2img", "inputs": {},
            "provenance": build_record("generate", "test", params, seed=seed, extra={"generation": {"mode": "txt2img"}})}


def test_fit_thumbnail_shrinks_to_the_side_keeping_the_aspect_and_the_picture():
    y, x = np.mgrid[0:600, 0:400]
    image = np.stack([x * 255 // 399, y * 255 // 599, (x + y) % 256], -1).astype(np.uint8)
    thumb = fit_thumbnail(image)
    assert thumb.dtype == np.uint8 and thumb.shape == (THUMBNAIL_SIDE, 96, 3)
    rows = np.linspace(0, 599, THUMBNAIL_SIDE).round().astype(int)
    cols = np.linspace(0, 399, 96).round().astype(int)
    reference = image[rows][:, cols, :2].astype(int)  # the smooth channels at the same places
    assert np.abs(thumb[..., :2].astype(int) - reference).max() <= 4  # the ramps, shrunk
    small = image[:50, :100]
    assert fit_thumbnail(small) is small  # never enlarged


def test_loaded_history_entries_carry_thumbnails_that_the_strip_shows(tmp_path, make_panel, qtbot, monkeypatch):
    store = HistoryStore(tmp_path / "generate-history")
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 255, (300, 500, 3), dtype=np.uint8), rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)]
    for seed, image in enumerate(images):
        store.add(_entry(image, seed))
        store.flush()
    entries = run_job(store.load_job())
    assert [e["thumbnail"].shape for e in entries] == [(86, THUMBNAIL_SIDE, 3), (40, 30, 3)]
    assert all(np.array_equal(e["image"], image) for e, image in zip(entries, images))

    from panels.generate import GeneratePanel, widgets

    shown = []
    original = widgets.device_pixmap
    monkeypatch.setattr(widgets, "device_pixmap", lambda image, *a: (shown.append(image.shape), original(image, *a))[1])
    panel = make_panel(GeneratePanel)
    assert panel.services.jobs.wait_all(60)
    shown.clear()
    panel._add_loaded_history(entries)
    assert panel.strip.count() == 2 and len(panel.history) == 2
    assert shown[:2] == [(86, THUMBNAIL_SIDE, 3), (40, 30, 3)]  # the thumbnails, not the 500 px results
    assert all("thumbnail" not in e for e in panel.history)  # entries as a new result's
    assert np.array_equal(panel.history[0]["image"], images[0])


def test_a_clear_while_the_stored_history_loads_is_not_undone_by_the_load(tmp_path, qtbot, monkeypatch):
    import threading

    from panels.generate import GeneratePanel
    from studio.services import StudioServices
    from studio.settings import StudioSettings

    store = HistoryStore(tmp_path / "generate-history")  # where the panel's settings file puts it
    store.add(_entry(np.full((16, 16, 3), 7, np.uint8), 7))
    store.flush()
    read, release = threading.Event(), threading.Event()
    real_load = HistoryStore.load_job

    def slow_load(self):  # the stored results are read, then the job is slow to end (a large history)
        entries = yield from real_load(self)
        read.set()
        release.wait(10)
        return entries

    monkeypatch.setattr(HistoryStore, "load_job", slow_load)
    services = StudioServices(settings=StudioSettings(str(tmp_path / "studio.ini")))
    panel = GeneratePanel(services)
    qtbot.addWidget(panel)
    assert read.wait(30)
    panel.clear_history()
    release.set()
    assert services.jobs.wait_all(30)
    assert panel.history == [] and panel.strip.count() == 0 and not panel.clear_history_button.isEnabled()
    assert list(store.folder.glob("*.png")) == []
