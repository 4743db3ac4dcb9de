"""Fuzz targets for the other files a user opens: posed-view folders for ``render fit --views``
(our ``cameras.json``, ``transforms.json``, COLMAP binary and text models), PNGs with A1111 /
ComfyUI / InvokeAI text chunks, provenance sidecars (``<file>.json``), volume paint strokes
(``volume classify --strokes``) and single-page TIFF, WebP and BMP images (Codec panel).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from tests.fuzz.mutations import (
    BAD_JSON_VALUES,
    mutate_bytes,
    mutate_json_text,
    pick,
    replace_with_special,
    write_json_mutation,
)


def _value_errors():
    return (ValueError,)


# -- posed views ---------------------------------------------------------------------------------------------
def _views():
    """Three small views of a sphere scene and their cameras (pinhole, 24x18 px)."""
    from engines.render.camera import fibonacci_cameras

    cams = fibonacci_cameras(3, 3.5, width=24, height=18)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (18, 24, 3), dtype=np.uint8) for _ in cams]
    return cams, images


def _save_images(folder: Path, names, images) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images):
        Image.fromarray(image).save(folder / name)


def _qvec(view: np.ndarray) -> list[float]:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(view[:3, :3]).as_quat()
    return [w, x, y, z]


def _build_cameras_json(folder: Path) -> Path:
    from engines.render.synthetic import save_views

    cams, images = _views()
    return save_views(folder / "views", [im / 255.0 for im in images], cams)


def _build_transforms(folder: Path) -> Path:
    cams, images = _views()
    names = [f"f{i}.png" for i in range(len(cams))]
    root = folder / "ns"
    _save_images(root / "images", names, images)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    frames = [{"file_path": f"images/{n}", "transform_matrix": (np.linalg.inv(c.viewmat.numpy()) @ flip).tolist(),
               "fl_x": c.K[0, 0].item(), "fl_y": c.K[1, 1].item()} for n, c in zip(names, cams)]
    meta = {"camera_model": "OPENCV", "cx": 12.0, "cy": 9.0, "w": 24, "h": 18, "k1": 0.0, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def _mutate_json_views(rng, folder: Path, root: Path) -> str:
    meta = root / ("cameras.json" if (root / "cameras.json").exists() else "transforms.json")
    mode = rng.random()
    if mode < 0.6:
        what = write_json_mutation(rng, meta)
        if rng.random() < 0.2:
            what += "; " + write_json_mutation(rng, meta)
        return what
    images = sorted(p for p in root.rglob("*.png"))
    if mode < 0.75:
        return replace_with_special(rng, pick(rng, [meta, *images]))
    return mutate_bytes(rng, pick(rng, [meta, *images]), header_bias=64)


_COLMAP_BIN = {  # file -> (offset, format) of header fields worth forging
    "cameras.bin": [(0, "<Q"), (8, "<i"), (12, "<i"), (16, "<Q"), (24, "<Q"), (32, "<d")],
    "images.bin": [(0, "<Q"), (8, "<i"), (12, "<d"), (68, "<i")],
    "points3D.bin": [(0, "<Q"), (8, "<Q"), (16, "<d"), (43, "<d"), (51, "<Q")],
}


def _build_colmap(folder: Path) -> Path:
    cams, images = _views()
    names = [f"v{i}.png" for i in range(len(cams))]
    root = folder / "colmap"
    _save_images(root / "images", names, images)
    model = root / "sparse" / "0"
    model.mkdir(parents=True)
    out = struct.pack("<Q", len(cams))
    for i, cam in enumerate(cams):
        K = cam.K.numpy()
        out += struct.pack("<iiQQ", i + 1, 1, cam.width, cam.height) + struct.pack("<4d", K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    (model / "cameras.bin").write_bytes(out)
    out = struct.pack("<Q", len(cams))
    for i, (cam, name) in enumerate(zip(cams, names)):
        view = cam.viewmat.numpy()
        out += struct.pack("<idddddddi", i + 1, *_qvec(view), *view[:3, 3], i + 1) + name.encode() + b"\x00"
        out += struct.pack("<Q", 1) + struct.pack("<ddq", 1.5, 2.5, 0)
    (model / "images.bin").write_bytes(out)
    points = np.random.default_rng(1).normal(size=(6, 3))
    out = struct.pack("<Q", len(points))
    for j, p in enumerate(points):
        out += struct.pack("<QdddBBBd", j, *p, 200, 100, 50, 0.5) + struct.pack("<Q", 1) + struct.pack("<ii", 1, 0)
    (model / "points3D.bin").write_bytes(out)
    return root


def _bin_to_text(model: Path) -> None:
    """Replace the binary COLMAP model by the same model as text files (the loader reads either)."""
    cams, _images = _views()
    for name in _COLMAP_BIN:
        (model / name).unlink()
    lines = [f"{i + 1} SIMPLE_RADIAL {c.width} {c.height} {c.K[0, 0].item()!r} {c.K[0, 2].item()!r} "
             f"{c.K[1, 2].item()!r} 0.01" for i, c in enumerate(cams)]
    (model / "cameras.txt").write_text("# cameras\n" + "\n".join(lines) + "\n")
    lines = ["# images"]
    for i, cam in enumerate(cams):
        view = cam.viewmat.numpy()
        lines.append(f"{i + 1} " + " ".join(repr(float(v)) for v in [*_qvec(view), *view[:3, 3]]) + f" {i + 1} v{i}.png")
        lines.append("1.5 2.5 -1")
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    (model / "points3D.txt").write_text("# points\n0 0.1 0.2 0.3 200 100 50 0.5 1 0\n1 1.0 -1.0 0.5 10 20 30 0.5 1 0\n")


def _mutate_colmap(rng, folder: Path, root: Path) -> str:
    model = root / "sparse" / "0"
    if rng.random() < 0.3:
        _bin_to_text(model)
        victim = model / pick(rng, ["cameras.txt", "images.txt", "points3D.txt"])
        lines = victim.read_text().splitlines()
        i = int(rng.integers(1, len(lines)))
        tokens = lines[i].split()
        if tokens and rng.random() < 0.7:
            j = int(rng.integers(len(tokens)))
            tokens[j] = pick(rng, ["nan", "inf", "-1", "0", "99999999999", "x", "1e400", "4294967297", ""])
            lines[i] = " ".join(tokens)
        else:
            lines[i] = lines[i][: int(rng.integers(0, len(lines[i]) + 1))]
        victim.write_text("\n".join(lines) + "\n")
        return f"text model: {victim.name} line {i} -> {lines[i][:50]!r}"
    name = pick(rng, sorted(_COLMAP_BIN))
    path = model / name
    if rng.random() < 0.5:
        data = bytearray(path.read_bytes())
        offset, fmt = pick(rng, _COLMAP_BIN[name])
        if fmt == "<d":
            value = pick(rng, [float("nan"), float("inf"), -1.0, 0.0, 1e308])
        elif fmt == "<i":
            value = pick(rng, [0, -1, 2**31 - 1, 99, 3])
        else:
            value = pick(rng, [0, 2**63 - 1, 2**32, 10**9, 100000, 7])
        return f"{name} " + _pack_field(path, data, offset, fmt, value)
    return _special_or_bytes(rng, path, 0.1, 16)


def _pack_field(path: Path, data: bytearray, offset: int, fmt: str, value) -> str:
    """Write ``value`` at ``offset`` of ``data`` into ``path``; returns a description."""
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))
    return f"@{offset} = {value}"


def _special_or_bytes(rng, path: Path, special: float, header_bias: int) -> str:
    """``path`` replaced by a special file (probability ``special``) or its bytes corrupted."""
    if rng.random() < special:
        return replace_with_special(rng, path)
    return mutate_bytes(rng, path, header_bias=header_bias)


def _load_views(root: Path):
    from engines.render.formats.posed import load_posed_views

    views = load_posed_views(root, max_side=64)
    return views.kind, len(views.images)


# -- PNG text chunks of other tools (A1111, ComfyUI, InvokeAI) --------------------------------------------------
_A1111 = ("a red cat, oil painting\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
          "CFG scale: 7, Seed: 1234, Size: 512x768, Model: sd15, Denoising strength: 0.5, Hires upscale: 2, "
          'ControlNet 0: "Module: canny, Model: cn [abc], Weight: 0.8, Guidance Start: 0, Guidance End: 0.9"')
_COMFY = {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 12, "cfg": 6.5, "sampler_name": "euler",
                                                     "scheduler": "normal", "denoise": 1.0, "positive": ["6", 0],
                                                     "negative": ["7", 0], "latent_image": ["5", 0]}},
          "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
          "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house"}},
          "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog"}},
          "9": {"class_type": "ControlNetApplyAdvanced", "inputs": {"strength": 0.7, "start_percent": 0.0,
                                                                    "end_percent": 0.8}}}
_INVOKE = {"positive_prompt": "a tree", "negative_prompt": "", "seed": 9, "steps": 30, "cfg_scale": 5.0, "width": 512,
           "height": 512, "scheduler": "euler_a", "model": {"name": "sd15"}, "strength": 0.6}


def _foreign_png(path: Path, key: str, text: str) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, text)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, pnginfo=info)


def _build_foreign_png(folder: Path) -> Path:
    path = folder / "a1111.png"
    _foreign_png(path, "parameters", _A1111)
    return path


def _mutate_foreign_png(rng, folder: Path, path: Path) -> str:
    tool = pick(rng, ["parameters", "prompt", "invokeai_metadata"])
    if tool == "parameters":
        text = _A1111
        mode = rng.random()
        if mode < 0.5:
            key = pick(rng, ["Steps", "CFG scale", "Seed", "Size", "Denoising strength", "Hires upscale", "Sampler",
                             "Schedule type", "ControlNet 0"])
            bad = str(pick(rng, [*BAD_JSON_VALUES, "1e400", "512x", "x768", "99999999999x99999999999", '"', "-5"]))
            start = text.find(key + ": ")
            end = text.find(", ", start + len(key) + 2) if key != "ControlNet 0" else len(text)
            text = text[:start] + f"{key}: {bad}" + text[end if end > 0 else len(text):]
            what = f"A1111 {key}: {bad!r}"
        elif mode < 0.8:
            cut = int(rng.integers(0, len(text)))
            text, what = text[:cut] + pick(rng, ["", "\n", ", ", ": ", "\x00", "é" * 3]) + text[cut + 1:], f"A1111 edit at {cut}"
        else:
            text, what = "Steps: 3, " * int(rng.integers(1, 50000)), "A1111 repeated keys"
    else:
        text, what = mutate_json_text(rng, _COMFY if tool == "prompt" else _INVOKE)
        what = f"{tool}: {what}"
    _foreign_png(path, tool, text)
    if rng.random() < 0.1:
        what += "; " + mutate_bytes(rng, path, header_bias=120)
    return what


# -- provenance sidecar of an exported file --------------------------------------------------------------------------
def _build_sidecar(folder: Path) -> Path:
    from studio.export import make_provenance, save_with_sidecar

    record = make_provenance("render", "engines.render.fit", {"steps": 20, "point_size": 1.5, "seed": 3}, seed=3)
    return save_with_sidecar(folder / "fitted.ply", lambda t: Path(t).write_bytes(b"ply\nformat ascii 1.0\n"), record)


def _mutate_sidecar(rng, folder: Path, path: Path) -> str:
    from engines.atomic_files import sidecar_path

    side = sidecar_path(path)
    mode = rng.random()
    if mode < 0.7:
        return write_json_mutation(rng, side)
    if mode < 0.8:
        return replace_with_special(rng, side)
    return mutate_bytes(rng, side)


# -- volume paint strokes (volume classify --strokes) -------------------------------------------------------------------
def _build_strokes(folder: Path) -> Path:
    path = folder / "strokes.json"
    path.write_text(json.dumps({"classes": [{"name": "bone", "color": [1, 1, 0.8], "opacity": 0.9}, "air"],
                                "strokes": [{"class": "bone", "voxels": [[1, 2, 3], [2, 2, 3]]},
                                            {"class": 1, "voxels": [[0, 0, 0]]}]}))
    return path


def _mutate_strokes(rng, folder: Path, path: Path) -> str:
    if rng.random() < 0.8:
        return write_json_mutation(rng, path)
    if rng.random() < 0.3:
        return replace_with_special(rng, path)
    return mutate_bytes(rng, path)


def _load_strokes(path: Path):
    from engines.volume.classify import load_strokes

    return load_strokes(path).annotated_classes()


# -- single-page TIFF image (Codec panel) ---------------------------------------------------------------------------
def _build_tiff_image(folder: Path) -> Path:
    import tifffile

    from tests.fuzz.targets import _image_pixels

    path = folder / "photo.tif"
    tifffile.imwrite(path, _image_pixels(), photometric="rgb")
    return path


def _image_builder(name: str, **options):
    """``build(folder)`` saving the fuzz sample pixels as ``name`` (Pillow, with ``options``)."""
    def build(folder: Path) -> Path:
        from PIL import Image

        from tests.fuzz.targets import _image_pixels

        path = folder / name
        Image.fromarray(_image_pixels()).save(path, **options)
        return path

    return build


_BMP_FIELDS = [(2, "<I"), (10, "<I"), (14, "<I"), (18, "<i"), (22, "<i"), (26, "<H"), (28, "<H"), (30, "<I"), (34, "<I")]


def _mutate_small_image(rng, folder: Path, path: Path) -> str:
    """Header fields (BMP: size, offset, width, height, planes, bits, compression) or bytes."""
    if path.suffix == ".bmp" and rng.random() < 0.5:
        data = bytearray(path.read_bytes())
        offset, fmt = pick(rng, _BMP_FIELDS)
        value = pick(rng, [0, 1, -1, 65535, 2**31 - 1, 100000, 32, 24, 3, 1 << 20])
        value = value & 0xFFFF if fmt == "<H" else value if fmt == "<i" else value & 0xFFFFFFFF
        return "header " + _pack_field(path, data, offset, fmt, value)
    return _special_or_bytes(rng, path, 0.05, 64)


def _load_image_errors():
    """:func:`engines.codec.images.load_image`'s documented errors: ValueError (ImageFileError and
    "is a folder") and FileNotFoundError for a missing file."""
    return (ValueError, FileNotFoundError)


def file_targets(target_class) -> list:
    """The targets of this module (``target_class`` is :class:`tests.fuzz.targets.Target`; the TIFF
    mutation, the image loader's errors and the provenance loader come from there)."""
    from tests.fuzz.targets import (
        _image_errors,
        _load_image,
        _load_provenance,
        _mutate_tiff,
        _provenance_errors,
    )

    return [
        target_class("views-cameras-json", _build_cameras_json, _mutate_json_views, _load_views, _value_errors, "views"),
        target_class("views-transforms", _build_transforms, _mutate_json_views, _load_views, _value_errors, "views"),
        target_class("views-colmap", _build_colmap, _mutate_colmap, _load_views, _value_errors, "views"),
        target_class("png-foreign", _build_foreign_png, _mutate_foreign_png, _load_provenance, _provenance_errors,
                     "images"),
        target_class("sidecar", _build_sidecar, _mutate_sidecar, _load_provenance, _provenance_errors, "images"),
        target_class("strokes", _build_strokes, _mutate_strokes, _load_strokes, _value_errors, "volumes"),
        target_class("tiff-image", _build_tiff_image, _mutate_tiff, _load_image, _image_errors, "images"),
        target_class("webp", _image_builder("photo.webp", quality=80), _mutate_small_image, _load_image, _load_image_errors, "images"),
        target_class("bmp", _image_builder("photo.bmp"), _mutate_small_image, _load_image, _load_image_errors, "images"),
    ]
