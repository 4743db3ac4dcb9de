"""The volume model shared by every reader, renderer and classifier.

Axis order (everywhere in ``engines.volume``): the array is indexed ``data[z, y, x]`` -
slowest axis first, i.e. numpy C order with the file's *fastest* varying axis last.
``spacing`` and ``origin`` are given in the same ``(z, y, x)`` order, in millimetres.
For NIfTI/NRRD/MetaImage files (whose headers list axes fastest first, i, j, k) this means
the header order is reversed; the voxel grid itself is never resampled or reoriented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_VOXELS", "Volume", "VolumeReadError", "VolumeTooLarge"]

#: Default limit on voxels read into memory (512³ ≈ 134 M voxels ≈ 0.5 GB as float32).
DEFAULT_MAX_VOXELS = 512**3


class VolumeReadError(ValueError):
    """A volume file is missing, corrupt, truncated or of an unsupported kind (one-line message)."""


class VolumeTooLarge(VolumeReadError):
    """The volume exceeds the voxel limit and downsampling was not requested."""


@dataclass
class Volume:
    """A scalar volume.

    ``data``     ``(Z, Y, X)`` array (float32 after HU rescale, otherwise the file's dtype)
    ``spacing``  voxel size ``(dz, dy, dx)`` in mm
    ``origin``   position of voxel ``[0, 0, 0]`` as ``(z, y, x)`` in mm
    ``modality`` ``"CT"``, ``"MR"``, ``"unknown"`` ...
    ``units``    value units, ``"HU"`` for CT, ``""`` if unknown
    ``metadata`` anything else from the source (format, path, warnings, affine ...)
    """

    data: np.ndarray
    spacing: tuple = (1.0, 1.0, 1.0)
    origin: tuple = (0.0, 0.0, 0.0)
    modality: str = "unknown"
    units: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 3:
            raise VolumeReadError(f"a volume must be 3-D, got shape {data.shape}")
        if min(data.shape) < 1:
            raise VolumeReadError(f"empty volume of shape {data.shape}")
        if data.dtype.kind not in "biuf":
            raise VolumeReadError(f"unsupported voxel type {data.dtype}")
        self.data = data
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise VolumeReadError(f"voxel spacing must be three positive numbers, got {self.spacing}")
        self.metadata = dict(self.metadata)
        self.metadata.setdefault("warnings", [])

    @property
    def shape(self) -> tuple:
        """``(Z, Y, X)``."""
        return tuple(self.data.shape)

    @property
    def extent_mm(self) -> tuple:
        """Physical size ``(Z, Y, X)`` in mm (voxel-centre to voxel-centre)."""
        return tuple(max(n - 1, 1) * s for n, s in zip(self.shape, self.spacing))

    def value_range(self) -> tuple[float, float]:
        """Finite ``(min, max)`` of the data."""
        data = self.data
        if data.dtype.kind == "f":
            finite = data[np.isfinite(data)]
            if finite.size == 0:
                raise VolumeReadError("the volume contains no finite values")
            return float(finite.min()), float(finite.max())
        return float(data.min()), float(data.max())

    def summary(self) -> dict:
        """A JSON-able description (for ``volume info``)."""
        lo, hi = self.value_range()
        return {
            "shape_zyx": list(self.shape),
            "spacing_zyx_mm": [round(s, 6) for s in self.spacing],
            "origin_zyx_mm": [round(o, 6) for o in self.origin],
            "dtype": str(self.data.dtype),
            "modality": self.modality,
            "units": self.units,
            "value_range": [lo, hi],
            "format": self.metadata.get("format", ""),
            "warnings": list(self.metadata.get("warnings", [])),
        }

    def affine_xyz(self) -> np.ndarray:
        """4×4 voxel-(i=x, j=y, k=z) → mm affine (axis-aligned, from spacing and origin)."""
        if "affine" in self.metadata:
            return np.asarray(self.metadata["affine"], dtype=float)
        affine = np.eye(4)
        affine[0, 0], affine[1, 1], affine[2, 2] = self.spacing[2], self.spacing[1], self.spacing[0]
        affine[:3, 3] = [self.origin[2], self.origin[1], self.origin[0]]
        return affine
