"""Reference ray caster: projections equal numpy reductions for axis-aligned views; DVR matches
the analytic compositing of a uniform slab; opacity correction makes step s and s/2 agree."""

from __future__ import annotations

import numpy as np
import pytest

from engines.volume.raycast import camera_basis, render
from engines.volume.tf import TransferFunction1D, preset


@pytest.fixture(scope="module")
def rnd():
    return np.random.default_rng(5).normal(size=(10, 12, 14)).astype(np.float32)


def test_camera_basis_orthonormal():
    for az, el in [(0, 0), (30, 20), (-75, 90), (200, -45)]:
        f, r, u = camera_basis(az, el)
        m = np.stack([f, r, u])
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    f, r, u = camera_basis(0, 0)
    np.testing.assert_allclose([f, r, u], [[0, 1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


@pytest.mark.parametrize("mode,reduce", [("mip", np.max), ("minip", np.min), ("avg", np.mean)])
def test_projection_top_view_equals_numpy(rnd, mode, reduce):
    _Z, Y, X = rnd.shape
    out = render(rnd, mode=mode, elevation=90, size=(Y, X), pixel_size=1.0, device="cpu")
    np.testing.assert_allclose(out.values, np.flipud(reduce(rnd, axis=0)), atol=2e-4)


def test_mip_front_view_and_anisotropic_spacing(rnd):
    Z, Y, X = rnd.shape
    out = render(rnd, mode="mip", azimuth=0, elevation=0, size=(Z, X), pixel_size=1.0, device="cpu")
    np.testing.assert_allclose(out.values, np.flipud(rnd.max(axis=1)), atol=2e-4)
    # spacing 2 mm along z; side view along -x (azimuth 90: +y to the right), 1 mm pixels
    out = render(rnd, spacing=(2.0, 1.0, 1.0), mode="mip", azimuth=90, elevation=0, size=(2 * Z - 1, Y),
                 pixel_size=1.0, device="cpu")
    # every other image row lies on a voxel-centre plane
    np.testing.assert_allclose(out.values[::2], np.flipud(rnd.max(axis=2)), atol=2e-4)


def test_crop_limits_the_projection(rnd):
    _Z, Y, X = rnd.shape
    out = render(rnd, mode="mip", elevation=90, size=(Y, X), pixel_size=1.0, crop=((0, 4), (0, Y - 1), (0, X - 1)), device="cpu")
    np.testing.assert_allclose(out.values, np.flipud(rnd[:5].max(axis=0)), atol=2e-4)


def test_dvr_uniform_slab_matches_analytic():
    vol = np.full((10, 8, 8), 5.0, dtype=np.float32)
    tf = TransferFunction1D(color=[(0, 1, 1, 1)], opacity=[(0, 0.1)])
    out = render(vol, tf=tf, elevation=90, size=(8, 8), pixel_size=1.0, shading=False, device="cpu")
    expected = 1 - 0.9**10  # ten samples at step 1
    np.testing.assert_allclose(out.alpha, expected, atol=2e-4)
    np.testing.assert_allclose(out.image, expected, atol=2e-4)
    # half step with correction: 19 samples of alpha' = 1 - 0.9**0.5 over the same 9 mm (+ one)
    half = render(vol, tf=tf, elevation=90, size=(8, 8), pixel_size=1.0, step=0.5, shading=False, device="cpu")
    np.testing.assert_allclose(half.alpha, 1 - 0.9 ** (19 * 0.5), atol=2e-4)


def test_early_termination_stops_rays():
    vol = np.full((64, 8, 8), 1.0, dtype=np.float32)
    tf = TransferFunction1D(color=[(0, 1, 0, 0)], opacity=[(0, 0.9)])
    out = render(vol, tf=tf, elevation=90, size=(8, 8), pixel_size=1.0, shading=False, device="cpu", max_slab_elements=64 * 4)
    assert np.all(out.alpha > 0.99)
    assert out.info["samples"] < 64 * 64 / 2  # rays stopped well before the back
    np.testing.assert_allclose(out.image[..., 0], out.alpha, atol=1e-6)


def test_rgba_volume_equals_tf_path_for_nearest_constant_regions():
    vol = np.zeros((6, 6, 6), dtype=np.float32)
    vol[:, :, 3:] = 1.0
    tf = TransferFunction1D(color=[(0, 1, 0, 0), (1, 0, 0, 1)], opacity=[(0, 0.2), (1, 0.4)])
    rgba = tf.evaluate(vol)
    a = render(vol, tf=tf, elevation=90, size=(6, 6), pixel_size=1.0, shading=False, device="cpu")
    b = render(vol, rgba=rgba, elevation=90, size=(6, 6), pixel_size=1.0, shading=False, device="cpu")
    # columns away from the 0/1 edge sample constant values in both paths
    np.testing.assert_allclose(a.image[:, [0, 1, 4, 5]], b.image[:, [0, 1, 4, 5]], atol=2e-4)


def test_opacity_correction_step_invariance():
    from engines.volume.phantom import make_phantom

    volume, _ = make_phantom(48, noise_hu=0.0)
    # a translucent TF (where the step matters most): soft tissue and vessels partly transparent
    tf = TransferFunction1D(color=[(-1000, 0.2, 0.2, 1.0), (0, 1.0, 0.5, 0.3), (1000, 1.0, 1.0, 1.0)],
                            opacity=[(-500, 0.0), (0, 0.02), (400, 0.05), (1000, 0.2)])
    kwargs = {"tf": tf, "azimuth": 30, "elevation": 20, "size": 64, "shading": False, "device": "cpu"}
    full = render(volume, step=1.0, **kwargs).image
    half = render(volume, step=0.5, **kwargs).image
    uncorrected = render(volume, step=0.5, reference_step=0.5, **kwargs).image
    err = np.abs(full - half).mean()
    err_uncorrected = np.abs(full - uncorrected).mean()
    assert err < 0.01
    assert err < err_uncorrected / 3


def test_shading_changes_image_and_bad_input():
    from engines.volume.phantom import make_phantom

    volume, _ = make_phantom(32, noise_hu=0.0)
    flat = render(volume, tf=preset("CT-Bone"), size=32, shading=False, device="cpu").image
    lit = render(volume, tf=preset("CT-Bone"), size=32, shading=True, device="cpu").image
    assert np.abs(flat - lit).max() > 0.05
    with pytest.raises(ValueError, match="mode"):
        render(volume, mode="xray", device="cpu")
    with pytest.raises(ValueError, match="transfer function"):
        render(volume, mode="dvr", device="cpu")
    with pytest.raises(ValueError, match="step"):
        render(volume, tf=preset("CT-Bone"), step=0, device="cpu")
