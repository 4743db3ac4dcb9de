"""3D Gaussian Splatting scene files.

``.ply`` follows the INRIA reference (``gaussian_model.py::save_ply``): binary little-endian,
one ``vertex`` element, float32 properties in the order
``x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3``, values stored
pre-activation (opacity logit, log scale, unnormalised wxyz quaternion), ``f_rest`` channel-major
(all R coefficients of bases 1..K-1, then G, then B). Reading goes by property name, so files
without normals (gsplat) or with extra properties (Mip-Splatting ``filter_3D``) load too.

``.splat`` (antimatter15): 32 bytes per splat, position f32x3, linear scale f32x3, RGBA u8x4,
quaternion u8x4 ((q * 128) + 128, w x y z). DC colour only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from engines.limits import check_decoded_size
from engines.render.scene import SH_C0, Gaussians, sh_degree_from_k

__all__ = ["SceneFileError", "load_ply", "load_scene", "load_splat", "ply_attribute_names", "save_ply", "save_splat"]


class SceneFileError(ValueError):
    """A scene file is missing, corrupt, or not a Gaussian-splat file."""


def ply_attribute_names(sh_degree: int, normals: bool = True) -> list[str]:
    """Property names in the reference order for ``sh_degree`` (0..3)."""
    k = (sh_degree + 1) ** 2
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else [])
    names += [f"f_dc_{i}" for i in range(3)] + [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    return names


def _numeric_suffix_sorted(names: list[str], prefix: str) -> list[str]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    found = [(int(m.group(1)), n) for n in names if (m := pattern.match(n))]
    return [n for _, n in sorted(found)]


def save_ply(path: str | os.PathLike, scene: Gaussians, normals: bool = True) -> None:
    """Write ``scene`` as a 3DGS ``.ply`` in the reference layout (float32, little-endian)."""
    from plyfile import PlyData, PlyElement

    g = scene.detach()
    n, k = len(g), g.sh.shape[1]
    f_rest = g.sh[:, 1:].transpose(1, 2).reshape(n, 3 * (k - 1))  # channel-major
    columns = [g.means]
    if normals:
        columns.append(torch.zeros(n, 3))
    columns += [g.sh[:, 0], f_rest, g.opacity_logits[:, None], g.log_scales, g.quats]
    data = torch.cat(columns, 1).numpy().astype("<f4")
    names = ply_attribute_names(g.sh_degree, normals)
    vertices = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        vertices[name] = data[:, i]
    PlyData([PlyElement.describe(vertices, "vertex")], text=False, byte_order="<").write(os.fspath(path))


def load_ply(path: str | os.PathLike) -> Gaussians:
    """Read a 3DGS ``.ply``. Raises :class:`SceneFileError` for missing, corrupt or foreign files."""
    from plyfile import PlyData

    path = _scene_file(path)
    read_ply_header(path)
    try:
        ply = PlyData.read(os.fspath(path))
    except Exception as exc:
        raise SceneFileError(f"{path.name} is a corrupt or truncated PLY file: {_first_line(exc)}") from exc
    if "vertex" not in [e.name for e in ply.elements]:
        raise SceneFileError(f"{path.name} has no 'vertex' element")
    names = [p.name for p in ply["vertex"].properties]
    if any(e.name == "chunk" for e in ply.elements):
        from engines.render.formats.compressed_ply import load_compressed_ply

        return load_compressed_ply(path)
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    missing = [r for r in required if r not in names]
    scale_names = _numeric_suffix_sorted(names, "scale_")
    rot_names = _numeric_suffix_sorted(names, "rot_")
    if missing or len(scale_names) != 3 or len(rot_names) != 4:
        what = ", ".join(missing) or "scale_0..2 / rot_0..3"
        raise SceneFileError(f"{path.name} is a PLY file but not a Gaussian-splat scene (missing {what}); "
                             "a mesh or point cloud cannot be opened here")
    vertex = ply["vertex"].data
    try:
        col = lambda name: np.asarray(vertex[name], dtype=np.float32)
        rest_names = _numeric_suffix_sorted(names, "f_rest_")
        n = len(vertex)
        k = len(rest_names) // 3 + 1
        if len(rest_names) % 3:
            raise SceneFileError(f"{path.name}: {len(rest_names)} f_rest properties is not a multiple of 3")
        try:
            sh_degree_from_k(k)
        except ValueError as exc:
            raise SceneFileError(f"{path.name}: {len(rest_names)} f_rest properties is not an SH degree 0-3 layout") from exc
        means = np.stack([col("x"), col("y"), col("z")], 1)
        dc = np.stack([col(f"f_dc_{i}") for i in range(3)], 1)
        rest = np.stack([col(r) for r in rest_names], 1) if rest_names else np.zeros((n, 0), np.float32)
        rest = rest.reshape(n, 3, k - 1).transpose(0, 2, 1)
        sh = np.concatenate([dc[:, None, :], rest], 1)
        scales = np.stack([col(s) for s in scale_names], 1)
        quats = np.stack([col(r) for r in rot_names], 1)
        opacity = col("opacity")
    except (ValueError, KeyError) as exc:
        if isinstance(exc, SceneFileError):
            raise
        raise SceneFileError(f"{path.name}: unreadable vertex data ({exc})") from exc
    known = set(["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
                + rest_names + scale_names + rot_names)
    extra = {name: col(name) for name in names if name not in known}
    for label, array in (("positions", means), ("scales", scales), ("rotations", quats), ("opacity", opacity),
                         ("colours", sh)):
        if not np.all(np.isfinite(array)):
            raise SceneFileError(f"{path.name} contains NaN or infinite {label}")
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return Gaussians(t(means), t(quats), t(scales), t(opacity), t(sh), extra)


def read_ply_header(path: Path):
    """The parsed header of a PLY file, after checking its element sizes against the file size and the
    decoded-size limit (SceneFileError otherwise)."""
    from plyfile import PlyData

    with open(path, "rb") as handle:
        if handle.read(3) != b"ply":
            raise SceneFileError(f"{path.name} is not a PLY file (no 'ply' header)")
        handle.seek(0)
        try:
            header = PlyData._parse_header(handle)
        except Exception as exc:
            raise SceneFileError(f"{path.name} has a corrupt PLY header: {_first_line(exc)}") from exc
        _check_ply_sizes(header, os.fstat(handle.fileno()).st_size - handle.tell(), path.name)
    return header


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"


def _scene_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise SceneFileError(f"{path} does not exist")
    if not path.is_file():
        raise SceneFileError(f"{path.name} is not a regular file")
    return path


def _check_ply_sizes(header, data_bytes: int, name: str) -> None:
    """Refuse element counts the file cannot hold or whose arrays exceed the decoded-size limit,
    from the header alone (plyfile allocates ``count`` rows before reading)."""
    from plyfile import PlyListProperty

    decoded = 0
    minimum = 0
    for element in header.elements:
        count = int(element.count)
        if count < 0:
            raise SceneFileError(f"{name}: element '{element.name}' has a negative count")
        if element.name == "vertex" and any(isinstance(p, PlyListProperty) for p in element.properties):
            raise SceneFileError(f"{name}: vertex list properties are not a Gaussian-splat layout")
        row = 0
        for prop in element.properties:
            if isinstance(prop, PlyListProperty):
                row += np.dtype(prop.list_dtype()[0]).itemsize if not header.text else 2
            else:
                row += np.dtype(prop.val_dtype).itemsize if not header.text else 2
        minimum += count * max(row, 1)
        decoded += count * max(np.dtype(element.dtype()).itemsize, 1)
    if minimum > data_bytes + (1 if header.text else 0):
        raise SceneFileError(f"{name} is truncated: its header announces at least {minimum} bytes of data, "
                             f"the file holds {max(data_bytes, 0)}")
    check_decoded_size(decoded, f"{name} (PLY elements)", SceneFileError)


def save_splat(path: str | os.PathLike, scene: Gaussians) -> None:
    """Write the antimatter15 ``.splat`` layout (sorted by exp(sum log-scale) * opacity, descending)."""
    g = scene.detach()
    order = torch.argsort(-(g.log_scales.sum(1).exp() * g.opacities)).numpy()
    n = len(g)
    record = np.zeros(n, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    record["pos"] = g.means.numpy()[order]
    record["scale"] = g.scales.numpy()[order]
    rgba = np.concatenate([(0.5 + SH_C0 * g.sh[:, 0]).numpy(), g.opacities.numpy()[:, None]], 1)
    record["rgba"] = np.clip(rgba[order] * 255, 0, 255).astype(np.uint8)
    q = torch.nn.functional.normalize(g.quats, dim=1).numpy()[order]
    record["rot"] = np.clip(q * 128 + 128, 0, 255).astype(np.uint8)
    with open(path, "wb") as handle:
        handle.write(record.tobytes())


def load_splat(path: str | os.PathLike) -> Gaussians:
    """Read a ``.splat`` file into pre-activation Gaussians (SH degree 0)."""
    path = _scene_file(path)
    size = path.stat().st_size
    if size == 0 or size % 32:
        raise SceneFileError(f"{path.name} is not a .splat file (size {size} is not a multiple of 32 bytes)")
    check_decoded_size(size // 32 * 14 * 8, f"{path.name} ({size // 32} splats)", SceneFileError)
    raw = path.read_bytes()
    record = np.frombuffer(raw, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    pos = record["pos"].astype(np.float32)
    scale = record["scale"].astype(np.float64)
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(scale))) or np.any(scale <= 0):
        raise SceneFileError(f"{path.name} is not a valid .splat file (non-finite positions or non-positive scales)")
    rgba = record["rgba"].astype(np.float64) / 255.0
    alpha = np.clip(rgba[:, 3], 0.5 / 255, 1 - 0.5 / 255)
    quats = (record["rot"].astype(np.float64) - 128.0) / 128.0
    quats[np.linalg.norm(quats, axis=1) < 1e-6] = (1.0, 0.0, 0.0, 0.0)
    sh = ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return Gaussians(t(pos), t(quats), t(np.log(scale)), t(np.log(alpha / (1 - alpha))), t(sh))


def load_scene(path: str | os.PathLike) -> Gaussians:
    """Load a ``.ply`` (3DGS or SuperSplat compressed), ``.splat`` or ``.spz`` scene by suffix
    (SceneFileError for anything else)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        from engines.render.formats.compressed_ply import is_compressed_ply, load_compressed_ply

        path = _scene_file(path)  # before sniffing: a FIFO or device would block the open

        return load_compressed_ply(path) if is_compressed_ply(path) else load_ply(path)
    if suffix == ".splat":
        return load_splat(path)
    if suffix == ".spz":
        from engines.render.formats.spz import load_spz

        return load_spz(path)
    raise SceneFileError(f"{Path(path).name}: unsupported scene format {suffix!r} (use .ply, .splat or .spz)")
