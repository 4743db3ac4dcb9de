"""Writers: label / scalar volumes to NIfTI (via nibabel) through the studio's export service."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from engines.volume.model import Volume

__all__ = ["nifti_bytes", "save_nifti"]


def nifti_bytes(data: np.ndarray, like: Volume | None = None, *, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                compress: bool = True) -> bytes:
    """Encode a ``(Z, Y, X)`` array as NIfTI-1 bytes (gzip-compressed for ``.nii.gz``).

    The array is stored as nibabel's (i, j, k) = (x, y, z); the affine comes from ``like``
    (its source affine or spacing/origin) or from ``spacing``/``origin`` (z, y, x, mm).
    """
    import nibabel as nib

    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"NIfTI export needs a 3-D (Z, Y, X) array, got {data.shape}")
    if like is not None:
        affine = like.affine_xyz()
    else:
        affine = Volume(np.zeros((1, 1, 1), np.uint8), spacing=spacing, origin=origin).affine_xyz()
    image = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), affine)
    image.header.set_xyzt_units("mm")
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=6) if compress else raw


def save_nifti(path: str | os.PathLike, data: np.ndarray, provenance: dict, *, like: Volume | None = None,
               force: bool = False, **kwargs) -> Path:
    """Write ``data`` to ``path`` (``.nii`` or ``.nii.gz``) atomically with a provenance sidecar."""
    from studio.export import save_with_sidecar

    name = Path(path).name.lower()
    if not (name.endswith((".nii", ".nii.gz"))):
        raise ValueError(f"NIfTI files end in .nii or .nii.gz, not {Path(path).name}")
    payload = nifti_bytes(data, like, compress=name.endswith(".gz"), **kwargs)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(payload)

    return save_with_sidecar(path, write, provenance, force=force)
