"""GUI tests of the Generate panel (pytest-qt, offscreen): generate, previews, cancel, history,
reuse / input / export / send, drop-to-restore, parameter round trip."""

import numpy as np
import pytest

from engines.jobs import Preview
from panels.base import OpenError
from panels.generate import GeneratePanel
from studio.export import read_provenance
from tests.gui_helpers import models_listed, open_and_wait


@pytest.fixture
def panel(make_panel):
    return models_listed(make_panel(GeneratePanel))


def run_generation(panel, steps=3, batch=1, cls=4):
    panel.class_combo.setCurrentIndex(panel.class_combo.findData(cls))
    panel.steps_spin.setValue(steps)
    panel.batch_spin.setValue(batch)
    panel.generate()
    assert panel.services.jobs.wait_all(120)


def test_simple_view_defaults(panel):
    assert panel.name == "generate" and panel.title == "Generate" and panel.icon == "generate.svg"
    for suffix in (".png", ".jpg", ".jpeg", ".webp", ".safetensors", "/"):
        assert suffix in panel.file_types
    info = panel.model_info()
    assert info is not None and info.name == "digits-flow"
    assert not panel.class_combo.isHidden() and panel.prompt.isHidden()
    assert panel.sampler_combo.count() == len(info.samplers)
    assert not panel.advanced.isExpanded()
    assert not panel.can_export()


def test_generate_shows_previews_and_fills_history(panel):
    run_generation(panel, steps=3, batch=2)
    assert len(panel.history) == 2 and panel.strip.count() == 2
    assert panel.preview_count >= 1
    assert panel.view.image() is not None and panel.view.image().shape == (32, 32, 3)
    assert "Done" in panel.status.text()
    seeds = [e["params"]["seed"] for e in panel.history]
    assert seeds[1] == seeds[0] + 1
    assert panel.can_export() and panel.cancel_button.isEnabled() is False


def test_ctrl_enter_generates(panel, qtbot):
    from qtpy.QtCore import Qt

    panel.steps_spin.setValue(2)
    panel.show()
    qtbot.waitExposed(panel)
    panel.activateWindow()
    panel.strip.setFocus()
    qtbot.waitUntil(lambda: panel.strip.hasFocus() or panel.isActiveWindow(), timeout=2000)
    qtbot.keyClick(panel.strip, Qt.Key_Return, Qt.ControlModifier)
    assert panel.services.jobs.wait_all(120)
    assert len(panel.history) == 1


def test_cancel_discards_result(panel, qtbot):
    seen = []
    original = panel._on_event

    def spy(event):
        original(event)
        if isinstance(event, Preview):
            seen.append(event)
            panel.cancel()

    panel._on_event = spy
    panel.steps_spin.setValue(200)
    panel.generate()
    assert panel.services.jobs.wait_all(120)
    assert seen and panel.history == []
    assert "Cancelled" in panel.status.text()
    assert panel.generate_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel.services.jobs.records()[-1].state == "cancelled"


def test_seed_lock_reproduces_image(panel):
    panel.seed_lock.setChecked(True)
    panel.seed_spin.setValue(1234)
    run_generation(panel, steps=3)
    run_generation(panel, steps=3)
    assert np.array_equal(panel.history[0]["image"], panel.history[1]["image"])
    panel.seed_lock.setChecked(False)
    run_generation(panel, steps=3)
    assert panel.history[2]["params"]["seed"] != 1234


def test_parameters_round_trip(panel, make_panel):
    panel.advanced.expand(animate=False)
    panel.sampler_combo.setCurrentIndex(panel.sampler_combo.findData("unipc"))
    panel.steps_spin.setValue(7)
    panel.cfg_spin.setValue(2.5)
    panel.seed_spin.setValue(99)
    panel.seed_lock.setChecked(True)
    panel.batch_spin.setValue(3)
    panel.class_combo.setCurrentIndex(panel.class_combo.findData(6))
    panel.strength_slider.setValue(40)
    panel.ilvr_slider.setValue(3)
    saved = panel.current_parameters()
    other = make_panel(GeneratePanel)
    other.restore_parameters(saved)  # while its first model scan runs: applied again once it lists the model
    assert models_listed(other).current_parameters() == saved
    assert saved["sampler"] == "unipc" and saved["class_label"] == 6 and saved["ilvr_factor"] == 8


def test_export_and_drop_to_restore(panel, make_panel, tmp_path):
    panel.seed_lock.setChecked(True)
    panel.seed_spin.setValue(77)
    panel.cfg_spin.setValue(2.0)
    panel.sampler_combo.setCurrentIndex(panel.sampler_combo.findData("ddim"))
    run_generation(panel, steps=3, cls=9)
    path = tmp_path / "result.png"
    panel.export(str(path))
    record = read_provenance(path)
    assert record["panel"] == "generate" and record["parameters"]["seed"] == 77
    assert record["parameters"]["sampler"] == "ddim" and record["parameters"]["class_label"] == 9
    with pytest.raises(OpenError):
        panel.export(str(path))  # exists, no force
    fresh = make_panel(GeneratePanel)
    open_and_wait(fresh, str(path))  # read by a job: nothing restored before it is
    params = fresh.current_parameters()
    assert params["seed"] == 77 and params["sampler"] == "ddim" and params["cfg"] == 2.0
    assert params["class_label"] == 9 and params["seed_locked"] and params["steps"] == 3
    # regenerating from the restored parameters gives the same pixels
    fresh.generate()
    assert fresh.services.jobs.wait_all(120)
    assert np.array_equal(fresh.history[0]["image"], panel.history[0]["image"])


def test_history_actions_input_mask_and_send(panel, tmp_path):
    run_generation(panel, steps=3)
    sent = []
    panel.services.send_requested.connect(lambda *args: sent.append(args))
    panel.send_selected("codec")
    panel.send_selected("render")
    assert [s[0] for s in sent] == ["codec", "render"] and sent[0][1] == "image"
    assert sent[0][2].shape == (32, 32, 3)
    panel.use_selected_as_input()
    assert np.array_equal(panel.init_slot.image(), panel.history[0]["image"])
    panel.init_slot.canvas.brush = 6
    panel.init_slot.canvas.paint_at(16, 16)
    mask = panel.init_slot.canvas.mask()
    assert mask is not None and mask[16, 16] == 1 and mask[0, 0] == 0
    panel.strength_slider.setValue(100)
    panel.seed_lock.setChecked(True)
    panel.generate()
    assert panel.services.jobs.wait_all(120)
    entry = panel.history[-1]
    assert entry["mode"] == "inpaint"
    keep = mask < 0.5
    assert np.abs(entry["image"][keep].astype(int) - panel.history[0]["image"][keep]).max() <= 1
    panel.reuse_selected()
    assert panel.seed_lock.isChecked()


def test_open_files_and_receive(panel, tmp_path):
    from PIL import Image

    img = tmp_path / "photo.jpg"
    Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)).save(img)
    open_and_wait(panel, img)
    assert panel.init_slot.image().shape == (40, 50, 3) and panel.init_slot.path == str(img)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(OpenError):
        open_and_wait(panel, bad)
    with pytest.raises(OpenError):
        open_and_wait(panel, tmp_path)  # a folder that is no model
    with pytest.raises(OpenError):
        panel.receive("volume", np.zeros((4, 4, 4, 4)))
    panel.receive("image", np.zeros((16, 16, 3), np.uint8))
    assert panel.init_slot.image().shape == (16, 16, 3)


def test_queue_two_jobs_and_sketch_input(panel):
    panel.steps_spin.setValue(2)
    panel.generate()
    panel.generate()  # queued behind the first one
    assert panel.cancel_button.isEnabled()
    assert panel.services.jobs.wait_all(120)
    assert len(panel.history) == 2 and not panel.cancel_button.isEnabled()
    runs = [r for r in panel.services.jobs.records() if r.name != "scan model folders"]
    assert [r.state for r in runs] == ["done", "done"]
    panel.new_blank_canvas()
    canvas = panel.init_slot.canvas
    assert canvas.mode == "sketch" and panel.init_slot.image().max() == 0
    canvas.paint_at(10, 12, 1.0, "sketch")
    image = panel.init_slot.image()
    assert image[12, 10].tolist() == [255, 255, 255] and image[0, 0].tolist() == [0, 0, 0]
    panel.mask_toggle.setChecked(True)
    assert canvas.mode == "mask" and not panel.sketch_toggle.isChecked()


def test_exported_inpaint_png_restores_its_input_and_mask(panel, make_panel, tmp_path):
    rng = np.random.default_rng(3)
    init = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    panel.init_slot.set_image(init)
    panel.init_slot.canvas.brush = 5
    panel.init_slot.canvas.paint_at(10, 20)
    mask = panel.init_slot.canvas.mask().copy()
    panel.strength_slider.setValue(80)
    panel.seed_lock.setChecked(True)
    run_generation(panel, steps=3, cls=2)
    assert panel.history[-1]["mode"] == "inpaint"
    panel.init_slot.canvas.paint_at(25, 5)  # painting on afterwards does not change what was recorded
    path = tmp_path / "inpaint.png"
    panel.export(str(path))
    fresh = make_panel(GeneratePanel)
    open_and_wait(fresh, str(path))
    assert np.array_equal(fresh.init_slot.image(), init)
    assert np.array_equal(fresh.init_slot.canvas.mask(), mask)
    assert fresh.current_parameters()["strength"] == 0.8
    fresh.generate()
    assert fresh.services.jobs.wait_all(120)
    assert np.array_equal(fresh.history[-1]["image"], panel.history[-1]["image"])
    # a damaged chunk is reported, not fatal
    data = bytearray(path.read_bytes())
    at = data.index(b"spIn") + 10
    data[at] ^= 0xFF
    broken = tmp_path / "broken.png"
    broken.write_bytes(bytes(data))
    notes = []
    other = make_panel(GeneratePanel)
    other.services.notify = lambda text, level="info": notes.append(text)
    other.restore_inputs(str(broken))
    assert other.init_slot.image() is None and any("damaged" in n for n in notes)


def test_history_survives_a_restart_with_size_limit_and_clear(qtbot, tmp_path):
    from studio.services import StudioServices
    from studio.settings import StudioSettings

    def build():
        services = StudioServices(settings=StudioSettings(str(tmp_path / "studio.ini")))
        made = GeneratePanel(services)
        qtbot.addWidget(made)
        assert services.jobs.wait_all(60)  # the history load job
        return made

    first = build()
    assert first.history == [] and first.history_store.folder == tmp_path / "generate-history"
    assert not first.clear_history_button.isEnabled()
    rng = np.random.default_rng(5)
    init = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    first.init_slot.set_image(init)
    first.strength_slider.setValue(60)
    run_generation(first, steps=2, batch=2, cls=1)
    first.history_store.flush()
    assert len(list(first.history_store.folder.glob("*.png"))) == 2

    second = build()  # a new session
    assert len(second.history) == 2 and second.clear_history_button.isEnabled()
    for old, new in zip(first.history, second.history):
        assert np.array_equal(old["image"], new["image"]) and old["params"]["seed"] == new["params"]["seed"]
        assert new["mode"] == "img2img" and np.array_equal(new["inputs"]["init"], init)
    second.strip.setCurrentRow(1)
    second.reuse_selected()
    assert second.current_parameters()["seed"] == first.history[1]["params"]["seed"]

    # the size limit drops the oldest results
    one = second.history_store.size_bytes() // 2
    second.history_store.max_bytes = 2 * one + one // 2  # room for two of the three files
    second.history_store.add(second.history[0])
    second.history_store.flush()
    assert len(list(second.history_store.folder.glob("*.png"))) == 2
    assert second.history_store.size_bytes() <= second.history_store.max_bytes

    second.clear_history()
    assert second.history == [] and second.strip.count() == 0 and not second.can_export()
    assert not second.clear_history_button.isEnabled()
    assert second.services.jobs.wait_all(30)  # the files are deleted by a job
    assert list(second.history_store.folder.glob("*.png")) == []
    assert build().history == []


def test_settings_without_controls_are_carried_over_from_restored_parameters(panel):
    params = panel.current_parameters()
    params.update(loras="/x/a.safetensors=0.5", vae="/x/vae", precision="int8", hires_scale=2.0, mask_blur=0.0)
    panel.restore_parameters(params)
    got = panel.generation_params()
    assert (got.loras, got.vae, got.precision, got.hires_scale, got.mask_blur) == (
        "/x/a.safetensors=0.5", "/x/vae", "int8", 2.0, 0.0)
    assert panel.current_parameters()["loras"] == "/x/a.safetensors=0.5"


def test_an_image_under_another_name_opens_by_its_content(panel, tmp_path):
    """The window routes a drop by content: a PNG named .nii.gz comes here and must open as the image
    it is; a file that is no image fails with the image reader's message, not 'cannot open'."""
    from PIL import Image

    odd = tmp_path / "scan.nii.gz"
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(odd, format="PNG")
    open_and_wait(panel, odd)
    assert panel.init_slot.image().shape == (20, 30, 3) and panel.init_slot.path == str(odd)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(OpenError, match="notes.txt is not a readable image"):
        open_and_wait(panel, text)
