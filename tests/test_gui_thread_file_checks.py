"""Files are checked and read on workers, not on the GUI thread: with the read made half a second
slow (a cold network share), a 5 ms timer on the GUI thread never waits half that long (a read on the
GUI thread would hold it the whole half second; half leaves room for a loaded machine's scheduling and a
garbage collection), and the result is what the read gives."""

import contextlib
import json
import time

import numpy as np
import pytest
from PIL import Image
from qtpy.QtCore import QElapsedTimer, QTimer

import engines.filekinds
import studio.routing
from tests.test_shell_drop_examine import slow_sniff  # noqa: F401 - the fixture: sniffing "slow…" takes 0.5 s

SLOW_S = 0.5
MAX_GAP_MS = SLOW_S * 1000 / 2


class GapProbe:
    """Ticks of a 5 ms timer on the GUI thread, and the intervals during which a read made slow by
    :meth:`slowed` was sleeping: while one sleeps, the GUI thread must go on ticking. Garbage
    collection (on the GUI thread's timer, 0.1-0.3 s in a test process) waits meanwhile."""

    def __init__(self) -> None:
        self.clock, self.ticks, self.slow = QElapsedTimer(), [], []
        self.clock.start()
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.ticks.append(self.clock.elapsed()))
        self.no_collection = contextlib.ExitStack()

    def start(self, qtbot) -> None:
        from studio.gc_guard import collections_paused

        self.no_collection.enter_context(collections_paused())
        self.timer.start(5)
        qtbot.wait(30)

    def slowed(self, function, when=lambda *args, **kwargs: True):
        """``function`` taking SLOW_S longer when ``when(*args)`` (a cold network share, a big file)."""

        def slow(*args, **kwargs):
            if when(*args, **kwargs):
                started = self.clock.elapsed()
                time.sleep(SLOW_S)
                self.slow.append((started, self.clock.elapsed()))
            return function(*args, **kwargs)

        return slow

    def longest_while_slow(self) -> float:
        """The longest the GUI thread went without a tick while a slowed read ran (ms)."""
        self.timer.stop()
        self.no_collection.close()
        assert self.slow, "the slowed read never ran"
        return max(float(np.diff([a, *[t for t in self.ticks if a < t < b], b]).max()) for a, b in self.slow)


@pytest.fixture
def probe():
    """A :class:`GapProbe`; collection resumes at the end even if the test failed before measuring."""
    made = GapProbe()
    yield made
    made.timer.stop()
    made.no_collection.close()


def _named_slow(*args, **kwargs) -> bool:
    return str(args[0]).rsplit("/", 1)[-1].startswith("slow")


def test_codec_compare_list_checks_recent_files_on_a_worker(qtbot, tmp_path, monkeypatch, probe):
    from panels.codec import CodecPanel
    from studio.services import StudioServices
    from studio.settings import StudioSettings

    image = np.zeros((8, 8, 3), np.uint8)
    paths = {name: tmp_path / name for name in ("a.png", "gone.png", "notes.txt", "slow.png", "x.ssbc")}
    for name in ("a.png", "gone.png", "slow.png"):
        Image.fromarray(image).save(paths[name])
    paths["notes.txt"].write_text("not an image")
    paths["x.ssbc"].write_bytes(b"SSBC broken")  # listed by its suffix (decoding it says what is wrong)
    settings = StudioSettings(str(tmp_path / "settings.ini"))
    for name in reversed(list(paths)):
        settings.add_recent_file(str(paths[name]))
    paths["gone.png"].unlink()
    services = StudioServices(settings=settings)
    panel = CodecPanel(services)
    qtbot.addWidget(panel)
    sniff = probe.slowed(engines.filekinds.sniff, when=_named_slow)  # "slow.png" is on a cold share
    monkeypatch.setattr(engines.filekinds, "sniff", sniff)
    monkeypatch.setattr(studio.routing, "sniff", sniff)
    probe.start(qtbot)
    panel.tabs.setCurrentIndex(3)  # the Compare tab lists the files to compare
    listed = lambda: [panel.cmp_history.itemData(i) for i in range(panel.cmp_history.count())]
    want = [str(paths[name]) for name in ("a.png", "slow.png", "x.ssbc")]
    qtbot.waitUntil(lambda: listed() == want, timeout=5000)
    assert probe.longest_while_slow() < MAX_GAP_MS  # the slow check ran, not on the GUI thread
    assert [panel.cmp_history.itemText(i) for i in range(3)] == ["a.png", "slow.png", "x.ssbc"]
    assert [r.name for r in services.jobs.records()] == ["list files to compare"]
    panel.tabs.setCurrentIndex(0)
    panel.tabs.setCurrentIndex(3)  # nothing new to list: no second job
    assert len(services.jobs.records()) == 1
    services.jobs.cancel_all()
    services.jobs.wait_all(10)


def test_codec_compare_file_missing_is_reported_by_its_job(make_panel, qtbot, tmp_path):
    from panels.codec import CodecPanel

    panel = make_panel(CodecPanel)
    messages = []
    panel.services.notify = lambda text, level="info": messages.append((level, text))
    handle = panel.load_compare_file("B", str(tmp_path / "gone.png"))
    assert panel.services.jobs.wait_all(10)
    assert handle.state == "failed" and panel.cmp_files["B"] is None
    assert messages == [("error", f"Compare B: gone.png failed: file not found: {tmp_path / 'gone.png'}")]


def test_volume_reads_a_transfer_function_file_on_a_worker(make_panel, qtbot, tmp_path, monkeypatch, probe):
    import engines.volume.tf as tf_module
    from engines.volume.tf import preset
    from engines.volume.tf_exchange import read_tf_file
    from panels.volume import VolumePanel

    path = tmp_path / "mine.json"
    path.write_text(json.dumps(preset("CT-Lung").copy(name="my map").to_dict()))
    panel = make_panel(VolumePanel)
    monkeypatch.setattr(tf_module, "load_tf", probe.slowed(tf_module.load_tf))
    probe.start(qtbot)
    with qtbot.waitSignal(panel.file_opened, timeout=5000):
        assert panel.open_file(str(path)) is not None  # a job handle: the file is read by a worker
    assert probe.longest_while_slow() < MAX_GAP_MS
    assert panel.tf.to_dict() == read_tf_file(path).to_dict() and panel.tf.name == "my map"
    assert [r.name for r in panel.services.jobs.records()] == ["read mine.json"]


def test_recent_files_menu_stats_nothing_on_the_gui_thread(qtbot, tmp_path, monkeypatch):
    import os

    from studio.main_window import MainWindow
    from studio.settings import StudioSettings
    from tests.fake_panels import FAKE_REGISTRY

    here, gone = tmp_path / "here.other", tmp_path / "slow-gone.other"
    for path in (gone, here):
        path.write_text("good")
    settings = StudioSettings(str(tmp_path / "settings.ini"))
    for path in (gone, here):
        settings.add_recent_file(str(path))
    gone.unlink()
    window = MainWindow(settings, registry=FAKE_REGISTRY, warm_up=False)
    qtbot.addWidget(window)
    real_exists = os.path.exists

    def slow_exists(path):  # a path on a share that does not answer
        if "slow" in os.fspath(path):
            time.sleep(SLOW_S)
        return real_exists(path)

    monkeypatch.setattr(os.path, "exists", slow_exists)
    clock = QElapsedTimer()
    clock.start()
    window.recent_menu.aboutToShow.emit()  # File > Recent opened
    settings.add_recent_file(str(here))  # as after each open
    assert clock.elapsed() < MAX_GAP_MS
    monkeypatch.undo()
    actions = window.recent_menu.actions()
    assert [a.text() for a in actions] == [str(here), str(gone)]
    actions[1].trigger()  # the examination finds it gone: a message, and it leaves the list
    qtbot.waitUntil(lambda: settings.recent_files(existing=False) == [str(here)], timeout=5000)
    assert window.statusBar().currentMessage() == "Cannot open slow-gone.other: no such file or folder"
    window.jobs.cancel_all()
    window.jobs.wait_all(10)


def test_codec_reads_an_opened_files_size_in_its_job(make_panel, qtbot, tmp_path, monkeypatch, probe):
    import os

    from panels.codec import CodecPanel

    first, path = tmp_path / "first.png", tmp_path / "slow.png"
    for name in (first, path):
        Image.fromarray(np.arange(48 * 32 * 3, dtype=np.uint8).reshape(32, 48, 3)).save(name)
    real_getsize = os.path.getsize
    monkeypatch.setattr(os.path, "getsize", probe.slowed(real_getsize, when=lambda name: "slow" in os.fspath(name)))
    panel = make_panel(CodecPanel)
    panel.tabs.setCurrentIndex(3)  # the Compare tab shows the original's size
    with qtbot.waitSignal(panel.file_opened, timeout=20000):  # the first open imports the codec's modules
        panel.open_file(str(first))
    assert panel.services.jobs.wait_all(30)
    probe.start(qtbot)
    with qtbot.waitSignal(panel.file_opened, timeout=10000):
        panel.open_file(str(path))
    qtbot.waitUntil(lambda: panel.services.jobs.running_count() == 0, timeout=10000)
    assert probe.longest_while_slow() < MAX_GAP_MS
    size = real_getsize(path)
    assert panel._original_bytes() == size
    assert f"slow.png</b>: {size:,} bytes, {8 * size / (48 * 32):.3f} bpp" in panel.file_info.text()


def test_generate_reads_an_exported_png_and_its_inputs_on_a_worker(make_panel, qtbot, tmp_path, monkeypatch, probe):
    import studio.export
    from engines.generation.input_images import INPUTS_PNG_CHUNK, encode_inputs
    from panels.generate import GeneratePanel
    from studio.export import make_provenance, read_provenance, save_png

    rng = np.random.default_rng(5)
    image = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    init = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    path = save_png(tmp_path / "result.png", image, make_provenance("generate", "generation", {"seed": 77, "steps": 3}),
                    attachments={INPUTS_PNG_CHUNK: encode_inputs({"init": init})})
    record = read_provenance(path)
    # the PNG is on a share that answers slowly
    monkeypatch.setattr(studio.export, "read_png_chunk", probe.slowed(studio.export.read_png_chunk))
    panel = make_panel(GeneratePanel)
    probe.start(qtbot)
    with qtbot.waitSignal(panel.file_opened, timeout=10000):
        assert panel.open_exported(str(path), record) is not None  # a job reads the pixels and the inputs
    assert probe.longest_while_slow() < MAX_GAP_MS
    params = panel.current_parameters()
    assert params["seed"] == 77 and params["steps"] == 3 and params["seed_locked"]
    assert np.array_equal(panel.init_slot.image(), init)
    assert np.array_equal(panel.view.image(), image)


def test_render_decodes_a_chosen_target_photo_on_a_worker(make_panel, qtbot, tmp_path, monkeypatch, probe):
    import engines.imagefile
    import panels.render.panel as render_module
    from panels.render import RenderPanel

    path = tmp_path / "target.png"
    photo = (np.random.default_rng(2).random((40, 60, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(path)
    # a large photo takes a while to decode
    monkeypatch.setattr(engines.imagefile, "open_image", probe.slowed(engines.imagefile.open_image))
    monkeypatch.setattr(render_module.QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(path), ""))
    panel = make_panel(RenderPanel)
    probe.start(qtbot)
    panel.load_target_button.click()  # "Load target photo…", the file chosen in the dialog
    qtbot.waitUntil(lambda: panel.fit_source == [str(path)], timeout=10000)
    assert probe.longest_while_slow() < MAX_GAP_MS
    assert len(panel.fit_target) == 1 and np.array_equal(panel.fit_target[0], photo)
    assert panel.fit_source == [str(path)]


def test_generate_clears_its_stored_history_in_a_job_keeping_later_results(qtbot, tmp_path, monkeypatch, probe):
    from panels.generate import GeneratePanel
    from studio.export import make_provenance
    from studio.services import StudioServices
    from studio.settings import StudioSettings

    services = StudioServices(settings=StudioSettings(str(tmp_path / "studio.ini")))
    panel = GeneratePanel(services)
    qtbot.addWidget(panel)
    assert services.jobs.wait_all(60)  # the history load job
    store = panel.history_store

    def entry(seed):
        image = np.full((8, 8, 3), seed, np.uint8)
        return {"image": image, "provenance": make_provenance("generate", "generation", {"seed": seed})}

    store.add(entry(1))
    store.flush()
    # a pending write of a large result, or a slow disk
    monkeypatch.setattr(store, "flush", probe.slowed(store.flush))
    probe.start(qtbot)
    panel.clear_history()
    store.add(entry(2))  # a result that arrives after the click is kept
    assert services.jobs.wait_all(10)
    assert probe.longest_while_slow() < MAX_GAP_MS
    kept = sorted(store.folder.glob("*.png"))
    assert len(kept) == 1 and np.asarray(Image.open(kept[0]))[0, 0, 0] == 2
    assert [r.name for r in services.jobs.records()][-1] == "clear Generate history"


def test_codec_compare_list_cancelled_in_the_queue_is_listed_again(qtbot, tmp_path, slow_sniff):  # noqa: F811
    """A listing job cancelled from the job table does not leave the list empty for good: the next
    time the Compare tab is shown, the files are checked again."""
    from panels.codec import CodecPanel
    from studio.services import StudioServices
    from studio.settings import StudioSettings

    slow = tmp_path / "slow.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(slow)
    settings = StudioSettings(str(tmp_path / "settings.ini"))
    settings.add_recent_file(str(slow))
    services = StudioServices(settings=settings)
    panel = CodecPanel(services)
    qtbot.addWidget(panel)
    panel.tabs.setCurrentIndex(3)
    records = lambda: [r for r in services.jobs.records() if r.name == "list files to compare"]
    qtbot.waitUntil(lambda: len(records()) == 1 and records()[0].state == "running", timeout=5000)
    panel._handles["compare-history"].cancel()  # what the job table's Cancel does
    qtbot.waitUntil(lambda: records()[0].state == "cancelled", timeout=5000)
    panel.tabs.setCurrentIndex(0)
    panel.tabs.setCurrentIndex(3)
    qtbot.waitUntil(lambda: panel.cmp_history.itemData(0) == str(slow), timeout=5000)
    assert len(records()) == 2
    services.jobs.cancel_all()
    services.jobs.wait_all(10)
