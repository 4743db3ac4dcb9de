"""Reference torch ray caster vs a straightforward numpy ray caster (same camera, same TF).

The numpy baseline marches every ray to the back (no early termination), samples with
``scipy.ndimage.map_coordinates(order=1)`` one step at a time and composites front to back.
Prints both times, the ratio and the mean image difference.

    .venv/bin/python benchmarks/volume_raycast.py [--size 128] [--image 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def numpy_raycast(data, spacing, tf, azimuth, elevation, size, step=1.0):
    """Orthographic DVR in plain numpy/scipy (no shading, no early termination)."""
    from scipy.ndimage import map_coordinates

    from engines.volume.raycast import camera_basis
    from engines.volume.tf import correct_opacity

    Z, Y, X = data.shape
    sz, sy, sx = spacing
    half = np.array([(X - 1) * sx / 2, (Y - 1) * sy / 2, (Z - 1) * sz / 2])
    forward, right, up = camera_basis(azimuth, elevation)
    radius = np.linalg.norm(half)
    ps = 2 * radius / size
    coords = (np.arange(size) - (size - 1) / 2) * ps
    origins = coords[::-1, None, None] * up + coords[None, :, None] * right
    origins = origins.reshape(-1, 3) - forward * radius
    ds = step * min(spacing)
    n = int(np.ceil(2 * radius / ds)) + 1
    color = np.zeros((origins.shape[0], 3))
    trans = np.ones(origins.shape[0])
    xs_c = np.array([p[0] for p in tf.color]); cs = np.array([p[1:] for p in tf.color])
    xs_o = np.array([p[0] for p in tf.opacity]); os_ = np.array([p[1] for p in tf.opacity])
    for k in range(n):
        pos = origins + forward * (k * ds)
        idx = np.stack([(pos[:, 2] + half[2]) / sz, (pos[:, 1] + half[1]) / sy, (pos[:, 0] + half[0]) / sx])
        inside = np.all((pos >= -half - 1e-9) & (pos <= half + 1e-9), axis=1)
        if not inside.any():
            continue
        v = map_coordinates(data, idx[:, inside], order=1, mode="nearest")
        a = correct_opacity(np.interp(v, xs_o, os_), step)
        rgb = np.stack([np.interp(v, xs_c, cs[:, c]) for c in range(3)], axis=1)
        w = trans[inside] * a
        color[inside] += w[:, None] * rgb
        trans[inside] *= 1 - a
    return color.reshape(size, size, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128, help="phantom size (voxels per side)")
    parser.add_argument("--image", type=int, default=256, help="image size")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from engines.volume.phantom import make_phantom
    from engines.volume.raycast import render
    from engines.volume.tf import preset

    volume, _ = make_phantom(args.size)
    tf = preset("CT-Bone")
    kwargs = {"azimuth": 30, "elevation": 20}
    render(volume, tf=tf, size=32, shading=False, device="cpu", **kwargs)  # warm-up
    t0 = time.perf_counter()
    ours = render(volume, tf=tf, size=args.image, shading=False, device="cpu", **kwargs)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    render(volume, tf=tf, size=args.image, shading=True, device="cpu", **kwargs)
    t_shaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = numpy_raycast(volume.data, volume.spacing, tf, size=args.image, **kwargs)
    t_base = time.perf_counter() - t0
    diff = np.abs(ours.image - np.clip(base, 0, 1)).mean()
    print(f"volume {args.size}^3 -> image {args.image}^2, CT-Bone DVR, step 1 voxel, {args.threads} thread(s)")
    print(f"numpy baseline      : {t_base:7.2f} s")
    print(f"torch reference     : {t_ours:7.2f} s  ({ours.info['samples'] / 1e6:.1f} M samples)")
    print(f"torch + shading     : {t_shaded:7.2f} s")
    print(f"speed-up (numpy / torch): {t_base / t_ours:5.1f}x   mean |difference| {diff:.4f}")


if __name__ == "__main__":
    main()
