"""Drops into the real window: content decides the panel, exports reopen with their parameters,
malformed provenance changes nothing."""

import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from engines.generation.models import SHIPPED_MODELS_DIR
from studio.export import make_provenance, save_with_sidecar
from tests.test_shell_routing import _dicom_series, _image, _scene


def last_log(window):
    return window.log_view.messages()[-1]


def logged(window, entry) -> bool:
    """Whether ``(level, text)`` was logged, once the background opens and their jobs ended."""
    assert window.jobs.wait_all(60)
    return entry in window.log_view.messages()


def test_dicom_folder_dropped_on_generate_opens_in_volume(window, qtbot, tmp_path):
    window.show_panel("generate")
    folder = tmp_path / "ct"
    _dicom_series(folder)
    assert window.open_path(str(folder)) == "volume"
    volume = window.panel("volume")
    qtbot.waitUntil(lambda: volume.source_path == str(folder), timeout=30000)
    assert volume.volume.shape == (3, 4, 5) and window.active_name() == "volume"


def test_model_folder_dropped_on_volume_goes_to_generate(window, tmp_path):
    window.show_panel("codec")  # any panel but Generate
    assert window.open_path(str(SHIPPED_MODELS_DIR / "digits-flow")) == "generate"
    assert window.active_name() == "generate"
    assert logged(window, ("info", "Opened digits-flow in Generate"))


@pytest.mark.parametrize("name", ["fitted.ply", "fitted.spz"])
def test_exported_scene_with_sidecar_opens_the_scene_and_restores(window, tmp_path, name):
    from engines.render.formats.spz import save_spz
    from engines.render.io import save_ply

    render = window.panel("render")
    params = dict(render.current_parameters(), point_size=2.5, sh_degree=0, seed=77)
    save = save_spz if name.endswith(".spz") else save_ply
    path = save_with_sidecar(tmp_path / name, lambda t: save(t, _scene()),
                             make_provenance("render", "engines.render.fit", params))
    window.show_panel("volume")
    assert window.open_path(str(path)) == "render"
    assert logged(window, ("info", f"Opened {name} in Render and restored its parameters"))
    assert render.scene is not None and len(render.scene) == 5 and render.scene_path == str(path)
    restored = render.current_parameters()
    assert (restored["point_size"], restored["sh_degree"], restored["seed"]) == (2.5, 0, 77)


def test_exported_bitstream_with_sidecar_opens_decoded_and_restores(window, tmp_path):
    from engines.codec.blockcodec import BlockCodecParams, decode, encode

    codec = window.panel("codec")
    image = _image(3, (32, 48, 3))
    bits = encode(image, BlockCodecParams(quality=30)).bitstream
    params = dict(codec.current_parameters(), quality=30, channel="Y")
    path = save_with_sidecar(tmp_path / "coded.ssbc", lambda t: open(t, "wb").write(bits),
                             make_provenance("codec", "codec.block", params))
    window.show_panel("render")
    assert window.open_path(str(path)) == "codec"
    assert window.jobs.wait_all(60)  # the bitstream is decoded by a job
    np.testing.assert_array_equal(codec.image, decode(bits).image)
    assert codec.current_parameters()["quality"] == 30 and codec.current_parameters()["channel"] == "Y"


def _volume_png(path, parameters):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("spectra-studio", json.dumps(make_provenance("volume", "engines.volume.raycast.render", parameters)))
    Image.fromarray(_image()).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("bad", [{"mode": 5}, {"mode": "dvr", "step": "fast"}, {"export_size": 10**9},
                                 {"classes": [{"name": "bone", "color": [1, 2]}]}, {"tf": {"color": "red"}}])
def test_bad_volume_record_changes_nothing_and_later_restores_still_work(window, tmp_path, bad):
    volume = window.panel("volume")
    before = volume.current_parameters()
    good = dict(before, mode="mip", step=2.0, export_size=300)
    assert window.open_path(str(_volume_png(tmp_path / "bad.png", dict(good, **bad)))) is None
    level, text = last_log(window)
    assert level == "error" and text.startswith("Cannot open bad.png: ") and "Error" not in text
    assert volume.current_parameters() == before
    assert window.open_path(str(_volume_png(tmp_path / "good.png", good))) == "volume"
    after = volume.current_parameters()
    assert (after["mode"], after["step"], after["export_size"]) == ("mip", 2.0, 300)


@pytest.mark.parametrize("name", ["generate", "render", "codec"])
def test_every_panel_refuses_wrong_types_before_changing_anything(window, name):
    panel = window.panel(name)
    before = panel.current_parameters()
    wrong = {key: ([1] if not isinstance(value, list) else "x") for key, value in before.items()}
    from panels.base import OpenError

    with pytest.raises(OpenError):
        panel.restore_parameters(wrong)
    assert panel.current_parameters() == before


def test_exported_is_logged_only_once_the_file_exists(window, qtbot, tmp_path):
    from tests.test_shell_routing import _dicom_series

    folder = tmp_path / "ct"
    _dicom_series(folder)
    assert window.open_path(str(folder)) == "volume"
    volume = window.panel("volume")
    qtbot.waitUntil(lambda: volume.source_path == str(folder), timeout=30000)
    volume.export_size = 64
    volume.gl_export_check.setChecked(False)
    target = tmp_path / "render.png"
    assert window.export_to(str(target)) == str(target)
    messages = [text for _, text in window.log_view.messages()]
    assert "Exporting render.png: the file is written when its job finishes" in messages
    assert not any(text.startswith("Exported") for text in messages) or target.exists()
    assert window.jobs.wait_all(120)
    qtbot.waitUntil(lambda: target.exists(), timeout=10000)
    assert any(text == f"Exported {target}" for _, text in window.log_view.messages())


def test_volume_render_png_reopens_its_source_then_restores(window, qtbot, tmp_path):
    folder = tmp_path / "ct"
    _dicom_series(folder)
    volume = window.panel("volume")
    params = dict(volume.current_parameters(), source=str(folder), mode="mip", step=2.0, export_size=300)
    png = _volume_png(tmp_path / "render.png", params)
    window.show_panel("codec")
    assert window.open_path(str(png)) == "volume"
    assert window.jobs.wait_all(60)
    qtbot.waitUntil(lambda: volume.source_path == str(folder), timeout=30000)
    after = volume.current_parameters()
    assert volume.volume.shape == (3, 4, 5)
    assert (after["mode"], after["step"], after["export_size"]) == ("mip", 2.0, 300)


# -- kinds added since: ControlNets, learned-codec bitstreams, exported SPZ / TF files, A1111 PNGs -------------
def test_controlnet_folder_and_file_dropped_anywhere_become_the_controlnet(window, tmp_path):
    from tests.test_shell_routing import make_more_samples

    samples = make_more_samples(tmp_path / "s")
    generate = window.panel("generate")
    for key, active in (("controlnet folder", "volume"), ("controlnet file", "codec")):
        window.show_panel(active)
        assert window.open_path(str(samples[key])) == "generate"
        assert window.jobs.wait_all(60)
        assert generate.control.model.path() == str(samples[key])
        assert generate.current_parameters()["controlnet"] == str(samples[key])
        assert window.active_name() == "generate"


def test_learned_bitstream_dropped_on_render_opens_decoded_in_codec(window, tmp_path):
    from engines.codec.learned import compress, decompress

    data = compress(_image(4, (32, 48, 3)), "hp-default", 60.0)["data"]
    path = tmp_path / "coded.sslc"
    path.write_bytes(data)
    window.show_panel("render")
    assert window.open_path(str(path)) == "codec"
    assert window.jobs.wait_all(60)
    np.testing.assert_array_equal(window.panel("codec").image, decompress(data))


def test_exported_transfer_function_reopens_in_volume(window, qtbot, tmp_path):
    from engines.volume.tf import default_tf
    from engines.volume.tf_exchange import read_tf_file, write_tf_file

    volume = window.panel("volume")
    window.show_panel("volume")  # its start-up volume first: the TF then applies to it
    qtbot.waitUntil(lambda: volume.volume is not None, timeout=60000)
    assert window.jobs.wait_all(60)
    tf = default_tf(-500.0, 1500.0)
    path = write_tf_file(tf, tmp_path / "bone.vp", fmt="vp")
    assert read_tf_file(path).opacity == tf.opacity
    window.show_panel("codec")
    assert window.open_path(str(path)) == "volume"
    assert logged(window, ("info", "Opened bone.vp in Volume and restored its parameters"))
    assert volume.tf.to_dict() == tf.to_dict()  # the record holds the function itself


def test_a1111_png_dropped_on_codec_restores_generate(window, tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red cat\nNegative prompt: fog\nSteps: 17, Sampler: Euler a, CFG scale: 6, Seed: 5, "
                                "Size: 32x32")
    path = tmp_path / "a1111.png"
    Image.fromarray(_image()).save(path, pnginfo=info)
    window.show_panel("codec")
    assert window.open_path(str(path)) == "generate"
    assert window.jobs.wait_all(60)
    generate = window.panel("generate")
    params = generate.current_parameters()  # the prompt boxes are restored; the digits model reports no prompt
    assert (generate.prompt.toPlainText(), generate.negative.toPlainText()) == ("a red cat", "fog")
    assert (params["steps"], params["seed"], params["cfg"]) == (17, 5, 6.0)


def test_torch_files_go_where_they_are_used(window, tmp_path):
    """A learned-codec model → Codec's learned tab, an embedding → Generate's list, a TorchScript
    network → Volume's feature model, whatever panel is active."""
    from tests.test_shell_routing import make_more_samples

    samples = make_more_samples(tmp_path / "s")
    codec, generate, volume = window.panel("codec"), window.panel("generate"), window.panel("volume")
    window.show_panel("render")
    assert window.open_path(str(samples["codec model pt"])) == "codec"
    assert window.jobs.wait_all(60)
    assert codec.learned_tab.model.currentData() == str(samples["codec model pt"])
    window.show_panel("volume")
    assert window.open_path(str(samples["embedding pt"])) == "generate"
    assert window.jobs.wait_all(60)
    assert str(samples["embedding pt"]) in generate.current_parameters()["embeddings"]
    assert window.open_path(str(samples["torchscript"])) == "volume"
    assert window.jobs.wait_all(60)  # checked by a job (its zip is read off the GUI thread)
    assert volume.feature_model == str(samples["torchscript"])
    assert last_log(window)[1] == "Opened features.pt in Volume"
    broken = tmp_path / "broken.pt"
    broken.write_bytes(samples["codec model pt"].read_bytes()[:300])  # unrecognised content: Generate says what is wrong
    assert window.open_path(str(broken)) == "generate"
    assert window.jobs.wait_all(60)
    level, text = last_log(window)
    assert level == "error" and text.startswith("Cannot open broken.pt: it is not a readable embedding"), text
    assert str(broken) not in generate.current_parameters()["embeddings"]


def test_a_background_open_that_fails_says_so_in_the_status_bar(window, qtbot, tmp_path):
    import nibabel as nib

    good = tmp_path / "ct.nii.gz"
    noise = np.random.default_rng(0).integers(-1000, 1000, (32, 32, 32)).astype(np.int16)
    nib.save(nib.Nifti1Image(noise, np.eye(4)), str(good))
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(good.read_bytes()[:5000])  # a cut gzip stream: the header reads, the data does not
    assert window.open_path(str(bad)) == "volume"
    assert window.statusBar().currentMessage().startswith("Opening bad.nii.gz")
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("Cannot open"), timeout=30_000)
    assert window.statusBar().currentMessage().startswith("Cannot open bad.nii.gz: ")
    assert last_log(window)[0] == "error"
