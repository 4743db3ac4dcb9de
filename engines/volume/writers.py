"""Writers: label / scalar volumes to NIfTI (via nibabel) through the studio's export service."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from engines.volume.geometry import stride_affine
from engines.volume.model import Volume, xyz_affine_to_zyx

__all__ = ["nifti_bytes", "save_nifti"]


def _grid_affine(like: Volume, shape: tuple) -> np.ndarray:
    """The affine for an array of ``shape`` that samples ``like``'s grid: the same grid, or every
    ``f``-th voxel of it (``ceil(n / f)`` voxels per axis). Anything else would not line up."""
    if tuple(shape) == like.shape:
        return like.affine
    for factor in range(2, max(like.shape) + 1):
        if tuple(shape) == tuple(-(-n // factor) for n in like.shape):
            return stride_affine(like.affine, factor)
    raise ValueError(f"a {shape} array does not sample the source grid {like.shape}; it cannot be placed in its space")


def nifti_bytes(data: np.ndarray, like: Volume | None = None, *, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                compress: bool = True) -> bytes:
    """Encode a ``(Z, Y, X)`` array as NIfTI-1 bytes (gzip-compressed for ``.nii.gz``).

    The array is stored as nibabel's (i, j, k) = (x, y, z). Its voxel → RAS affine is ``like``'s
    (adjusted when ``data`` is a strided copy of ``like``'s grid), else the axis-aligned one from
    ``spacing``/``origin`` (z, y, x, mm). The affine goes into the sform and, when it has no shear,
    the qform too; a NIfTI source keeps its sform/qform codes, other sources get 1 (scanner) for
    DICOM and 2 (aligned) otherwise, so other tools overlay the file on its source.
    """
    import nibabel as nib

    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"NIfTI export needs a 3-D (Z, Y, X) array, got {data.shape}")
    if like is not None:
        affine_zyx = _grid_affine(like, data.shape)
        metadata = like.metadata
    else:
        affine_zyx = Volume(np.zeros((1, 1, 1), np.uint8), spacing=spacing, origin=origin).affine
        metadata = {}
    affine = xyz_affine_to_zyx(affine_zyx)  # the same column swap turns (z, y, x) into (x, y, z)
    default = 1 if str(metadata.get("format", "")).startswith("DICOM") else 2
    sform_code, qform_code = (int(c) for c in metadata.get("nifti_codes", (default, default)))
    image = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), affine)
    image.set_sform(affine, code=sform_code or default)
    linear = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    orthogonal = np.allclose(linear.T @ linear, np.eye(3), atol=1e-5)
    image.set_qform(affine, code=(qform_code or sform_code or default) if orthogonal else 0)
    image.header.set_xyzt_units("mm")
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=6) if compress else raw


def save_nifti(path: str | os.PathLike, data: np.ndarray, provenance: dict, *, like: Volume | None = None,
               force: bool = False, **kwargs) -> Path:
    """Write ``data`` to ``path`` (``.nii`` or ``.nii.gz``) atomically with a provenance sidecar."""
    from engines.atomic_files import save_with_sidecar

    name = Path(path).name.lower()
    if not (name.endswith((".nii", ".nii.gz"))):
        raise ValueError(f"NIfTI files end in .nii or .nii.gz, not {Path(path).name}")
    payload = nifti_bytes(data, like, compress=name.endswith(".gz"), **kwargs)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(payload)

    return save_with_sidecar(path, write, provenance, force=force)
