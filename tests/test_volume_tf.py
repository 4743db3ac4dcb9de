"""Transfer functions: Slicer preset values, evaluation, JSON / .vp / ParaView round trips,
opacity correction, window/shift, 2-D TF widgets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.volume.tf import (
    TransferFunction1D,
    correct_opacity,
    from_paraview_json,
    from_slicer_vp,
    load_tf,
    parse_slicer_list,
    preset,
    preset_names,
    to_slicer_vp,
)
from engines.volume.tf2d import (
    TransferFunction2D,
    Widget2D,
    gradient_magnitude,
    joint_histogram,
    rgba_volume_2d,
)


def test_presets_have_slicer_values():
    assert {"CT-Bone", "CT-AAA", "CT-Lung", "MR-Default", "CT-MIP"} <= set(preset_names())
    bone = preset("CT-Bone")
    assert bone.opacity == [(-3024, 0), (-16.4458, 0), (641.385, 0.715686), (3071, 0.705882)]
    assert bone.color[1] == (-16.4458, 0.729412, 0.254902, 0.301961)
    assert bone.shading["specular"] == 0.2 and bone.shading["power"] == 10
    lung = preset("ct-lung")
    assert lung.gradient_opacity == [(0, 1), (985.12, 1), (988, 1)]
    assert len(preset("CT-AAA").color) == 6 and len(preset("MR-Default").opacity) == 6
    with pytest.raises(ValueError, match="unknown preset"):
        preset("CT-Nothing")


def test_parse_slicer_list_counts_numbers():
    assert parse_slicer_list("4 0 1 255 1", 2) == [(0, 1), (255, 1)]
    with pytest.raises(ValueError):
        parse_slicer_list("6 0 1 255 1", 2)


def test_evaluate_is_piecewise_linear_and_clamped():
    tf = preset("CT-Bone")
    xs = np.array([-5000.0, -16.4458, 312.46965, 641.385, 5000.0])
    rgba = tf.evaluate(xs)
    assert rgba.shape == (5, 4)
    np.testing.assert_allclose(rgba[:, 3], [0, 0, 0.715686 / 2, 0.715686, 0.705882], atol=1e-6)
    np.testing.assert_allclose(rgba[0, :3], [0, 0, 0])
    np.testing.assert_allclose(rgba[-1, :3], [1, 1, 1])
    lut = tf.lut(-1000, 1000, 11)
    np.testing.assert_allclose(lut, tf.evaluate(np.linspace(-1000, 1000, 11)))


def test_json_round_trip(tmp_path):
    from studio.export import read_provenance

    tf = preset("CT-AAA").shifted(25.0)
    path = tf.save(tmp_path / "aaa.json")
    back = load_tf(path)
    assert back.to_dict() == tf.to_dict()
    assert read_provenance(path)["panel"] == "volume"
    from studio.export import FileExistsErrorNoForce

    with pytest.raises(FileExistsErrorNoForce):
        tf.save(tmp_path / "aaa.json")  # exists, no force
    assert load_tf(str(path)).name == "CT-AAA"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_tf(tmp_path / "bad.json")


def test_slicer_vp_round_trip(tmp_path):
    tf = preset("CT-Lung")
    text = to_slicer_vp(tf)
    lines = text.strip().splitlines()
    assert lines[6].startswith("12 -1000 0 -600 0 -599 0.15")
    (tmp_path / "lung.vp").write_text(text)
    back = load_tf(tmp_path / "lung.vp")
    assert back.opacity == tf.opacity and back.color == tf.color and back.gradient_opacity == tf.gradient_opacity
    assert back.shading == tf.shading
    with pytest.raises(ValueError):
        from_slicer_vp("1\n1\n")


def test_paraview_import(tmp_path):
    preset_json = [{
        "Name": "Cool to Warm", "ColorSpace": "Diverging", "NanColor": [1, 1, 0],
        "RGBPoints": [0.0, 0.23, 0.299, 0.754, 0.5, 0.865, 0.865, 0.865, 1.0, 0.706, 0.016, 0.15],
    }]
    (tmp_path / "cw.json").write_text(json.dumps(preset_json))
    tf = load_tf(tmp_path / "cw.json")
    assert tf.name == "Cool to Warm"
    np.testing.assert_allclose(tf.evaluate([0.5])[0], [0.865, 0.865, 0.865, 0.5], atol=1e-3)  # default ramp; Msh round trip
    bone = preset("CT-Bone")
    back = from_paraview_json(json.dumps(bone.to_paraview()))
    assert back.color == bone.color and back.opacity == bone.opacity
    with pytest.raises(ValueError):
        from_paraview_json([{"RGBPoints": [0, 1, 2]}])


def test_opacity_correction_composes():
    alpha = np.linspace(0, 1, 11)
    half = correct_opacity(alpha, 0.5)
    # two half steps through the corrected opacity == one full step
    np.testing.assert_allclose(1 - (1 - half) ** 2, alpha, atol=1e-12)
    np.testing.assert_allclose(correct_opacity(alpha, 2.0, reference_step=2.0), alpha)
    np.testing.assert_allclose(correct_opacity(0.5, 3.0), 1 - 0.5**3)
    import torch

    np.testing.assert_allclose(correct_opacity(torch.tensor([0.5]), 2.0).numpy(), [0.75])


def test_window_and_shift():
    tf = preset("CT-Bone")
    level, width = tf.window_level()
    assert level == pytest.approx((-16.4458 + 641.385) / 2)
    moved = tf.windowed(level + 100, width * 2)
    new_level, new_width = moved.window_level()
    assert new_level == pytest.approx(level + 100) and new_width == pytest.approx(width * 2)
    assert moved.opacity[0] == tf.opacity[0] and moved.opacity[-1] == tf.opacity[-1]
    shifted = tf.shifted(50)
    assert shifted.opacity[2][0] == pytest.approx(641.385 + 50)
    with pytest.raises(ValueError):
        TransferFunction1D(color=[(0, 2, 0, 0)], opacity=[(0, 0.5)])


def test_tf2d_widgets():
    rect = Widget2D("rect", center=(100, 10), size=(50, 5), color=(1, 0, 0), opacity=0.8)
    gauss = Widget2D("gauss", center=(300, 0), size=(40, 20), color=(0, 0, 1), opacity=0.6)
    tf = TransferFunction2D([rect, gauss])
    values = np.array([100.0, 151.0, 300.0, 340.0])
    grads = np.array([10.0, 10.0, 0.0, 0.0])
    rgba = tf.classify(values, grads)
    assert rgba[0, 3] == pytest.approx(1 - (1 - 0.8) * (1 - 0.6 * np.exp(-0.5 * (200 / 40) ** 2 - 0.5 * (10 / 20) ** 2)), rel=1e-5)
    assert rgba[1, 3] == pytest.approx(0.6 * np.exp(-0.5 * (149 / 40) ** 2 - 0.5 * (10 / 20) ** 2), rel=1e-4)
    assert rgba[2, 3] == pytest.approx(0.6, rel=1e-6)
    assert rgba[3, 3] == pytest.approx(0.6 * np.exp(-0.5), rel=1e-5)
    np.testing.assert_allclose(rgba[2, :3], [0, 0, 1], atol=1e-6)
    back = TransferFunction2D.from_dict(json.loads(json.dumps(tf.to_dict())))
    np.testing.assert_allclose(back.classify(values, grads), rgba)
    with pytest.raises(ValueError):
        Widget2D("triangle")


def test_gradient_magnitude_and_rgba_volume():
    _z, y, x = np.meshgrid(np.arange(6), np.arange(7), np.arange(8), indexing="ij")
    ramp = (3.0 * x + 4.0 * y).astype(np.float32)  # |∇| = 5 per voxel
    g = gradient_magnitude(ramp, spacing=(1, 1, 1))
    np.testing.assert_allclose(g, 5.0, atol=1e-5)
    np.testing.assert_allclose(gradient_magnitude(ramp, spacing=(1, 2, 2)), 2.5, atol=1e-5)
    hist, _v_edges, _g_edges = joint_histogram(ramp, g, bins=(16, 8))
    assert hist.shape == (16, 8) and np.expm1(hist).sum() == pytest.approx(ramp.size)
    tf = TransferFunction2D([Widget2D("rect", center=(20, 5), size=(5, 1), color=(0, 1, 0), opacity=1.0)])
    rgba = rgba_volume_2d(ramp, (1, 1, 1), tf)
    assert rgba.shape == ramp.shape + (4,)
    inside = np.abs(ramp - 20) <= 5
    np.testing.assert_array_equal(rgba[..., 3] == 1.0, inside)


def test_tf_editor_opacity_axis_reads_in_opacity_without_a_scale_prefix(qtbot):
    """With no volume (no histogram) the opacity axis spans 0..~0.8: pyqtgraph's automatic SI prefix
    labelled it "0..800 (x0.001)"; opacity is shown as it is."""
    from engines.volume.tf import preset
    from panels.volume.tf_editor import TFEditor

    editor = TFEditor()
    qtbot.addWidget(editor)
    editor.resize(600, 200)
    editor.show()
    editor.set_tf(preset("CT-Bone"))
    qtbot.wait(50)
    axis = editor.plot.getAxis("left")
    assert axis.autoSIPrefixScale == 1.0 and "x0" not in axis.labelString()
    ticks = [value for level in axis.tickValues(0.0, 0.8, 150) for value in level[1]]
    assert max(ticks) <= 1.0 and "0.5" in axis.tickStrings([0.5], 1.0, 0.5)
