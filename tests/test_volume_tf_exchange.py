"""Transfer-function exchange: files written here by hand from each format's description
(Slicer .vp, ParaView preset JSON, Inviwo .itf current + legacy, ImageVis3D .1dt) are read with
the values the description implies; bad files give one line; exports read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.volume.tf import load_tf, preset, preset_names
from engines.volume.tf_exchange import (
    TFFileError,
    interpolate_colors,
    read_tf_file,
    rgb_to_lab,
    tf_file_map_names,
    tf_thumbnail,
    vtk_piecewise,
    write_tf_file,
)

SLICER_PRESETS = [
    "CT-AAA", "CT-AAA2", "CT-Bone", "CT-Bones", "CT-Cardiac", "CT-Cardiac2", "CT-Cardiac3",
    "CT-Chest-Contrast-Enhanced", "CT-Chest-Vessels", "CT-Coronary-Arteries", "CT-Coronary-Arteries-2",
    "CT-Coronary-Arteries-3", "CT-Cropped-Volume-Bone", "CT-Fat", "CT-Liver-Vasculature", "CT-Lung", "CT-MIP",
    "CT-Muscle", "CT-Pulmonary-Arteries", "CT-Soft-Tissue", "MR-Angio", "MR-Default", "MR-MIP", "MR-T2-Brain",
    "DTI-FA-Brain",
]


def test_all_slicer_presets_bundled():
    assert preset_names() == SLICER_PRESETS
    t2 = preset("MR-T2-Brain")  # material 0.3 / 0.6 / 0.5 / 40 per presets.xml
    assert (t2.shading["ambient"], t2.shading["diffuse"], t2.shading["specular"], t2.shading["power"]) == (0.3, 0.6, 0.5, 40)
    assert preset("CT-Coronary-Arteries").shading["shade"] is False
    assert preset("CT-AAA2").opacity[3] == (157.02, 0.5)
    for name in SLICER_PRESETS:
        thumb = tf_thumbnail(preset(name))
        assert thumb.shape == (18, 72, 3) and thumb.dtype == np.uint8 and thumb.std() > 5


def test_vtk_midpoint_and_sharpness():
    nodes = [(0.0, 0.0, 0.5, 0.0), (1.0, 1.0, 0.5, 0.0)]
    np.testing.assert_allclose(vtk_piecewise([0.25, 0.5, 2.0, -1.0], nodes), [0.25, 0.5, 1.0, 0.0])  # linear, clamped
    # midpoint: the x (as a fraction of the segment) where the value is halfway
    assert vtk_piecewise([0.2], [(0, 0, 0.2, 0), (1, 1, 0.5, 0)])[0] == pytest.approx(0.5)
    assert vtk_piecewise([0.1], [(0, 0, 0.2, 0), (1, 1, 0.5, 0)])[0] == pytest.approx(0.25)  # 0.5·s/m
    # sharpness 1: a step at the midpoint
    np.testing.assert_allclose(vtk_piecewise([0.29, 0.31], [(0, 0.2, 0.3, 1.0), (1, 0.8, 0.5, 0)]), [0.2, 0.8])
    # sharpness 0.5 at x = 0.25: s = 0.5·(0.5)^6, then Hermite with slope (1 − 0.5)·1 (worked by hand)
    s = 0.5 * 0.5**6
    expected = (-2 * s**3 + 3 * s**2) + (s**3 - 2 * s**2 + s + s**3 - s**2) * 0.5
    assert vtk_piecewise([0.25], [(0, 0, 0.5, 0.5), (1, 1, 0.5, 0)])[0] == pytest.approx(expected, rel=1e-9)


def test_lab_and_diverging_colours():
    from skimage.color import rgb2lab

    colours = np.random.default_rng(0).random((20, 3))
    np.testing.assert_allclose(rgb_to_lab(colours), rgb2lab(colours[None])[0], atol=0.6)  # VTK vs CIE D65 white
    # Moreland's Cool to Warm: the middle is a neutral grey 221/255 (Moreland 2009, table)
    cool, warm = (59 / 255, 76 / 255, 192 / 255), (180 / 255, 4 / 255, 38 / 255)
    mid = interpolate_colors(cool, warm, 0.5, "Diverging")
    np.testing.assert_allclose(mid, [221 / 255] * 3, atol=2.5 / 255)
    np.testing.assert_allclose(interpolate_colors(cool, warm, 0.0, "Diverging"), cool, atol=1e-3)
    # HSV goes the short way round the hue circle: red (h 0) to magenta (h 5/6) passes h 11/12
    np.testing.assert_allclose(interpolate_colors((1, 0, 0), (1, 0, 1), 0.5, "HSV"), [1, 0, 0.5], atol=1e-6)
    # Lab midpoint of black and white is L = 50, not RGB 0.5
    assert rgb_to_lab(interpolate_colors((0, 0, 0), (1, 1, 1), 0.5, "Lab"))[0] == pytest.approx(50, abs=0.2)


def _paraview_file(tmp_path):
    maps = [
        {"Name": "Warm ramp", "ColorSpace": "Lab", "NanColor": [1, 1, 0],
         "RGBPoints": [-100, 0, 0, 0, 300, 1, 1, 1],
         "Points": [-100, 0.0, 0.25, 0.0, 100, 0.6, 0.5, 1.0, 300, 0.9, 0.5, 0.0]},
        {"Name": "Cool to Warm", "ColorSpace": "Diverging", "RGBPoints": [0, 59 / 255, 76 / 255, 192 / 255,
                                                                            1, 180 / 255, 4 / 255, 38 / 255]},
    ]
    path = tmp_path / "maps.json"
    path.write_text(json.dumps(maps))
    return path


def test_paraview_several_maps_colour_space_and_opacity_shape(tmp_path):
    path = _paraview_file(tmp_path)
    assert tf_file_map_names(path) == ["Warm ramp", "Cool to Warm"]
    with pytest.raises(TFFileError, match="2 colour maps .*Warm ramp, Cool to Warm"):
        read_tf_file(path)
    tf = read_tf_file(path, map_name="Warm ramp")
    # opacity: first segment midpoint 0.25 → halfway (0.3) at x = -100 + 0.25·200 = -50
    assert tf.evaluate([-50.0])[0, 3] == pytest.approx(0.3, abs=1e-3)
    # second segment sharpness 1 → a step at x = 200
    np.testing.assert_allclose(tf.evaluate([199.0, 201.0])[:, 3], [0.6, 0.9], atol=1e-6)
    # colour blended in Lab: the middle value has L = 50
    assert rgb_to_lab(tf.evaluate([100.0])[0, :3])[0] == pytest.approx(50, abs=1.0)
    diverging = read_tf_file(path, map_name="Cool to Warm")
    np.testing.assert_allclose(diverging.evaluate([0.5])[0, :3], [221 / 255] * 3, atol=3 / 255)
    with pytest.raises(TFFileError, match="no colour map named"):
        read_tf_file(path, map_name="Nope")


def test_inviwo_itf_current_and_legacy(tmp_path):
    current = """<?xml version="1.0" ?>
<InviwoWorkspace version="3">
    <maskMin content="0" />
    <maskMax content="1" />
    <type content="0" />
    <Points>
        <Point><pos content="0.0" /><rgba x="0" y="0" z="1" w="0" /></Point>
        <Point><pos content="0.5" /><rgba x="0" y="1" z="0" w="0.4" /></Point>
        <Point><pos content="1.0" /><rgba x="1" y="0" z="0" w="0.8" /></Point>
    </Points>
</InviwoWorkspace>"""
    (tmp_path / "a.itf").write_text(current)
    tf = read_tf_file(tmp_path / "a.itf", value_range=(-1000, 1000))
    np.testing.assert_allclose(tf.evaluate([-1000, 0, 500, 1000]),
                               [[0, 0, 1, 0], [0, 1, 0, 0.4], [0.5, 0.5, 0, 0.6], [1, 0, 0, 0.8]], atol=1e-6)
    legacy = """<?xml version="1.0" ?>
<InviwoTreeData version="1.0">
    <maskMin content="0.25" />
    <maskMax content="1" />
    <dataPoints>
        <point><pos x="0.0" y="0.5" /><rgba x="1" y="1" z="1" w="0.5" /></point>
        <point><pos x="1.0" y="0.5" /><rgba x="1" y="1" z="1" w="0.5" /></point>
    </dataPoints>
</InviwoTreeData>"""
    (tmp_path / "b.itf").write_text(legacy)
    tf = read_tf_file(tmp_path / "b.itf")
    np.testing.assert_allclose(tf.evaluate([0.1, 0.5])[:, 3], [0.0, 0.5], atol=1e-6)  # masked below 0.25


def test_1dt_and_vp_written_by_hand(tmp_path):
    (tmp_path / "t.1dt").write_text("3\n0 0 0 0\n1 0 0 0.5\n1 1 1 1\n")
    tf = read_tf_file(tmp_path / "t.1dt", value_range=(0, 100))
    np.testing.assert_allclose(tf.evaluate([50, 75]), [[1, 0, 0, 0.5], [1, 0.5, 0.5, 0.75]])
    # .vp: interpolation, shade, diffuse, ambient, specular, power, opacity, gradient opacity, colour
    (tmp_path / "m.vp").write_text("1\n1\n0.7\n0.3\n0.4\n25\n4 0 0 100 1\n4 0 1 50 0.5\n8 0 1 0 0 100 0 0 1\n")
    tf = load_tf(tmp_path / "m.vp")
    assert tf.shading == {"shade": True, "diffuse": 0.7, "ambient": 0.3, "specular": 0.4, "power": 25.0}
    np.testing.assert_allclose(tf.evaluate([50])[0], [0.5, 0, 0.5, 0.5])
    assert tf.gradient_factor([25.0])[0] == pytest.approx(0.75)


@pytest.mark.parametrize("name,text,match", [
    ("bad.json", "[{\"RGBPoints\": [0, 1, 1", "not valid JSON"),
    ("short.json", "[{\"Name\": \"x\", \"RGBPoints\": [0, 1, 1]}]", "multiple of 4"),
    ("none.json", "{\"hello\": 1}", "no ParaView colour map"),
    ("bad.vp", "1\n1\n0.9\n0.1\n0.2\n10\n6 0 0 1 1\n4 0 1 255 1\n8 0 0 0 0 1 1 1 1\n", "says 6 numbers"),
    ("bad.itf", "<InviwoWorkspace><Points><Point>", "not valid Inviwo XML"),
    ("range.itf", "<a><Point><pos content='0'/><rgba x='2' y='0' z='0' w='1'/></Point></a>", r"\[0, 1\]"),
    ("bad.1dt", "5\n0 0 0 0\n", "entries"),
])
def test_bad_tf_files_one_line(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(TFFileError, match=match) as info:
        read_tf_file(tmp_path / name)
    assert "\n" not in str(info.value) and str(info.value).startswith(name)


def test_exports_read_back(tmp_path):
    tf = preset("CT-AAA")
    vp = write_tf_file(tf, tmp_path / "aaa.vp")
    pv = write_tf_file(tf, tmp_path / "aaa.pv.json")
    assert (tmp_path / "aaa.vp.json").exists()  # provenance sidecar
    lines = vp.read_text().splitlines()
    assert lines[2] == "0.9" and lines[3] == "0.1"  # diffuse before ambient
    for path in (vp, pv):
        back = read_tf_file(path)
        xs = np.linspace(-1000, 3000, 257)
        np.testing.assert_allclose(back.evaluate(xs), tf.evaluate(xs), atol=1e-6)
    data = json.loads(pv.read_text())
    assert isinstance(data, list) and len(data[0]["Points"]) % 4 == 0 and data[0]["Name"] == "CT-AAA"


def test_cli_tf_convert_list_and_errors(tmp_path, capsys):
    from studio.cli import main as cli_main

    path = _paraview_file(tmp_path)
    assert cli_main(["volume", "tf", str(path), "--list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["maps"] == ["Warm ramp", "Cool to Warm"]
    assert cli_main(["volume", "tf", str(path), "--out", str(tmp_path / "x.vp")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "choose one" in err and "\n" not in err
    assert not (tmp_path / "x.vp").exists()
    assert cli_main(["volume", "tf", str(path), "--map", "Warm ramp", "--out", str(tmp_path / "w.vp")]) == 0
    back = read_tf_file(tmp_path / "w.vp")
    assert back.evaluate([199.0, 201.0])[:, 3] == pytest.approx([0.6, 0.9], abs=1e-6)
    (tmp_path / "bad.itf").write_text("<nope")
    assert cli_main(["volume", "render", "phantom:16", "--tf", str(tmp_path / "bad.itf"), "--size", "16",
                     "--out", str(tmp_path / "r.png")]) == 2
    assert "bad.itf" in capsys.readouterr().err and not (tmp_path / "r.png").exists()


def test_panel_opens_tf_files_and_refuses_bad_ones(make_panel, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("pytestqt")
    from panels.volume import VolumePanel
    from engines.volume.phantom import make_phantom

    panel = make_panel(VolumePanel)
    panel.set_volume(make_phantom(24)[0], "phantom:24")
    assert panel.preset_combo.count() == 25 and not panel.preset_combo.itemIcon(0).isNull()
    (tmp_path / "m.vp").write_text("1\n1\n0.7\n0.3\n0.4\n25\n4 0 0 100 1\n4 0 1 50 0.5\n8 0 1 0 0 100 0 0 1\n")
    multi = _paraview_file(tmp_path)
    (tmp_path / "other.json").write_text('{"not": "a tf"}')
    from engines.filekinds import sniff

    for path in (tmp_path / "m.vp", multi):  # a drop routes here without building the panel
        assert panel.can_open(path) and VolumePanel.accepts(path, sniff(path))
    assert not panel.can_open(tmp_path / "other.json")
    with qtbot.waitSignal(panel.file_opened, timeout=10000):  # read by a job, never on the GUI thread
        assert panel.open_file(str(tmp_path / "m.vp")) is not None
    assert panel.tf.name == "m" and panel.view3d._tf is panel.tf
    # several maps: the chooser decides; its answer is applied
    monkeypatch.setattr(panel, "_choose_map", lambda names, file_name: names[1])
    with qtbot.waitSignal(panel.file_opened, timeout=10000):
        panel.open_file(str(multi))
    assert panel.tf.name == "Cool to Warm"
    lo, hi = panel.volume.value_range()  # a 0…1 map is stretched onto the phantom's HU range
    assert panel.tf.x_range() == pytest.approx((lo, hi))
    before = panel.tf
    (tmp_path / "bad.itf").write_text("<Points><Point>")
    with qtbot.waitSignal(panel.file_open_failed, timeout=10000) as failed:
        panel.open_file(str(tmp_path / "bad.itf"))
    message = failed.args[1]
    assert "\n" not in message and "bad.itf" in message and "Error" not in message
    with qtbot.waitSignal(panel.file_open_failed, timeout=10000) as failed:  # a .json that holds no TF
        panel.open_file(str(tmp_path / "other.json"))
    assert "other.json" in failed.args[1] and "\n" not in failed.args[1]
    assert panel.tf is before
    # export in the other tools' formats
    panel.export(str(tmp_path / "out.vp"))
    panel.export(str(tmp_path / "out.pv.json"))
    xs = np.linspace(lo, hi, 50)
    for name in ("out.vp", "out.pv.json"):
        np.testing.assert_allclose(read_tf_file(tmp_path / name).evaluate(xs), before.evaluate(xs), atol=1e-5)
    panel.services.jobs.wait_all(30)


def test_normalised_tf_file_is_placed_on_the_volume_shown_when_it_arrives(make_panel, qtbot, tmp_path):
    """A .1dt / .itf map (positions 0…1 over the volume's values) read while one volume was shown and
    applied after another one opened (e.g. a volume and its TF dropped together) spans the volume
    shown then, exactly as if read for it."""
    pytest.importorskip("pytestqt")
    from engines.volume.phantom import make_phantom
    from panels.volume import VolumePanel

    panel = make_panel(VolumePanel)
    first = make_phantom(16)[0]
    panel.set_volume(first, "phantom:16")
    path = tmp_path / "ramp.1dt"
    path.write_text("4\n0 0 0 0\n0.2 0.3 0.4 0.1\n0.5 0.6 0.7 0.5\n1 1 1 1\n")
    second = make_phantom(16)[0]
    second.data = (second.data.astype(np.float32) * 0.01 + 7.0).astype(np.float32)  # another value range
    panel.open_tf_file(str(path))  # read for the first volume's range…
    panel.set_volume(second, "second")  # …applied once the second one shows
    with qtbot.waitSignal(panel.file_opened, timeout=10000):
        pass
    lo, hi = panel._clim
    assert (lo, hi) != pytest.approx(first.value_range())
    want = read_tf_file(path, value_range=(lo, hi))
    xs = np.linspace(lo, hi, 41)
    np.testing.assert_allclose(panel.tf.evaluate(xs), want.evaluate(xs), atol=1e-6)
