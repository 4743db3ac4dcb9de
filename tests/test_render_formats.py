"""Scene formats: SuperSplat compressed PLY and Niantic SPZ.

Fixtures are written byte by byte from the public descriptions (struct/numpy, not our writers);
round trips go through our writers; bad files give one clear error (CLI: exit 2, nothing written).
"""

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from engines.render.formats import save_scene
from engines.render.io import SceneFileError, load_scene
from engines.render.rasterize import rasterize_scene
from engines.render.scene import SH_C0
from engines.render.synthetic import sphere_scene

BOUNDS = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y", "min_scale_z",
          "max_scale_x", "max_scale_y", "max_scale_z", "min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]


def _compressed_ply_bytes(chunk_count=1, vertices=None, sh=None, columns=18):
    """A compressed PLY written from the splat-transform description."""
    head = ["ply", "format binary_little_endian 1.0", f"element chunk {chunk_count}"]
    head += [f"property float {name}" for name in BOUNDS[:columns]]
    head += [f"element vertex {len(vertices)}"]
    head += [f"property uint {name}" for name in ("packed_position", "packed_rotation", "packed_scale",
                                                  "packed_color")]
    if sh is not None:
        head += [f"element sh {len(sh)}"] + [f"property uchar f_rest_{i}" for i in range(len(sh[0]))]
    head += ["end_header"]
    body = struct.pack("<18f", 0, 0, 0, 2, 4, 8, -3, -3, -3, 1, 1, 1, 0.2, 0.0, 0.0, 0.6, 1.0, 1.0)[:4 * columns]
    body *= chunk_count
    body += b"".join(struct.pack("<4I", *v) for v in vertices)
    if sh is not None:
        body += b"".join(bytes(row) for row in sh)
    return ("\n".join(head) + "\n").encode() + body


def _rotation_smallest_three(q_wxyz):
    """splat-transform rotation packing, from the description (independent of our writer)."""
    q = np.asarray(q_wxyz, float) / np.linalg.norm(q_wxyz)
    big = int(np.argmax(np.abs(q)))
    if q[big] < 0:
        q = -q
    word = big << 30
    for slot, i in enumerate(j for j in range(4) if j != big):
        word |= math.floor((q[i] * math.sqrt(2) / 2 + 0.5) * 1023 + 0.5) << (20 - 10 * slot)
    return word, q


def test_compressed_ply_decodes_the_described_layout(tmp_path):
    word, q = _rotation_smallest_three([0.2, 0.9, -0.3, 0.2])
    vertices = [((2047 << 21) | (0 << 11) | 1023, word, (0 << 21) | (1023 << 11) | 2047, (255 << 24) | (0 << 16) | (51 << 8) | 204),
                ((0 << 21) | (1023 << 11) | 0, 1 << 30 | (511 << 20) | (511 << 10) | 511, 0, 0x80808080)]
    sh = [[0, 255, 128, 10, 20, 30, 40, 50, 60], [128] * 9]
    path = tmp_path / "hand.compressed.ply"
    path.write_bytes(_compressed_ply_bytes(vertices=vertices, sh=sh))
    g = load_scene(path)
    assert len(g) == 2 and g.sh_degree == 1
    np.testing.assert_allclose(g.means[0].numpy(), [2.0, 0.0, 1023 / 2047 * 8], rtol=1e-6)
    np.testing.assert_allclose(g.means[1].numpy(), [0.0, 4.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(g.log_scales[0].numpy(), [-3.0, 1.0, 1.0], atol=1e-6)
    rgb = np.array([0.2 + 0.4 * 1.0, 0.0, 51 / 255])  # r in [0.2, 0.6], g/b in [0, 1]
    np.testing.assert_allclose(g.sh[0, 0].numpy(), (rgb - 0.5) / SH_C0, atol=1e-5)
    assert abs(float(g.opacities[0]) - 204 / 255) < 1e-5
    got = torch.nn.functional.normalize(g.quats[0], dim=0).numpy()
    assert min(np.abs(got - q).max(), np.abs(got + q).max()) < 2e-3  # 10-bit components
    np.testing.assert_allclose(g.quats[1].numpy(), [0.0, 1.0, 0.0, 0.0], atol=2e-3)  # x largest
    # f_rest bytes, channel-major: 0 -> -4, 255 -> +4, else ((b + 0.5) / 256 - 0.5) * 8
    dec = lambda b: -4.0 if b == 0 else 4.0 if b == 255 else ((b + 0.5) / 256 - 0.5) * 8
    expect = np.array([dec(b) for b in sh[0]]).reshape(3, 3).T  # (basis, channel)
    np.testing.assert_allclose(g.sh[0, 1:].numpy(), expect, atol=1e-6)
    twelve = tmp_path / "twelve.compressed.ply"
    twelve.write_bytes(_compressed_ply_bytes(vertices=vertices[:1], columns=12))
    np.testing.assert_allclose(load_scene(twelve).sh[0, 0].numpy(), (np.array([1.0, 0.0, 51 / 255]) - 0.5) / SH_C0,
                               atol=1e-5)  # 12 columns: colour stored as is


def _spz_bytes(version=3, points=(), degree=0, magic=0x5053474E, flags=0, frac=12, count=None):
    """An SPZ file written from the spz README / load-spz.cc description."""
    pts = list(points)
    n = len(pts) if count is None else count
    out = struct.pack("<IIIBBBB", magic, version, n, degree, frac, flags, 0)
    for p in pts:
        for v in p["pos"]:
            out += (round(v * (1 << frac)) & 0xFFFFFF).to_bytes(3, "little")
    out += bytes(p["alpha"] for p in pts) + b"".join(bytes(p["rgb"]) for p in pts)
    out += b"".join(bytes(p["scale"]) for p in pts) + b"".join(p["rot"] for p in pts)
    out += b"".join(bytes(p.get("sh", [])) for p in pts)
    return gzip.compress(out)


def _spz_rotation_v3(xyzw):
    q = np.asarray(xyzw, float) / np.linalg.norm(xyzw)
    big = int(np.argmax(np.abs(q)))
    if q[big] < 0:
        q = -q
    word = big
    for i in range(4):
        if i != big:
            word = (word << 10) | ((1 if q[i] < 0 else 0) << 9) | round(511 * abs(q[i]) * math.sqrt(2))
    return struct.pack("<I", word), q


def test_spz_decodes_the_described_layout(tmp_path):
    rot, q = _spz_rotation_v3([0.1, -0.8, 0.2, 0.55])
    point = {"pos": (1.5, -2.25, 0.125), "alpha": 204, "rgb": (127, 200, 30), "scale": (160, 96, 0), "rot": rot,
             "sh": [128, 160, 96, 0, 255, 128, 136, 120, 128]}
    path = tmp_path / "hand.spz"
    path.write_bytes(_spz_bytes(points=[point], degree=1))
    g = load_scene(path)
    assert len(g) == 1 and g.sh_degree == 1
    # stored RUB -> scene RDF: y and z negated
    np.testing.assert_allclose(g.means[0].numpy(), [1.5, 2.25, -0.125], atol=1e-6)
    assert abs(float(g.opacities[0]) - 0.8) < 1e-5
    np.testing.assert_allclose(g.sh[0, 0].numpy(), (np.array([127, 200, 30]) / 255 - 0.5) / 0.15, atol=1e-5)
    np.testing.assert_allclose(g.log_scales[0].numpy(), [0.0, -4.0, -10.0], atol=1e-6)
    x, y, z, w = q
    got = torch.nn.functional.normalize(g.quats[0], dim=0).numpy()
    want = np.array([w, x, -y, -z])
    assert min(np.abs(got - want).max(), np.abs(got + want).max()) < 3e-3
    sh = (np.array(point["sh"], float).reshape(3, 3) - 128) / 128  # (basis, rgb); RUB->RDF flips bases 1, 2
    np.testing.assert_allclose(g.sh[0, 1:].numpy(), sh * np.array([-1, -1, 1])[:, None], atol=1e-6)
    v2 = tmp_path / "v2.spz"
    point2 = dict(point, rot=bytes([127, 255, 64]), sh=[])  # x, y, z bytes; w recovered
    v2.write_bytes(_spz_bytes(version=2, points=[point2]))
    xyz = np.array([127, 255, 64]) / 127.5 - 1
    w2 = math.sqrt(max(0.0, 1 - (xyz ** 2).sum()))
    np.testing.assert_allclose(load_scene(v2).quats[0].numpy(), [w2, xyz[0], -xyz[1], -xyz[2]], atol=1e-5)


def _psnr(a, b):
    return 10 * np.log10(1 / max(float(np.mean((a - b) ** 2)), 1e-20))


@pytest.mark.parametrize("name", ["scene.compressed.ply", "scene.spz", "scene.splat", "scene.ply"])
def test_round_trip_renders_the_same(tmp_path, name):
    from engines.render.camera import frame_camera

    scene = sphere_scene(600, footprint=0.12, sh_degree=1 if "splat" not in name else 0)
    path = tmp_path / name
    save_scene(path, scene)
    back = load_scene(path)
    assert len(back) == len(scene)
    cam = frame_camera(scene.means, 40, 20, 96, 96).to(torch.float32)
    with torch.no_grad():
        a = rasterize_scene(scene, cam)[0].clamp(0, 1).numpy()
        b = rasterize_scene(back, cam)[0].clamp(0, 1).numpy()
    assert _psnr(a, b) > (80 if name == "scene.ply" else 30), name
    if name.endswith(".spz"):  # same order; quantisation steps 1/4096 (position), 1/16 (log-scale)
        assert np.abs(scene.means.numpy() - back.means.numpy()).max() <= 0.5 / 4096 + 1e-6
        assert np.abs(scene.log_scales.numpy() - back.log_scales.numpy()).max() <= 0.5 / 16 + 1e-6


@pytest.mark.parametrize("maker,message", [
    (lambda: _spz_bytes(magic=0x12345678), "not an SPZ file"),
    (lambda: _spz_bytes(count=10**9), "would decode to"),
    (lambda: _spz_bytes(points=[], count=3), "truncated"),
    (lambda: _spz_bytes(version=7), "version 7"),
    (lambda: b"NGSP not gzip", "not gzip"),
    (lambda: gzip.compress(b"\x4e\x47\x53")[:-6], "truncated|corrupt"),
])
def test_bad_spz_one_clear_error(tmp_path, maker, message):
    path = tmp_path / "bad.spz"
    path.write_bytes(maker())
    with pytest.raises(SceneFileError, match=message):
        load_scene(path)


def test_bad_compressed_ply_and_cli(tmp_path, capsys):
    vertices = [(0, 0, 0, 0)] * 300  # needs 2 chunks
    bad = tmp_path / "bad.compressed.ply"
    bad.write_bytes(_compressed_ply_bytes(chunk_count=1, vertices=vertices))
    with pytest.raises(SceneFileError, match="chunks cannot hold"):
        load_scene(bad)
    from studio.cli import main

    out = tmp_path / "out.spz"
    assert main(["render", "convert", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "chunks cannot hold" in err[0]
    assert not out.exists()


def test_cli_convert_round_trip(tmp_path, capsys):
    from engines.render.io import save_ply
    from studio.cli import main

    src = tmp_path / "in.ply"
    save_ply(src, sphere_scene(300, footprint=0.15, sh_degree=2))
    for name in ("a.compressed.ply", "b.spz", "c.splat"):
        assert main(["render", "convert", str(src), "--out", str(tmp_path / name), "--json"]) == 0
        assert len(load_scene(tmp_path / name)) == 300
        assert (tmp_path / (name + ".json")).exists()
    assert main(["render", "convert", str(src), "--out", str(tmp_path / "x.obj")]) == 2
    assert "--out must end with" in capsys.readouterr().err
    assert not (tmp_path / "x.obj").exists()


def test_panel_exports_and_opens_every_scene_format(make_panel, tmp_path):
    from engines.render.io import save_ply
    from panels.render import RenderPanel
    from tests.gui_helpers import open_and_wait, wait_loaded

    panel = make_panel(RenderPanel)
    wait_loaded(panel)
    src = tmp_path / "ball.ply"
    save_ply(src, sphere_scene(120, footprint=0.15, sh_degree=1))
    open_and_wait(panel, src)
    for name in ("e.splat", "e.spz", "e.compressed.ply"):
        out = panel.export(str(tmp_path / name))
        assert len(load_scene(out)) == 120 and (tmp_path / (name + ".json")).exists()
    spz = tmp_path / "e.spz"
    assert panel.can_open(spz)
    open_and_wait(panel, spz)
    assert len(panel.scene) == 120 and panel.scene.sh_degree == 1
