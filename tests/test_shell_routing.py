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


def test_sniffed_kinds(samples):
    assert fk.sniff(samples["dicom folder"]) == fk.DICOM_FOLDER
    assert fk.sniff(samples["model folder"]) == fk.MODEL_FOLDER
    assert fk.sniff(samples["tiff stack"]) == fk.TIFF_STACK and fk.sniff(samples["tiff image"]) == fk.TIFF_IMAGE
    assert fk.sniff(samples["nifti"]) == fk.NIFTI and fk.sniff(samples["mhd"]) == fk.METAIMAGE
    assert fk.sniff(samples["empty folder"]) == fk.EMPTY_FOLDER and fk.sniff(samples["unknown"]) == fk.UNKNOWN


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
    assert route.action == ERROR and "broken.png is not a readable image" in route.message


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
