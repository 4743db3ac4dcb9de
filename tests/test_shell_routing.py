"""Routing of dropped / opened files to panels by their content (pure logic, no panel built)."""

import json

import numpy as np
import pytest
from PIL import Image

from engines import filekinds as fk
from panels import PANEL_REGISTRY, load_panel_class
from studio.export import make_provenance, save_png, save_with_sidecar
from studio.routing import ASK, ERROR, OPEN, RESTORE, UNSUPPORTED, route_path

PANELS = [name for name, _ in PANEL_REGISTRY]
REAL = [(name, load_panel_class(spec).accepts) for name, spec in PANEL_REGISTRY]


def by_suffix(*suffixes):
    return lambda path, kind: path.lower().endswith(suffixes)


TOY = [
    ("generate", by_suffix(".png", ".jpg")),
    ("render", by_suffix(".ply", ".splat")),
    ("volume", by_suffix(".nii", ".nii.gz")),
    ("codec", by_suffix(".png", ".jpg", ".webp")),
]


# -- one sample per file kind, made with the real writers ---------------------------------------
def _image(seed=0, shape=(16, 16, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _dicom_series(folder):
    from tests.test_volume_readers import write_dicom_series

    return write_dicom_series(folder, np.zeros((3, 4, 5)) - 500.0)


def _scene():
    import torch

    from engines.render.scene import Gaussians

    g = torch.Generator().manual_seed(0)
    return Gaussians(torch.randn(5, 3, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, 3, generator=g) - 3,
                     torch.randn(5, generator=g), torch.randn(5, 1, 3, generator=g))


def make_samples(root):
    """``{kind name: path}`` for every kind of file a user may drop."""
    import nibabel as nib
    import nrrd
    import tifffile
    from safetensors.numpy import save_file

    from engines.codec.blockcodec import encode
    from engines.render.io import save_ply, save_splat

    root.mkdir(parents=True, exist_ok=True)
    s = {}
    s["ply"] = root / "scene.ply"
    save_ply(s["ply"], _scene())
    s["splat"] = root / "scene.splat"
    save_splat(s["splat"], _scene())
    s["nifti"] = root / "head.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 4, 3), np.int16), np.eye(4)), str(s["nifti"]))
    s["dicom file"] = _dicom_series(root / "series_a")[0]
    _dicom_series(root / "series_b")
    s["dicom folder"] = root / "series_b"
    s["nrrd"] = root / "vol.nrrd"
    nrrd.write(str(s["nrrd"]), np.zeros((5, 4, 3), np.int16))
    s["mhd"] = root / "vol.mhd"
    (root / "vol.raw").write_bytes(np.zeros(60, np.int16).tobytes())
    s["mhd"].write_text("ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementType = MET_SHORT\n"
                        "ElementDataFile = vol.raw\n")
    s["tiff stack"] = root / "stack.tif"
    tifffile.imwrite(s["tiff stack"], np.zeros((4, 8, 8), np.uint16))
    s["tiff image"] = root / "photo.tif"
    tifffile.imwrite(s["tiff image"], _image(), photometric="rgb")
    s["npy"] = root / "vol.npy"
    np.save(s["npy"], np.zeros((3, 4, 5), np.float32))
    s["png plain"] = root / "plain.png"
    Image.fromarray(_image()).save(s["png plain"])
    for panel in PANELS:
        s[f"png from {panel}"] = save_png(root / f"from_{panel}.png", _image(1),
                                          make_provenance(panel, "test", {}, device="cpu"))
    s["jpeg"] = root / "photo.jpg"
    Image.fromarray(_image()).save(s["jpeg"], quality=90)
    s["ssbc plain"] = root / "plain.ssbc"
    s["ssbc plain"].write_bytes(encode(_image(2, (16, 16, 3))).bitstream)
    data = encode(_image(2, (16, 16, 3))).bitstream
    s["ssbc with sidecar"] = save_with_sidecar(root / "coded.ssbc", lambda t: open(t, "wb").write(data),
                                               make_provenance("codec", "codec.block", {"quality": 40}))
    s["ply with sidecar"] = save_with_sidecar(root / "fitted.ply", lambda t: save_ply(t, _scene()),
                                              make_provenance("render", "engines.render.fit", {"steps": 20}))
    s["model folder"] = root / "tiny-model"
    s["model folder"].mkdir()
    (s["model folder"] / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    s["checkpoint"] = root / "model.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(s["checkpoint"]))
    s["posed views"] = root / "views"
    s["posed views"].mkdir()
    (s["posed views"] / "cameras.json").write_text("[]")
    s["unknown"] = root / "notes.docx"
    s["unknown"].write_bytes(b"PK\x03\x04 not a numpy archive")
    s["empty folder"] = root / "empty"
    s["empty folder"].mkdir()
    s.update(make_more_samples(root))
    return s


def make_more_samples(root):
    """The kinds added since the first routing matrix: newer scene, volume, image, codec, adapter,
    transfer-function and posed-view formats, and exported files with provenance."""
    import nibabel as nib
    import nrrd
    from safetensors.numpy import save_file

    from engines.codec.learned import compress
    from engines.codec.token_file import write_tokens
    from engines.render.formats.compressed_ply import save_compressed_ply
    from engines.render.formats.spz import save_spz
    from engines.volume.tf import default_tf, to_slicer_vp
    from engines.volume.tf_exchange import to_paraview, write_tf_file

    root.mkdir(parents=True, exist_ok=True)
    s = {"spz": root / "scene.spz", "ply compressed": root / "scene.compressed.ply"}
    save_spz(s["spz"], _scene())
    save_compressed_ply(s["ply compressed"], _scene())
    s["nifti plain"] = root / "plain.nii"
    nib.save(nib.Nifti1Image(np.zeros((5, 4, 3), np.int16), np.eye(4)), str(s["nifti plain"]))
    s["nrrd detached"] = root / "detached.nhdr"
    nrrd.write(str(s["nrrd detached"]), np.zeros((5, 4, 3), np.int16), detached_header=True)
    s["npz"] = root / "vol.npz"
    np.savez(s["npz"], volume=np.zeros((3, 4, 5), np.float32))
    s["mha"] = root / "local.mha"
    s["mha"].write_bytes(b"ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementType = MET_SHORT\n"
                         b"ElementDataFile = LOCAL\n" + np.zeros(60, np.int16).tobytes())
    s["webp"] = root / "photo.webp"
    Image.fromarray(_image()).save(s["webp"], quality=90)
    s["bmp"] = root / "photo.bmp"
    Image.fromarray(_image()).save(s["bmp"])
    s["gif"] = root / "anim.gif"
    Image.fromarray(_image()).save(s["gif"])
    s["sslc"] = root / "coded.sslc"
    s["sslc"].write_bytes(compress(_image(4, (32, 32, 3)), "hp-default", 60.0)["data"])
    s["sstk"] = root / "tokens.sstk"
    s["sstk"].write_bytes(write_tokens(np.zeros((3, 3), np.int64), 256, 8, "fsq", levels=[8, 8, 4], dim=3,
                                       downsample=4, image_shape=(12, 12), model_sha256="0" * 64))
    s["lora"] = root / "style.safetensors"
    save_file({"lora_unet_a_b.lora_down.weight": np.ones((2, 4), np.float32),
               "lora_unet_a_b.lora_up.weight": np.ones((4, 2), np.float32)}, str(s["lora"]))
    s["embedding"] = root / "token.safetensors"
    save_file({"emb_params": np.ones((1, 8), np.float32)}, str(s["embedding"]))
    s["controlnet file"] = root / "cn.safetensors"
    control = {"controlnet_cond_embedding.conv_in.weight": np.ones((4, 3, 3, 3), np.float32),
               "controlnet_mid_block.weight": np.ones((8, 8, 1, 1), np.float32)}
    save_file(control, str(s["controlnet file"]))
    s["controlnet folder"] = root / "cn-folder"
    s["controlnet folder"].mkdir()
    (s["controlnet folder"] / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    save_file(control, str(s["controlnet folder"] / "diffusion_pytorch_model.safetensors"))
    tf = default_tf(-1000.0, 2000.0)
    s["tf vp"], s["tf paraview json"] = root / "map.vp", root / "map.pv.json"
    s["tf vp"].write_text(to_slicer_vp(tf))
    s["tf paraview json"].write_text(json.dumps(to_paraview(tf)))
    s["tf json"], s["json not a tf"] = root / "mine.json", root / "notes.json"
    s["tf json"].write_text(tf.to_json())
    s["json not a tf"].write_text(json.dumps({"RGB": [0, 1]}))
    s["tf exported with sidecar"] = write_tf_file(tf, root / "exported.vp", fmt="vp")
    s["tf 1dt"] = root / "map.1dt"
    s["tf 1dt"].write_text("3\n0.0 0 0 0 0\n0.5 1 0.5 0.2 0.3\n1.0 1 1 1 0.9\n")
    s["tf itf"] = root / "map.itf"
    s["tf itf"].write_text('<?xml version="1.0" ?>\n<InviwoWorkspace version="3"><Points><Point><pos content="0.0" />'
                           '<rgba x="0" y="0" z="1" w="0" /></Point><Point><pos content="1.0" /><rgba x="1" y="0" z="0" '
                           'w="0.8" /></Point></Points></InviwoWorkspace>')
    s["transforms views"] = root / "ns"
    s["transforms views"].mkdir()
    (s["transforms views"] / "transforms.json").write_text(json.dumps({"frames": []}))
    s["colmap views"] = root / "colmap"
    (s["colmap views"] / "sparse" / "0").mkdir(parents=True)
    for name in ("cameras.bin", "images.bin"):
        (s["colmap views"] / "sparse" / "0" / name).write_bytes(bytes(8))
    s["unknown folder"] = root / "stuff"
    s["unknown folder"].mkdir()
    (s["unknown folder"] / "a.txt").write_text("x")
    s["spz with sidecar"] = save_with_sidecar(root / "fitted.spz", lambda t: save_spz(t, _scene()),
                                              make_provenance("render", "engines.render.fit", {"steps": 20}))
    import gzip

    from engines.volume.writers import nifti_bytes

    labels = gzip.compress(nifti_bytes(np.zeros((3, 4, 5), np.uint8)))
    s["nifti with sidecar"] = save_with_sidecar(root / "labels.nii.gz", lambda t: open(t, "wb").write(labels),
                                                make_provenance("volume", "engines.volume.classify", {"mode": "dvr"}))
    import torch

    from engines.codec.learned import save_model
    from engines.codec.learned_model import build_model

    s["codec model pt"] = save_model(build_model("hyperprior", 8, 8), root / "mine.pt", {"lambda": 0.01})
    s["embedding pt"] = root / "old.pt"
    torch.save({"string_to_param": {"*": torch.zeros(1, 8)}, "name": "old"}, s["embedding pt"])
    s["embedding bin (old pickle)"] = root / "legacy.bin"
    torch.save({"string_to_param": {"*": torch.zeros(1, 8)}}, s["embedding bin (old pickle)"],
               _use_new_zipfile_serialization=False)
    s["torchscript"] = root / "features.pt"
    torch.jit.save(torch.jit.script(torch.nn.Conv3d(1, 2, 1)), str(s["torchscript"]))
    s["png from A1111"] = root / "a1111.png"
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 16x16")
    Image.fromarray(_image()).save(s["png from A1111"], pnginfo=info)
    return s


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return make_samples(tmp_path_factory.mktemp("drops"))


IMAGE_PANELS = ["generate", "render", "codec"]
# what each kind must do: ("open", panel) whatever is active, ("active-or-ask", candidates),
# ("restore", panel, opens the file too), or ("unsupported",)
EXPECTED = {
    "ply": ("open", "render"), "splat": ("open", "render"), "nifti": ("open", "volume"),
    "dicom file": ("open", "volume"), "dicom folder": ("open", "volume"), "nrrd": ("open", "volume"),
    "mhd": ("open", "volume"), "tiff stack": ("open", "volume"), "tiff image": ("open", "codec"),
    "npy": ("open", "volume"), "png plain": ("active-or-ask", IMAGE_PANELS),
    "png from generate": ("restore", "generate", True), "png from render": ("restore", "render", True),
    "png from volume": ("restore", "volume", False), "png from codec": ("restore", "codec", True),
    "jpeg": ("active-or-ask", IMAGE_PANELS), "ssbc plain": ("open", "codec"),
    "ssbc with sidecar": ("restore", "codec", True), "ply with sidecar": ("restore", "render", True),
    "model folder": ("open", "generate"), "checkpoint": ("open", "generate"), "posed views": ("open", "render"),
    "unknown": ("unsupported",), "empty folder": ("unsupported",),
    # added since: newer formats, adapters, transfer functions, posed views, exports with provenance
    "spz": ("open", "render"), "ply compressed": ("open", "render"), "nifti plain": ("open", "volume"),
    "nrrd detached": ("open", "volume"), "npz": ("open", "volume"), "mha": ("open", "volume"),
    "webp": ("active-or-ask", ["generate", "codec"]), "bmp": ("active-or-ask", ["render", "codec"]), "gif": ("open", "codec"),
    "sslc": ("open", "codec"), "sstk": ("open", "codec"), "lora": ("open", "generate"),
    "embedding": ("open", "generate"), "controlnet file": ("open", "generate"),
    "controlnet folder": ("open", "generate"), "tf vp": ("open", "volume"), "tf itf": ("open", "volume"),
    "tf 1dt": ("open", "volume"), "tf paraview json": ("open", "volume"), "tf json": ("open", "volume"),
    "json not a tf": ("unsupported",), "transforms views": ("open", "render"),
    "colmap views": ("open", "render"), "unknown folder": ("unsupported",),
    "spz with sidecar": ("restore", "render", True), "nifti with sidecar": ("restore", "volume", True),
    "png from A1111": ("restore", "generate", True), "tf exported with sidecar": ("restore", "volume", True),
    "codec model pt": ("open", "codec"), "embedding pt": ("open", "generate"),
    "embedding bin (old pickle)": ("open", "generate"), "torchscript": ("open", "volume"),
}


@pytest.mark.parametrize("active", PANELS)
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_every_kind_dropped_on_every_panel(samples, kind, active):
    route = route_path(samples[kind], REAL, active=active)
    expected = EXPECTED[kind]
    if expected[0] == "open":
        assert (route.action, route.panel) == (OPEN, expected[1]), route
    elif expected[0] == "restore":
        assert (route.action, route.panel, route.open_file) == (RESTORE, *expected[1:]), route
        assert route.provenance["panel"] == expected[1]
    elif expected[0] == "active-or-ask":
        if active in expected[1]:
            assert (route.action, route.panel) == (OPEN, active), route
        else:
            assert route.action == ASK and route.candidates == expected[1], route
    else:
        assert route.action == UNSUPPORTED and samples[kind].name in route.message, route
        assert "file files" not in route.message and "folder files" not in route.message


def test_controlnet_folder_with_fp16_weights_or_a_controlnet_subfolder(samples, tmp_path):
    """The weight names and the layout the ControlNet loader reads are sniffed as a ControlNet folder."""
    import shutil

    sub = tmp_path / "pack" / "controlnet"
    shutil.copytree(samples["controlnet folder"], sub)
    (sub / "diffusion_pytorch_model.safetensors").rename(sub / "diffusion_pytorch_model.fp16.safetensors")
    assert fk.sniff(sub) == fk.sniff(sub.parent) == fk.CONTROLNET_FOLDER
    (sub / "config.json").write_text('{"_class_name": "UNet2DConditionModel"}')
    assert fk.sniff(sub) != fk.CONTROLNET_FOLDER


def test_sniffed_kinds(samples):
    assert fk.sniff(samples["dicom folder"]) == fk.DICOM_FOLDER
    assert fk.sniff(samples["model folder"]) == fk.MODEL_FOLDER
    assert fk.sniff(samples["tiff stack"]) == fk.TIFF_STACK and fk.sniff(samples["tiff image"]) == fk.TIFF_IMAGE
    assert fk.sniff(samples["nifti"]) == fk.NIFTI and fk.sniff(samples["mhd"]) == fk.METAIMAGE
    assert fk.sniff(samples["empty folder"]) == fk.EMPTY_FOLDER and fk.sniff(samples["unknown"]) == fk.UNKNOWN
    assert fk.sniff(samples["controlnet folder"]) == fk.CONTROLNET_FOLDER and fk.sniff(samples["sslc"]) == fk.SSLC
    assert fk.sniff(samples["sstk"]) == fk.SSTK and fk.sniff(samples["spz"]) == fk.SPZ and fk.sniff(samples["gif"]) == fk.GIF
    assert fk.sniff(samples["codec model pt"]) == fk.CODEC_MODEL and fk.sniff(samples["embedding pt"]) == fk.EMBEDDING
    assert fk.sniff(samples["torchscript"]) == fk.TORCHSCRIPT
    assert fk.sniff(samples["tf json"]) == fk.sniff(samples["tf paraview json"]) == fk.TRANSFER_FUNCTION
    assert fk.sniff(samples["json not a tf"]) == fk.UNKNOWN
    assert fk.sniff(samples["colmap views"]) == fk.sniff(samples["transforms views"]) == fk.POSED_VIEWS


def test_every_kind_is_in_the_matrix(samples):
    assert sorted(samples) == sorted(EXPECTED)


def test_token_file_goes_to_codec_whatever_panel_is_active(samples):
    for active in ("generate", "render", "volume", "codec"):
        route = route_path(samples["sstk"], REAL, active)
        assert (route.action, route.panel) == ("open", "codec")


def test_routing_builds_no_panel(samples, monkeypatch):
    from panels.base import Panel

    def refuse(*args, **kwargs):
        raise AssertionError("routing must not build a panel")

    monkeypatch.setattr(Panel, "__init__", refuse)
    assert route_path(samples["dicom folder"], REAL, active="generate").panel == "volume"


def test_corrupt_file_with_a_known_suffix_goes_to_its_panel_for_a_clear_error(tmp_path):
    broken = tmp_path / "broken.nii"
    broken.write_bytes(b"\0" * 10)
    route = route_path(broken, REAL, active="codec")
    assert (route.action, route.panel) == (OPEN, "volume")


def test_messages_without_a_suffix_read_well(tmp_path):
    readme = tmp_path / "README"
    readme.write_text("hello")
    route = route_path(readme, REAL)
    assert route.message == "README: no panel opens this file (its type is not recognised)"
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    assert "no panel opens this folder" in route_path(folder, REAL).message
    assert route_path(tmp_path / "gone", REAL).message == "gone: no such file or folder"


# -- the generic rules, with toy acceptors ---------------------------------------------------------
@pytest.fixture
def files(tmp_path):
    made = {}
    made["png"] = tmp_path / "photo.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(made["png"])
    made["doc"] = tmp_path / "notes.docx"
    made["doc"].write_bytes(b"PK")
    made["corrupt"] = tmp_path / "broken.png"
    made["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    made["studio"] = tmp_path / "restored.png"
    save_png(made["studio"], np.zeros((4, 4, 3), np.uint8),
             make_provenance("codec", "block-codec", {"quality": 42}, device="cpu"))
    return made


def test_ambiguous_type_goes_to_active_panel_or_asks(files):
    assert route_path(files["png"], TOY, active="codec").panel == "codec"
    assert route_path(files["png"], TOY, active="generate").panel == "generate"
    route = route_path(files["png"], TOY, active="render")
    assert route.action == ASK and route.candidates == ["generate", "codec"]


def test_unsupported_type(files):
    route = route_path(files["doc"], TOY, active="generate")
    assert route.action == UNSUPPORTED and route.message == "notes.docx: no panel opens .docx files"


def test_corrupt_png_is_an_error(files):
    route = route_path(files["corrupt"], TOY, active="generate")
    assert route.action == ERROR and route.message.startswith("broken.png: it is not a readable image")


def test_studio_png_restores_its_panel(files):
    route = route_path(files["studio"], TOY, active="render")
    assert route.action == RESTORE and route.panel == "codec"
    assert route.provenance["parameters"] == {"quality": 42}


@pytest.mark.parametrize("chunk, reason", [
    ("[1, 2, 3]", "must be a JSON object"),
    ("[" * 5000 + "]" * 5000, "nested more than"),
    (json.dumps({"panel": "codec", "parameters": {"a": [[[[[[[[[[[[[[1]]]]]]]]]]]]]]}}), "nested more than"),
    (json.dumps({"panel": "codec", "parameters": [1]}), "parameters"),
    (json.dumps({"panel": 7, "parameters": {}}), "panel"),
    ("{not json", "not valid JSON"),
    ('{"panel": "codec", "parameters": {"quality": NaN}}', "non-finite number"),
    ('{"panel": "codec", "parameters": {"view": [0, -Infinity]}}', "non-finite number"),
])
def test_malformed_chunk_is_an_error_not_a_silent_skip(tmp_path, chunk, reason):
    from PIL import PngImagePlugin

    path = tmp_path / "hostile.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("spectra-studio", chunk)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path, pnginfo=info)
    route = route_path(path, TOY, active="codec")
    assert route.action == ERROR and "hostile.png" in route.message and reason in route.message, route.message


def test_broken_acceptor_is_skipped(files):
    def explode(path, kind):
        raise RuntimeError("bug")

    route = route_path(files["doc"], [("bad", explode), ("other", by_suffix(".docx"))])
    assert route.panel == "other"


def test_unreadable_png_message_reads_as_a_sentence(tmp_path):
    """'Cannot open <message>' in the window: the name, a colon, the reason; no Pillow text or full path."""
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    route = route_path(str(empty), TOY, active="generate")
    assert route.action == ERROR
    assert route.message == "empty.png: it is not a readable image (unknown or damaged format)"


def test_nan_passes_a_range_schema_so_parameters_refuse_it():
    """jsonschema's minimum/maximum let NaN through (every comparison is false): checked separately."""
    from engines.provenance import ProvenanceError, number, validate_parameters

    schema = {"type": "object", "properties": {"step": number(0.1, 8.0)}}
    assert validate_parameters({"step": 1.0}, schema, "volume") == {"step": 1.0}
    with pytest.raises(ProvenanceError, match="non-finite number"):
        validate_parameters({"step": float("nan")}, schema, "volume")
