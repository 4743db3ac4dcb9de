"""3DGS .ply / .splat reading and writing (reference layout, activations, errors)."""

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from engines.render.io import SceneFileError, load_ply, load_scene, load_splat, save_ply, save_splat
from engines.render.scene import SH_C0, Gaussians


def random_scene(n=50, degree=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return Gaussians(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g),
                     torch.randn(n, 3, generator=g) - 3, torch.randn(n, generator=g),
                     torch.randn(n, k, 3, generator=g))


def inria_attribute_list(n_rest):
    """Independent copy of gaussian_model.py::construct_list_of_attributes."""
    names = ["x", "y", "z", "nx", "ny", "nz"]
    names += [f"f_dc_{i}" for i in range(3)]
    names += [f"f_rest_{i}" for i in range(n_rest)]
    names.append("opacity")
    names += [f"scale_{i}" for i in range(3)]
    names += [f"rot_{i}" for i in range(4)]
    return names


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_bit_exact(tmp_path, degree):
    scene = random_scene(degree=degree)
    path = tmp_path / "a.ply"
    save_ply(path, scene)
    back = load_ply(path)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(back, name), getattr(scene, name)), name
    save_ply(tmp_path / "b.ply", back)
    assert path.read_bytes() == (tmp_path / "b.ply").read_bytes()


def test_writer_layout_matches_reference(tmp_path):
    path = tmp_path / "a.ply"
    save_ply(path, random_scene(n=4, degree=3))
    ply = PlyData.read(str(path))
    assert not ply.text and ply.byte_order == "<"
    assert [e.name for e in ply.elements] == ["vertex"]
    props = ply["vertex"].properties
    assert [p.name for p in props] == inria_attribute_list(45)
    assert all(p.val_dtype in ("f4", "float", "float32") for p in props)
    assert path.stat().st_size > 62 * 4 * 4  # 248 bytes per splat + header


def test_hand_built_reference_file_loads_with_activations(tmp_path):
    """A file written the way gaussian_model.py::save_ply does (channel-major f_rest)."""
    n, k = 3, 16
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    features_dc = rng.normal(size=(n, 1, 3)).astype(np.float32)  # (N, 1, 3) as in the reference
    features_rest = rng.normal(size=(n, k - 1, 3)).astype(np.float32)  # (N, 15, 3)
    opacity_logit = np.array([[-2.0], [0.0], [3.0]], np.float32)
    log_scale = np.log(np.array([[0.1, 0.2, 0.3], [1, 1, 1], [0.01, 0.5, 2.0]], np.float32))
    rot = np.array([[2, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [1, 2, 3, 4]], np.float32)
    f_dc = features_dc.transpose(0, 2, 1).reshape(n, -1)
    f_rest = features_rest.transpose(0, 2, 1).reshape(n, -1)  # reference: transpose(1, 2).flatten(start_dim=1)
    attributes = np.concatenate([xyz, np.zeros_like(xyz), f_dc, f_rest, opacity_logit, log_scale, rot], 1)
    dtype = [(a, "f4") for a in inria_attribute_list(45)]
    elements = np.empty(n, dtype=dtype)
    elements[:] = list(map(tuple, attributes))
    PlyData([PlyElement.describe(elements, "vertex")]).write(str(tmp_path / "ref.ply"))

    scene = load_ply(tmp_path / "ref.ply")
    assert scene.sh_degree == 3
    np.testing.assert_array_equal(scene.sh[:, 1:].numpy(), features_rest)
    # channel-major: f_rest_(c*15 + k-1) is channel c of basis k
    assert scene.sh[2, 5, 1].item() == attributes[2, 9 + 1 * 15 + 4]
    np.testing.assert_allclose(scene.opacities.numpy(), 1 / (1 + np.exp(-opacity_logit[:, 0])), rtol=1e-6)
    np.testing.assert_allclose(scene.scales.numpy(), np.exp(log_scale), rtol=1e-6)
    np.testing.assert_allclose(scene.rgb.numpy(), np.clip(0.5 + SH_C0 * features_dc[:, 0], 0, 1), rtol=1e-6)
    np.testing.assert_array_equal(scene.quats.numpy(), rot)  # stored unnormalised, w first


def test_reads_gsplat_layout_without_normals_and_extra_properties(tmp_path):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3", "filter_3D"]
    data = np.zeros(2, dtype=[(nm, "f4") for nm in names])
    data["x"] = [1, 2]
    data["rot_0"] = 1
    data["filter_3D"] = [0.5, 0.25]
    PlyData([PlyElement.describe(data, "vertex")]).write(str(tmp_path / "g.ply"))
    scene = load_ply(tmp_path / "g.ply")
    assert len(scene) == 2 and scene.sh_degree == 0
    assert scene.means[:, 0].tolist() == [1, 2]
    np.testing.assert_array_equal(scene.extra["filter_3D"], [0.5, 0.25])


def test_scale_and_rot_sorted_by_numeric_suffix(tmp_path):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_2", "scale_0", "scale_1",
             "rot_3", "rot_1", "rot_0", "rot_2"]
    data = np.zeros(1, dtype=[(nm, "f4") for nm in names])
    for i in range(3):
        data[f"scale_{i}"] = i
    for i in range(4):
        data[f"rot_{i}"] = 10 + i
    PlyData([PlyElement.describe(data, "vertex")]).write(str(tmp_path / "s.ply"))
    scene = load_ply(tmp_path / "s.ply")
    assert scene.log_scales[0].tolist() == [0, 1, 2]
    assert scene.quats[0].tolist() == [10, 11, 12, 13]


def test_corrupt_and_foreign_files(tmp_path):
    good = tmp_path / "good.ply"
    save_ply(good, random_scene(n=20))
    truncated = tmp_path / "trunc.ply"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(SceneFileError, match="corrupt|truncated"):
        load_ply(truncated)
    mesh = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(mesh, "vertex"), PlyElement.describe(faces, "face")]).write(str(tmp_path / "m.ply"))
    with pytest.raises(SceneFileError, match="not a Gaussian-splat scene"):
        load_ply(tmp_path / "m.ply")
    (tmp_path / "text.ply").write_text("hello world")
    with pytest.raises(SceneFileError, match="not a PLY"):
        load_ply(tmp_path / "text.ply")
    with pytest.raises(SceneFileError, match="does not exist"):
        load_ply(tmp_path / "missing.ply")
    with pytest.raises(SceneFileError, match="unsupported"):
        load_scene(tmp_path / "x.obj")
    nan_scene = random_scene(n=3)
    nan_scene.means[1, 0] = float("nan")
    save_ply(tmp_path / "nan.ply", nan_scene)
    with pytest.raises(SceneFileError, match="NaN"):
        load_ply(tmp_path / "nan.ply")


def test_splat_round_trip_within_quantization(tmp_path):
    scene = random_scene(n=30, degree=0)
    scene.sh[:] = scene.sh.clamp(-1.5, 1.5)  # colours inside [0, 1]
    save_splat(tmp_path / "a.splat", scene)
    raw = (tmp_path / "a.splat").read_bytes()
    assert len(raw) == 32 * 30
    back = load_splat(tmp_path / "a.splat")
    order = torch.argsort(-(scene.log_scales.sum(1).exp() * scene.opacities))
    ref = scene.subset(order)
    torch.testing.assert_close(back.means, ref.means)
    torch.testing.assert_close(back.scales, ref.scales, rtol=1e-6, atol=0)
    assert (back.rgb - ref.rgb).abs().max() <= 1 / 255 + 1e-6
    assert (back.opacities - ref.opacities).abs().max() <= 1 / 255 + 1e-6
    qa = torch.nn.functional.normalize(back.quats, dim=1)
    qb = torch.nn.functional.normalize(ref.quats, dim=1)
    assert (qa - qb).abs().max() < 0.02
    (tmp_path / "bad.splat").write_bytes(b"x" * 33)
    with pytest.raises(SceneFileError, match="multiple of 32"):
        load_splat(tmp_path / "bad.splat")
