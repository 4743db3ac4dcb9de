"""The volume model shared by every reader, renderer and classifier.

Axis order (everywhere in ``engines.volume``): the array is indexed ``data[z, y, x]`` -
slowest axis first, i.e. numpy C order with the file's *fastest* varying axis last.
``spacing`` and ``origin`` are given in the same ``(z, y, x)`` order, in millimetres.
For NIfTI/NRRD/MetaImage files (whose headers list axes fastest first, i, j, k) this means
the header order is reversed; the voxel grid itself is never resampled or reoriented.

Geometry: ``Volume.affine`` is the 4×4 map from a voxel index ``(z, y, x, 1)`` (numpy axis
order) to world millimetres in **RAS+** (x → Right, y → Anterior, z → Superior, the NIfTI /
nibabel frame). Readers convert LPS sources (DICOM, ITK/MetaImage, LPS NRRD) with
``diag(-1, -1, 1, 1)``. ``spacing`` is the length of the affine's columns and ``origin`` the
world position of voxel ``[0, 0, 0]`` written backwards, ``(S, A, R)``, to match the axis order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_VOXELS", "LPS_TO_RAS", "Volume", "VolumeReadError", "VolumeTooLarge", "axis_letters",
           "xyz_affine_to_zyx"]

#: Flips x and y: LPS (DICOM, ITK) world coordinates ↔ RAS (NIfTI); its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

_AXIS_PERMUTE = [2, 1, 0, 3]  # (x, y, z, 1) column order ↔ (z, y, x, 1)


def xyz_affine_to_zyx(affine_xyz) -> np.ndarray:
    """Re-order the columns of an index-(i=x, j=y, k=z) affine (nibabel, NRRD, ITK) to the
    ``(z, y, x)`` numpy axis order used here (the same matrix swaps back)."""
    return np.asarray(affine_xyz, dtype=float)[:, _AXIS_PERMUTE]


def axis_letters(affine) -> list[tuple[str, str]]:
    """For each voxel axis of a RAS affine, the anatomical letters of its (low, high) index end,
    e.g. ``[('I', 'S'), ('P', 'A'), ('L', 'R')]`` for an axial RAS volume in (z, y, x) order.

    Uses nibabel's ``io_orientation`` (the world axis each column aligns with best, handles
    oblique affines)."""
    from nibabel.orientations import io_orientation

    names = (("L", "R"), ("P", "A"), ("I", "S"))
    out = []
    for world_axis, sign in io_orientation(np.asarray(affine, dtype=float)):
        if not np.isfinite(world_axis):
            out.append(("?", "?"))
            continue
        low, high = names[int(world_axis)]
        out.append((low, high) if sign > 0 else (high, low))
    return out


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
    ``metadata`` anything else from the source (format, path, warnings ...)
    ``affine``   4×4 voxel ``(z, y, x, 1)`` → RAS mm; built from ``spacing``/``origin`` when not
                 given (axis z → S, y → A, x → R); when given, ``spacing`` and ``origin`` are
                 derived from it
    """

    data: np.ndarray
    spacing: tuple = (1.0, 1.0, 1.0)
    origin: tuple = (0.0, 0.0, 0.0)
    modality: str = "unknown"
    units: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    affine: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 3:
            raise VolumeReadError(f"a volume must be 3-D, got shape {data.shape}")
        if min(data.shape) < 1:
            raise VolumeReadError(f"empty volume of shape {data.shape}")
        if data.dtype.kind not in "biuf":
            raise VolumeReadError(f"unsupported voxel type {data.dtype}")
        self.data = data
        if self.affine is not None:
            affine = np.asarray(self.affine, dtype=float)
            if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
                raise VolumeReadError("the voxel-to-world matrix is not an invertible 4×4 matrix of finite numbers")
            affine[3] = (0.0, 0.0, 0.0, 1.0)
            self.affine = affine
            self.spacing = tuple(float(n) for n in np.linalg.norm(affine[:3, :3], axis=0))
            self.origin = tuple(float(o) for o in affine[:3, 3][::-1])
        try:
            self.spacing = tuple(float(s) for s in self.spacing)
            self.origin = tuple(float(o) for o in self.origin)
        except (TypeError, ValueError):
            raise VolumeReadError("voxel spacing and origin must be numbers") from None
        if self.affine is None and len(self.spacing) == 3 and len(self.origin) == 3:
            affine = np.zeros((4, 4))
            affine[2, 0], affine[1, 1], affine[0, 2] = self.spacing
            affine[:3, 3] = self.origin[::-1]
            affine[3, 3] = 1.0
            self.affine = affine
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise VolumeReadError(f"voxel spacing must be three positive numbers, got {self.spacing}")
        if len(self.origin) != 3 or not all(np.isfinite(o) for o in self.origin):
            raise VolumeReadError(f"the volume origin must be three finite numbers, got {self.origin}")
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
            "affine_zyx_to_ras": [[round(float(v), 6) for v in row] for row in self.affine],
            "axis_codes_zyx": "".join(high for _low, high in axis_letters(self.affine)),
            "dtype": str(self.data.dtype),
            "modality": self.modality,
            "units": self.units,
            "value_range": [lo, hi],
            "format": self.metadata.get("format", ""),
            "warnings": list(self.metadata.get("warnings", [])),
        }

    def affine_xyz(self) -> np.ndarray:
        """4×4 voxel-(i=x, j=y, k=z) → RAS mm affine, the form nibabel / NIfTI use."""
        return xyz_affine_to_zyx(self.affine)

    def world(self, index_zyx) -> np.ndarray:
        """RAS world positions (…, 3) in mm of voxel indices (…, 3) given as (z, y, x)."""
        index = np.asarray(index_zyx, dtype=float)
        return index @ self.affine[:3, :3].T + self.affine[:3, 3]

    def direction(self) -> np.ndarray:
        """3×3 unit direction cosines: column a = RAS direction of voxel axis a (z, y, x)."""
        return self.affine[:3, :3] / np.asarray(self.spacing)[None, :]

    def axis_letters(self) -> list[tuple[str, str]]:
        """Anatomical letters (low end, high end) of the (z, y, x) voxel axes, e.g. ('I', 'S')."""
        return axis_letters(self.affine)

    def strided_affine(self, factor: int) -> np.ndarray:
        """The affine of ``data[::f, ::f, ::f]`` (every ``f``-th voxel from voxel 0)."""
        return self.affine @ np.diag([float(factor)] * 3 + [1.0])
