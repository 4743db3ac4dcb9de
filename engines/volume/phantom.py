"""A deterministic procedural CT-like phantom in Hounsfield units, with ground-truth labels.

Torso-like elliptic cylinder of soft tissue in air, two lungs, a segmented spine and ribs
(bone), an aorta, a vena cava and two branch arteries (contrast-filled vessels). Generated in
code (no data files); 128³ takes well under a second.
"""

from __future__ import annotations

import numpy as np

from engines.volume.model import Volume

__all__ = ["LABELS", "LABEL_HU", "ORGAN_LABELS", "make_organs_phantom", "make_phantom", "simulate_strokes"]

#: label value -> name
LABELS = {0: "air", 1: "soft tissue", 2: "vessel", 3: "bone", 4: "lung"}
#: nominal HU of each label (before blur and noise)
LABEL_HU = {0: -1000.0, 1: 40.0, 2: 300.0, 3: 1000.0, 4: -850.0}


def make_phantom(size: int = 128, *, seed: int = 0, noise_hu: float = 15.0) -> tuple[Volume, np.ndarray]:
    """Return ``(volume, labels)``: HU volume ``(size, size, size)`` float32 and uint8 labels
    (see :data:`LABELS`). Spacing is ``256 / size`` mm (a 256 mm field of view), modality CT.

    Deterministic for a given ``size`` and ``seed``. ``size`` must be between 16 and 512.
    """
    from scipy import ndimage

    size = int(size)
    if not 16 <= size <= 512:
        raise ValueError(f"phantom size must be between 16 and 512, got {size}")
    axis = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2.0 - 1.0
    z = axis[:, None, None]
    y = axis[None, :, None]
    x = axis[None, None, :]
    labels = np.zeros((size, size, size), dtype=np.uint8)

    body = ((x / 0.85) ** 2 + ((y - 0.02) / 0.62) ** 2 <= 1.0) & (np.abs(z) <= 0.9)
    labels[body] = 1
    for side in (-1.0, 1.0):
        lung = ((x - 0.40 * side) / 0.27) ** 2 + ((y + 0.05) / 0.36) ** 2 + ((z - 0.3) / 0.5) ** 2 <= 1.0
        labels[lung & body] = 4

    # vessels: aorta (gently curved), vena cava, two branch arteries
    aorta_x = 0.12 + 0.05 * np.sin(np.pi * z)
    aorta = ((x - aorta_x) ** 2 + (y - 0.16) ** 2 <= 0.085**2) & (np.abs(z) <= 0.85)
    cava = ((x + 0.17) ** 2 + (y - 0.12) ** 2 <= 0.075**2) & (z <= 0.55) & (z >= -0.85)
    branches = ((z + 0.3) ** 2 + (y - 0.16) ** 2 <= 0.05**2) & (np.abs(x - 0.12) <= 0.45)
    labels[(aorta | cava | branches) & body] = 2

    # bone: vertebral bodies with discs, ribs as partial elliptic rings
    spine_r = (x**2 + (y - 0.42) ** 2) <= 0.13**2
    vertebra = (np.mod((z + 1.0) * 5.0, 1.0) < 0.8) & (np.abs(z) <= 0.85)
    labels[spine_r & vertebra] = 3
    ring = np.sqrt((x / 0.74) ** 2 + ((y - 0.02) / 0.53) ** 2)
    for level in (-0.05, 0.25, 0.55):
        rib = ((ring - 1.0) * 0.6) ** 2 + (z - level) ** 2 <= 0.045**2
        labels[rib & (y > -0.35) & body] = 3

    hu = np.empty(labels.shape, dtype=np.float32)
    for value, nominal in LABEL_HU.items():
        hu[labels == value] = nominal
    # a liver-like organ: same class as soft tissue, slightly brighter
    liver = ((x + 0.35) / 0.35) ** 2 + ((y - 0.0) / 0.4) ** 2 + ((z + 0.45) / 0.3) ** 2 <= 1.0
    hu[liver & (labels == 1)] = 65.0
    hu = ndimage.gaussian_filter(hu, sigma=0.45 * size / 128.0, mode="nearest")
    if noise_hu > 0:
        rng = np.random.default_rng(seed)
        hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(noise_hu)
    spacing = 256.0 / size
    # laid out like a CT scan (index x → patient left, y → posterior, z → superior; the liver sits
    # on the patient's right), centred on world 0: the RAS affine flips x and y
    affine = np.zeros((4, 4))
    affine[2, 0], affine[1, 1], affine[0, 2], affine[3, 3] = spacing, -spacing, -spacing, 1.0
    affine[:3, 3] = -affine[:3, :3] @ (np.array(hu.shape, dtype=float) - 1) / 2
    volume = Volume(
        hu.astype(np.float32),
        affine=affine,
        modality="CT",
        units="HU",
        metadata={"format": "procedural phantom", "path": f"phantom:{size}", "seed": seed, "labels": LABELS},
    )
    return volume, labels


#: labels of :func:`make_organs_phantom`
ORGAN_LABELS = {0: "background", 1: "organ A", 2: "organ B", 3: "tube"}


def make_organs_phantom(size: int = 128, *, seed: int = 0, noise_hu: float = 15.0) -> tuple[Volume, np.ndarray]:
    """A harder classification case: two touching organs of similar intensity (60 and 42 HU,
    closer than 1.5 × the noise) in fat-like background (-90 HU), and a thin winding contrast
    tube (250 HU, about 4 voxels across at 128³) that passes between and past them.

    Returns ``(volume, labels)`` (see :data:`ORGAN_LABELS`); spacing ``256 / size`` mm, CT.
    """
    from scipy import ndimage

    size = int(size)
    if not 16 <= size <= 512:
        raise ValueError(f"phantom size must be between 16 and 512, got {size}")
    axis = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2.0 - 1.0
    z, y, x = axis[:, None, None], axis[None, :, None], axis[None, None, :]
    labels = np.zeros((size, size, size), dtype=np.uint8)
    organ_a = ((x + 0.25) / 0.45) ** 2 + (y / 0.5) ** 2 + (z / 0.6) ** 2 <= 1.0
    organ_b = ((x - 0.38) / 0.32) ** 2 + ((y - 0.1) / 0.38) ** 2 + (z / 0.5) ** 2 <= 1.0
    labels[organ_b] = 2
    labels[organ_a] = 1  # A wins the overlap: the organs share a curved contact surface
    t = np.linspace(-0.9, 0.9, 4 * size)
    centre = np.stack([t, 0.55 * np.sin(2.2 * t) - 0.05, 0.12 + 0.25 * np.cos(1.7 * t)], axis=1)  # (z, y, x)
    radius = 2.0 * 2.0 / size
    tube = np.zeros_like(labels, dtype=bool)
    for cz, cy, cx in centre:
        k = int((cz + 1.0) / 2.0 * size)
        lo, hi = max(k - 2, 0), min(k + 3, size)
        tube[lo:hi] |= (x - cx) ** 2 + (y - cy) ** 2 + (z[lo:hi] - cz) ** 2 <= radius**2
    labels[tube] = 3
    hu = np.select([labels == 1, labels == 2, labels == 3], [60.0, 42.0, 250.0], -90.0).astype(np.float32)
    hu = ndimage.gaussian_filter(hu, sigma=0.45 * size / 128.0, mode="nearest")
    if noise_hu > 0:
        rng = np.random.default_rng(seed)
        hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(noise_hu)
    spacing = 256.0 / size
    volume = Volume(hu.astype(np.float32), spacing=(spacing,) * 3, modality="CT", units="HU",
                    metadata={"format": "procedural phantom", "path": f"organs:{size}", "seed": seed, "labels": ORGAN_LABELS})
    return volume, labels


def simulate_strokes(labels: np.ndarray, classes: dict, *, slices=(40, 64, 90), per_slice: int = 2,
                     length: int = 12, radius: int = 1, axis: int = 0, seed: int = 0) -> dict:
    """Brush strokes a user might paint, from ground-truth ``labels`` (Z, Y, X) on a few slices only.

    ``classes``: ``{class index: label value}``. On each slice of ``axis`` in ``slices`` and for
    each class, ``per_slice`` straight strokes of up to ``length`` voxels in a random direction,
    starting at a random voxel of the label eroded by ``radius + 1`` (users paint inside a
    structure, not on its border) and stopping where they would leave it; each stroke point is
    a disc of ``radius`` voxels in the slice plane. Returns ``{class index: (n, 3) int64 voxels
    (z, y, x)}`` (classes absent from every slice are left out). Only the labels of the given
    slices are read.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    free = [a for a in range(3) if a != axis]
    du, dv = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disc = np.stack([du[du**2 + dv**2 <= radius**2], dv[du**2 + dv**2 <= radius**2]], axis=1)
    out: dict = {}
    for index, value in classes.items():
        points = []
        for s in slices:
            plane = np.take(labels, int(s), axis=axis) == value
            inner = ndimage.binary_erosion(plane, iterations=radius + 1)
            seeds = np.argwhere(inner)
            if not len(seeds):
                continue
            for _ in range(per_slice):
                start = seeds[rng.integers(len(seeds))].astype(np.float64)
                angle = rng.uniform(0.0, 2.0 * np.pi)
                direction = np.array([np.sin(angle), np.cos(angle)])
                for t in range(length):
                    p = np.rint(start + t * direction).astype(int)
                    if not (0 <= p[0] < plane.shape[0] and 0 <= p[1] < plane.shape[1] and inner[p[0], p[1]]):
                        break
                    for d in disc:
                        voxel = [0, 0, 0]
                        voxel[axis] = int(s)
                        voxel[free[0]], voxel[free[1]] = int(p[0] + d[0]), int(p[1] + d[1])
                        points.append(voxel)
        if points:
            out[index] = np.unique(np.asarray(points, dtype=np.int64), axis=0)
    return out
