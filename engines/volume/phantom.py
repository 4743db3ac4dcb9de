"""A deterministic procedural CT-like phantom in Hounsfield units, with ground-truth labels.

Torso-like elliptic cylinder of soft tissue in air, two lungs, a segmented spine and ribs
(bone), an aorta, a vena cava and two branch arteries (contrast-filled vessels). Generated in
code (no data files); 128³ takes well under a second.
"""

from __future__ import annotations

import numpy as np

from engines.volume.model import Volume

__all__ = ["LABELS", "LABEL_HU", "make_phantom"]

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
    volume = Volume(
        hu.astype(np.float32),
        spacing=(spacing, spacing, spacing),
        origin=(0.0, 0.0, 0.0),
        modality="CT",
        units="HU",
        metadata={"format": "procedural phantom", "path": f"phantom:{size}", "seed": seed, "labels": LABELS},
    )
    return volume, labels
