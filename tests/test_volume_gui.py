"""Volume panel (Qt, offscreen): load, TF edit (+ undo), slices, paint + classify job, exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from panels.base import OpenError
from tests.gui_helpers import open_and_wait


@pytest.fixture
def panel(make_panel):
    from panels.volume import VolumePanel

    widget = make_panel(VolumePanel)
    widget.resize(900, 700)
    widget.show()
    return widget


def _load_phantom(panel, size=48):
    panel.load_phantom(size)
    assert panel.services.jobs.wait_all(60)
    assert panel.volume is not None and panel.volume.shape == (size, size, size)


def test_panel_contract():
    from panels.volume import VolumePanel

    assert VolumePanel.name == "volume" and VolumePanel.title == "Volume" and VolumePanel.icon == "volume.svg"
    for suffix in (".nii", ".nii.gz", ".dcm", ".nrrd", ".nhdr", ".tif", ".tiff", ".npy", ".npz", ".mhd", "/"):
        assert suffix in VolumePanel.file_types


def test_first_show_loads_phantom_and_fallback_preview(panel, qtbot):
    panel.on_shown()
    assert panel.services.jobs.wait_all(90)
    assert panel.volume is not None and panel.volume.modality == "CT"
    if panel.view3d.has_gl:  # under Xvfb: the vispy canvas draws the volume
        frame = panel.view3d.render_image()
        assert frame.ndim == 3 and frame[..., :3].max() > 50
    else:  # offscreen platform: reference ray-caster previews instead
        assert panel.view3d.gl_error
        qtbot.waitUntil(lambda: panel.view3d.message.pixmap() is not None
                        and not panel.view3d.message.pixmap().isNull(), timeout=60000)
    assert "128×128×128" in panel.info_label.text()


def test_open_files_and_errors(panel, tmp_path):
    import nibabel as nib

    data = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), np.diag([1.0, 2.0, 3.0, 1.0])), str(tmp_path / "a.nii.gz"))
    assert panel.can_open(tmp_path / "a.nii.gz") and not panel.can_open(tmp_path)  # a folder without DICOM
    open_and_wait(panel, tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(panel.volume.data, data)
    assert panel.volume.spacing == (3.0, 2.0, 1.0)
    (tmp_path / "bad.nrrd").write_bytes(b"garbage")
    with pytest.raises(OpenError, match="bad.nrrd"):
        open_and_wait(panel, tmp_path / "bad.nrrd")
    assert panel.volume.shape == (6, 7, 8)  # unchanged
    with pytest.raises(OpenError):
        panel.receive("image", np.zeros((4, 4, 3)))
    panel.receive("volume", np.ones((5, 5, 5), np.float32))
    assert panel.volume.shape == (5, 5, 5)


def test_tf_edit_updates_slices_and_undo(panel):
    _load_phantom(panel)
    before = panel.slice_rgb(0).copy()
    tf0 = panel.tf
    panel.editor.add_point(40.0, 1.0)  # soft tissue fully opaque → slices change colour
    assert panel.tf is not tf0 and (40.0, 1.0) in panel.tf.opacity
    after = panel.slice_rgb(0)
    assert np.abs(after.astype(int) - before.astype(int)).max() > 20
    assert panel.view3d._tf is panel.tf  # the 3D view follows
    panel.undo_stack.undo()
    assert panel.tf.to_dict() == tf0.to_dict()
    panel.undo_stack.redo()
    assert (40.0, 1.0) in panel.tf.opacity
    # drag: live updates then one undo step
    count = panel.undo_stack.count()
    index = panel.tf.opacity.index((40.0, 1.0))
    panel.editor.move_point("opacity", index, 60.0, 0.5, final=False)
    assert panel.view3d._step == pytest.approx(2.0)  # coarser sampling while dragging
    panel.editor.move_point("opacity", index, 80.0, 0.4, final=True)
    assert panel.view3d._step == pytest.approx(panel.step)
    assert (80.0, 0.4) in panel.tf.opacity and panel.undo_stack.count() == count + 1
    panel.editor.delete_point("opacity", panel.tf.opacity.index((80.0, 0.4)))
    assert (80.0, 0.4) not in panel.tf.opacity
    panel.apply_preset("CT-Lung")
    assert panel.tf.name == "CT-Lung"
    _level, width = panel.tf.window_level()
    panel.width_spin.setValue(width * 2)
    assert panel.tf.window_level()[1] == pytest.approx(width * 2)
    panel.set_mode("mip")
    assert panel.current_parameters()["mode"] == "mip"


def test_preset_box_names_the_transfer_function_in_use(panel, qtbot, tmp_path):
    from engines.volume.model import Volume
    from engines.volume.tf import default_tf, preset

    box = panel.preset_combo
    presets = box.count()
    _load_phantom(panel)  # CT: the CT-Bone preset, as the box says
    assert panel.tf == preset("CT-Bone") and box.currentText() == "CT-Bone" and box.count() == presets
    ramp = np.linspace(0, 1000, 8 * 9 * 10, dtype=np.float32).reshape(8, 9, 10)
    panel.receive("volume", Volume(ramp))  # no modality: a grey ramp over its values, and the box says so
    assert panel.tf == default_tf(0.0, 1000.0)
    assert box.currentText() == "Grey ramp" and box.count() == presets + 1 and box.currentIndex() == presets
    box.activated.emit(box.currentIndex())  # choosing the entry that names it changes nothing
    assert panel.tf == default_tf(0.0, 1000.0)
    box.setCurrentIndex(box.findText("CT-Muscle"))
    box.activated.emit(box.currentIndex())  # a user's choice of a preset applies it; the extra entry goes
    assert panel.tf == preset("CT-Muscle") and box.currentText() == "CT-Muscle" and box.count() == presets
    panel.shift_slider.setValue(50)  # an edited preset is no longer that preset
    assert panel.tf != preset("CT-Muscle") and box.currentText() == "CT-Muscle (edited)"
    panel.undo_stack.undo()
    assert panel.tf == preset("CT-Muscle") and box.currentText() == "CT-Muscle" and box.count() == presets
    (tmp_path / "mine.json").write_text(json.dumps(preset("CT-Lung").copy(name="my map").to_dict()))
    with qtbot.waitSignal(panel.file_opened, timeout=10000):
        panel.open_tf_file(str(tmp_path / "mine.json"))
    assert panel.tf.name == "my map" and box.currentText() == "my map"
    panel.apply_preset("CT-Lung")
    assert box.currentText() == "CT-Lung" and box.count() == presets


def test_crosshair_links_views(panel):
    _load_phantom(panel)
    panel._on_pointer(0, 10, 20, drag=False, finish=True)  # click on the axial view at row y=10, col x=20
    assert panel.cursor[1:] == [10, 20]
    assert panel.slice_views[1].vline.value() == pytest.approx(20 * panel.volume.spacing[2])


def test_paint_classify_and_export(panel, tmp_path, monkeypatch):
    from studio.export import read_provenance

    _load_phantom(panel, 48)
    from engines.volume.phantom import make_phantom

    _, truth = make_phantom(48)
    panel.paint_check.setChecked(True)
    panel.brush = 1
    z = 24
    for cls, label in ((0, 3), (1, 2), (2, 1)):
        for y, x in np.argwhere(truth[z] == label)[::9][:6]:
            panel.paint_at(0, (z, int(y), int(x)), finish=True, class_index=cls)
    assert set(panel.strokes.annotated_classes()) == {0, 1, 2}
    panel.undo_stack.undo()
    n_before = sum(len(v) for v in panel.strokes.voxels.values())
    panel.undo_stack.redo()
    assert sum(len(v) for v in panel.strokes.voxels.values()) > n_before
    panel.method_combo.setCurrentIndex(panel.method_combo.findData("forest"))
    panel.update_classification()
    assert panel.services.jobs.wait_all(120)
    assert panel.result is not None and panel.result.labels.shape == (48, 48, 48)
    assert panel.semantic is not None and panel.semantic.shape == (48, 48, 48, 4)
    bone = panel.result.labels == 1
    assert (bone & (truth == 3)).sum() > 0.5 * (truth == 3).sum()

    # a class edit recolours by a job, not on the GUI thread; the views get exactly the new colours
    import threading

    from qtpy.QtCore import Qt

    import engines.volume.classify as classify

    threads, original = [], classify.semantic_rgba_job
    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return (yield from original(*args, **kwargs))
    monkeypatch.setattr(classify, "semantic_rgba_job", recorded)
    panel.class_list.setCurrentRow(1)
    panel.class_opacity.setValue(0.25)
    assert panel.services.jobs.wait_all(60)
    panel.class_list.item(2).setCheckState(Qt.CheckState.Unchecked)  # hide a class
    assert panel.services.jobs.wait_all(60)
    assert len(threads) == 2 and threading.main_thread() not in threads
    assert panel.classes[1].opacity == 0.25 and not panel.classes[2].visible
    np.testing.assert_array_equal(panel.semantic, classify.semantic_rgba(panel.result, panel.classes))

    # exports: TF JSON, label volume, PNG render (a job)
    tf_path = panel.export(str(tmp_path / "tf.json"))
    assert json.loads(Path(tf_path).read_text())["format"] == "spectra-studio-tf1d"
    labels_path = panel.export(str(tmp_path / "labels.nii.gz"))
    import nibabel as nib

    back = np.asarray(nib.load(labels_path).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(back, panel.result.labels)
    panel.size_spin.setValue(96)
    png = panel.export(str(tmp_path / "render.png"))
    assert panel.services.jobs.wait_all(120)
    from PIL import Image

    assert Image.open(png).size == (96, 96)
    provenance = read_provenance(png)
    assert provenance["panel"] == "volume" and provenance["parameters"]["export_size"] == 96
    with pytest.raises(OpenError, match="exists"):
        panel.export(str(tmp_path / "render.png"))
    with pytest.raises(OpenError):
        panel.export(str(tmp_path / "x.bmp"))


def test_parameters_round_trip(panel):
    _load_phantom(panel, 32)
    panel.apply_preset("CT-AAA")
    panel.set_step(0.7)
    panel.features_combo.setCurrentIndex(panel.features_combo.findData("half"))
    params = json.loads(json.dumps(panel.current_parameters()))
    panel.apply_preset("CT-Bone")
    panel.set_step(1.0)
    panel.features_combo.setCurrentIndex(panel.features_combo.findData("full"))
    panel.restore_parameters(params)
    assert panel.tf.name == "CT-AAA" and panel.step == pytest.approx(0.7)
    assert panel.feature_resolution == "half" and panel.features_combo.currentData() == "half"
    assert panel.step_spin.value() == pytest.approx(0.7)


def test_tf2d_editor_drives_rgba_volume(panel):
    _load_phantom(panel, 32)
    assert panel.services.jobs.wait_all(60)
    assert panel.gmag is not None and panel.gmag.shape == (32, 32, 32)
    assert panel.view3d.gradient_range() == pytest.approx(float(panel.gmag.max()))  # the job's largest |∇v|
    assert len(panel.editor2d.tf2d.widgets) == 1  # CT starting widget
    panel.editor2d.use_check.setChecked(True)
    assert panel.services.jobs.wait_all(60)
    assert panel.rgba2d is not None and panel.rgba2d.shape == (32, 32, 32, 4)
    assert panel.view3d._rgba is panel.rgba2d
    first = panel.rgba2d
    panel.editor2d.add_widget("rect", center=(300.0, 0.0), size=(50.0, 20.0), color=(1, 0, 0), opacity=0.9)
    assert panel.services.jobs.wait_all(60)
    assert panel.rgba2d is not first
    inside = (np.abs(panel.volume.data - 300) < 40) & (panel.gmag < 15)  # inside the new box
    assert inside.any() and panel.rgba2d[..., 3][inside].min() >= 0.9 - 1e-6
    outside = np.abs(panel.volume.data - 40) < 20  # soft tissue: no widget there
    assert panel.rgba2d[..., 3][outside].mean() < 0.1
    kwargs = panel._render_kwargs(32)
    assert kwargs["rgba"] is panel.rgba2d and "tf" not in kwargs
    panel.editor2d.remove_selected()
    assert panel.services.jobs.wait_all(60)
    assert len(panel.editor2d.tf2d.widgets) == 1
    panel.editor2d.use_check.setChecked(False)
    assert panel.view3d._rgba is None


def test_paint_mode_caches_features_and_updates_reuse_them(panel):
    from engines.volume.phantom import make_phantom, simulate_strokes

    _load_phantom(panel, 48)
    _, truth = make_phantom(48)
    assert panel.features is None and "not computed" in panel.features_label.text()
    panel.paint_check.setChecked(True)  # entering paint mode starts the feature job
    assert panel.services.jobs.wait_all(60)
    features = panel.features
    assert features is not None and features.full_shape == (48, 48, 48) and features.factor == 1
    assert "ready" in panel.features_label.text() and "Painting 'bone'" in panel.slice_views[0].hint.toPlainText()
    for cls, label in ((0, 3), (1, 2), (2, 1)):
        for voxels in simulate_strokes(truth, {cls: label}, slices=(16, 24, 32), per_slice=2, radius=0, seed=cls).values():
            panel.class_list.setCurrentRow(cls)
            panel._pending_stroke.append(np.asarray(voxels, np.int64).reshape(-1, 3))
            panel._commit_stroke()
    panel.method_combo.setCurrentIndex(panel.method_combo.findData("similarity-max"))
    panel.update_classification()
    assert panel.services.jobs.wait_all(60)
    first = panel.result
    assert set(panel.strokes.annotated_classes()) == {0, 1, 2}
    assert first is not None and panel.features is features  # not recomputed
    assert "Classified" in panel.status.text() and "vessel" in panel.status.text()
    # a new stroke + Update: the classifier re-runs on the cached features
    panel.paint_at(0, (24, *np.argwhere(truth[24] == 2)[0]), class_index=1)
    panel.update_classification()
    assert panel.services.jobs.wait_all(60)
    assert panel.result is not first and panel.features is features
    assert panel.result.info["reused_classes"] == [0, 2]  # only the painted class was scored again
    vessel = panel.result.labels == 2
    assert (vessel & (truth == 2)).sum() > 0.5 * (truth == 2).sum()
    # the score overlay names what it shows; half-resolution features are recomputed on request
    panel.similarity_check.setChecked(True)
    assert "score" in panel.slice_views[0].hint.toPlainText()
    panel.uncertainty_check.setChecked(True)  # where another stroke would help: drawn, and named
    assert "uncertainty" in panel.slice_views[0].hint.toPlainText()
    overlay = panel._overlay(0)
    assert overlay is not None and overlay[..., 3].max() > 100
    panel.uncertainty_check.setChecked(False)
    panel.features_combo.setCurrentIndex(panel.features_combo.findData("half"))
    assert panel.services.jobs.wait_all(60)
    assert panel.features is not features and panel.features.factor == 2


def test_update_before_features_are_ready_chains_the_classification(panel):
    _load_phantom(panel, 32)
    panel.paint_at(0, (16, 16, 16), class_index=0)
    panel.paint_at(0, (16, 2, 2), class_index=2)
    panel.update_classification()  # no features yet: computes them, then classifies
    assert panel.services.jobs.wait_all(60)
    assert panel.features is not None and panel.result is not None


def test_switching_feature_resolution_during_the_job_keeps_the_new_one(panel):
    _load_phantom(panel, 48)
    panel.paint_check.setChecked(True)  # job at full resolution starts
    panel.features_combo.setCurrentIndex(panel.features_combo.findData("half"))  # replaces it
    assert panel.services.jobs.wait_all(60)
    assert panel.features is not None and panel.features.factor == 2 and panel._features_handle is None
    assert "ready" in panel.features_label.text()


def test_feature_model_joins_the_paint_features(panel, tmp_path):
    import torch

    _load_phantom(panel, 32)
    panel.paint_check.setChecked(True)
    assert panel.services.jobs.wait_all(60)
    base = panel.features.features.shape[-1]
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 3, padding=1), torch.nn.Tanh())
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 1, 6, 6, 6)), str(tmp_path / "net.pt"))
    panel.set_feature_model(str(tmp_path / "net.pt"))
    assert panel.services.jobs.wait_all(60)
    assert panel.features.features.shape[-1] == base + 3 and "net.pt" in panel.feature_model_button.text()
    with pytest.raises(OpenError, match="not found"):
        panel.set_feature_model(str(tmp_path / "missing.pt"))
    (tmp_path / "bad.pt").write_bytes(b"junk")
    panel.set_feature_model(str(tmp_path / "bad.pt"))
    panel.services.jobs.wait_all(60)
    assert panel.features is None and "bad.pt" in panel.features_label.text()
    assert "Features failed" in panel.features_label.text() and "\n" not in panel.features_label.text()


def test_dropped_torchscript_is_checked_off_the_gui_thread_and_keeps_the_volume_open_going(panel, tmp_path, monkeypatch):
    import threading

    import torch

    from engines import filekinds

    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1))
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 1, 4, 4, 4)), str(tmp_path / "net.pt"))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")  # a zip too, but no TorchScript
    sniffed_on = []
    real_sniff = filekinds.sniff
    monkeypatch.setattr(filekinds, "sniff", lambda path: sniffed_on.append(threading.current_thread()) or real_sniff(path))
    panel.load_phantom(24)
    handle = panel.open_file(str(tmp_path / "net.pt"))  # a volume read is in flight: it is not cancelled
    assert handle is not None and panel.feature_model is None
    assert panel.services.jobs.wait_all(60)
    assert panel.feature_model == str(tmp_path / "net.pt") and "net.pt" in panel.feature_model_button.text()
    assert panel.volume is not None and panel.volume.shape == (24, 24, 24)
    assert sniffed_on and threading.main_thread() not in sniffed_on
    for name, message in (("plain.pt", "plain.pt is not a TorchScript network"), ("gone.pt", "feature model not found")):
        with pytest.raises(OpenError, match=message):
            open_and_wait(panel, tmp_path / name)
    assert panel.feature_model == str(tmp_path / "net.pt")


def test_classifier_defaults_to_the_forest_and_the_menu_says_so(panel):
    # the forest meets the update-time and stability aims on both volumes of benchmarks/volume_classify.py
    assert panel.method == "forest" and panel.method_combo.currentData() == "forest"
    panel.method_combo.setCurrentIndex(panel.method_combo.findData("similarity-max"))
    assert panel.method == "similarity-max"


def test_png_export_to_an_unwritable_place_fails_at_once_without_a_job(panel, tmp_path):
    _load_phantom(panel, 16)
    assert panel.services.jobs.wait_all(60)
    jobs = len(panel.services.jobs.records())
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OpenError, match="afile is a file, not a folder"):
        panel.export(str(afile / "render.png"))
    with pytest.raises(OpenError, match="folder .*nodir does not exist"):
        panel.export(str(tmp_path / "nodir" / "render.png"))
    assert len(panel.services.jobs.records()) == jobs and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
