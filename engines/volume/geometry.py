"""Index → world geometry for each file format, as 4×4 RAS affines in (z, y, x) index order.

Every function returns the affine for the *full-resolution* grid; readers apply
:func:`stride_affine` when they keep every ``f``-th voxel. Conventions (see ``model.py``):
world = RAS+ mm, index columns ordered like the numpy axes ``(z, y, x)``.

- DICOM: ImagePositionPatient / ImageOrientationPatient / PixelSpacing, LPS (PS3.3 C.7.6.2.1.1)
- NRRD: ``space directions`` (one vector per axis, fastest first), ``space origin``, ``space``
- MetaImage: ``TransformMatrix`` (group ``i`` of NDims numbers = direction of axis ``i``),
  ``Offset``, ``ElementSpacing``; ITK world is always LPS (``AnatomicalOrientation`` is
  descriptive only and is just checked)
- TIFF: X/YResolution in pixels per ResolutionUnit (inch, cm) or ImageJ's ``unit``
"""

from __future__ import annotations

import numpy as np

from engines.volume.model import LPS_TO_RAS, VolumeReadError, axis_letters, xyz_affine_to_zyx

__all__ = [
    "dicom_multiframe_affine",
    "dicom_series_affine",
    "meta_affine",
    "nrrd_affine",
    "stride_affine",
    "tiff_spacing_mm",
]


def stride_affine(affine: np.ndarray, factor: int) -> np.ndarray:
    """The affine of ``data[::f, ::f, ::f]``: voxel ``i`` of the subsampled grid is voxel ``f·i``."""
    return np.asarray(affine, dtype=float) @ np.diag([float(factor)] * 3 + [1.0])


def _unit(vector, what: str) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-6:
        raise VolumeReadError(f"{what} is a zero or invalid direction vector")
    return vector / norm


# --------------------------------------------------------------------------- DICOM
def dicom_series_affine(iop, pixel_spacing, first_position, last_position, slice_step: float) -> np.ndarray:
    """RAS affine of a sorted single-frame series.

    Columns (LPS): k → along the series (direction first→last slice, scaled so its component on
    the slice normal is ``slice_step``; keeps gantry tilt), j → column cosine · PixelSpacing[0]
    (row spacing), i → row cosine · PixelSpacing[1]; origin = first slice's IPP.
    """
    row_dir = _unit(iop[:3], "ImageOrientationPatient (row)")
    col_dir = _unit(iop[3:6], "ImageOrientationPatient (column)")
    normal = np.cross(row_dir, col_dir)
    first, last = np.asarray(first_position, dtype=float), np.asarray(last_position, dtype=float)
    along = last - first
    if np.linalg.norm(along) > 1e-6 and abs(np.dot(_unit(along, "slice offset"), normal)) > 0.1:
        direction = _unit(along, "slice offset")
        k_vector = direction * slice_step / abs(float(np.dot(direction, normal)))
    else:
        k_vector = normal * slice_step
    lps = np.eye(4)
    lps[:3, 0] = k_vector
    lps[:3, 1] = col_dir * float(pixel_spacing[0])
    lps[:3, 2] = row_dir * float(pixel_spacing[1])
    lps[:3, 3] = first
    return LPS_TO_RAS @ lps


def dicom_multiframe_affine(ds, slice_step: float, pixel_spacing, warnings: list[str]) -> np.ndarray | None:
    """RAS affine of a multi-frame object (RT dose: IPP/IOP + GridFrameOffsetVector; enhanced
    objects: per-frame PlanePositionSequence), or None when it carries no patient geometry."""

    def first_item(sequence_name):
        seq = getattr(ds, sequence_name, None)
        return seq[0] if seq else None

    iop = getattr(ds, "ImageOrientationPatient", None)
    shared = first_item("SharedFunctionalGroupsSequence")
    if iop is None and shared is not None and "PlaneOrientationSequence" in shared:
        iop = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    positions = []
    for frame in getattr(ds, "PerFrameFunctionalGroupsSequence", None) or []:
        if "PlanePositionSequence" in frame:
            positions.append([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient])
    if iop is None:
        return None
    iop = [float(v) for v in iop]
    normal = np.cross(_unit(iop[:3], "ImageOrientationPatient"), _unit(iop[3:6], "ImageOrientationPatient"))
    if len(positions) >= 2:
        first, last = positions[0], positions[-1]
    elif getattr(ds, "ImagePositionPatient", None) is not None:
        origin = np.asarray([float(v) for v in ds.ImagePositionPatient])
        offsets = [float(o) for o in (getattr(ds, "GridFrameOffsetVector", None) or [0.0])]
        first, last = origin + normal * offsets[0], origin + normal * offsets[-1]  # offsets run along the normal
    else:
        warnings.append("the multi-frame file has no frame positions; its position in space is unknown")
        return None
    return dicom_series_affine(iop, pixel_spacing, first, last, slice_step)


# --------------------------------------------------------------------------- NRRD
_NRRD_SPACES = {
    "right-anterior-superior": np.eye(4), "ras": np.eye(4),
    "left-posterior-superior": LPS_TO_RAS, "lps": LPS_TO_RAS,
    "left-anterior-superior": np.diag([-1.0, 1.0, 1.0, 1.0]), "las": np.diag([-1.0, 1.0, 1.0, 1.0]),
}


def nrrd_affine(header: dict, warnings: list[str]) -> np.ndarray:
    """RAS affine from a pynrrd header: ``space directions`` rows are the world vectors of the
    file axes (fastest first = x), ``space origin`` the centre of voxel 0; ``space`` picks the
    frame (LPS/LAS flipped to RAS; scanner-xyz / 3D-* kept as they are, with a warning).
    Without directions, ``spacings`` (or 1) give an axis-aligned RAS grid."""
    xyz = np.eye(4)
    directions = header.get("space directions")
    if directions is not None:
        dirs = np.asarray(directions, dtype=float)
        if dirs.ndim != 2 or dirs.shape[0] != 3 or dirs.shape[1] < 3 or not np.all(np.isfinite(dirs[:, :3])):
            raise VolumeReadError("the NRRD 'space directions' do not give one 3-D vector per axis")
        xyz[:3, :3] = dirs[:, :3].T
    else:
        spacings = header.get("spacings")
        if spacings is not None:
            xyz[:3, :3] = np.diag([float(s) if np.isfinite(s) and s > 0 else 1.0 for s in spacings][:3])
    origin = header.get("space origin")
    if origin is not None:
        origin = np.asarray(origin, dtype=float)[:3]
        if not np.all(np.isfinite(origin)):
            raise VolumeReadError("the NRRD 'space origin' is not three numbers")
        xyz[:3, 3] = origin
    space = str(header.get("space", "") or "").lower().replace("-time", "")
    if space in _NRRD_SPACES:
        xyz = _NRRD_SPACES[space] @ xyz
    elif space or directions is not None:
        warnings.append(f"NRRD space '{space or 'unspecified'}' has no anatomical frame; taken as RAS")
    return xyz_affine_to_zyx(xyz)


# --------------------------------------------------------------------------- MetaImage
def _numbers(text: str, count: int, key: str) -> list[float]:
    try:
        values = [float(v) for v in text.split()]
    except ValueError as exc:
        raise VolumeReadError(f"MetaImage {key} is not a list of numbers: {text[:40]!r}") from exc
    if len(values) != count or not all(np.isfinite(values)):
        raise VolumeReadError(f"MetaImage {key} needs {count} numbers, got {text[:40]!r}")
    return values


def meta_affine(fields: dict, warnings: list[str]) -> np.ndarray:
    """RAS affine from MetaImage fields, as ITK builds it (LPS world): axis ``a`` of the file
    (x, y, z) points along ``TransformMatrix[3a:3a+3]`` (ITK's Direction column ``a``), scaled by
    ``ElementSpacing[a]``; voxel 0 sits at ``Offset``."""
    spacing = _numbers(fields.get("ElementSpacing") or fields.get("ElementSize") or "1 1 1", 3, "ElementSpacing")
    if min(spacing) <= 0:
        raise VolumeReadError(f"MetaImage ElementSpacing must be positive, got {spacing}")
    offset = _numbers(fields.get("Offset") or fields.get("Origin") or fields.get("Position") or "0 0 0", 3, "Offset")
    matrix_text = fields.get("TransformMatrix") or fields.get("Rotation") or fields.get("Orientation") or "1 0 0 0 1 0 0 0 1"
    groups = np.asarray(_numbers(matrix_text, 9, "TransformMatrix")).reshape(3, 3)  # row a = direction of axis a
    if abs(np.linalg.det(groups)) < 1e-6:
        raise VolumeReadError("MetaImage TransformMatrix is singular")
    lps = np.eye(4)
    lps[:3, :3] = groups.T * np.asarray(spacing)[None, :]
    lps[:3, 3] = offset
    affine = xyz_affine_to_zyx(LPS_TO_RAS @ lps)
    stated = str(fields.get("AnatomicalOrientation", "") or "").strip().upper()
    if len(stated) == 3 and stated != "???":
        # ITK's letters name where each axis comes FROM (RAI = x from right to left ...)
        implied = "".join(low for low, _high in axis_letters(affine)[::-1])
        if implied != stated:
            warnings.append(f"AnatomicalOrientation says {stated} but TransformMatrix gives {implied}; using TransformMatrix")
    return affine


# --------------------------------------------------------------------------- TIFF
_UNIT_MM = {
    "mm": 1.0, "millimeter": 1.0, "millimetre": 1.0, "cm": 10.0, "centimeter": 10.0, "m": 1000.0, "meter": 1000.0,
    "um": 1e-3, "µm": 1e-3, "μm": 1e-3, "micron": 1e-3, "microns": 1e-3, "micrometer": 1e-3, "\\u00b5m": 1e-3,
    "nm": 1e-6, "nanometer": 1e-6, "inch": 25.4, "in": 25.4, "inches": 25.4,
}
_RESUNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}  # TIFF 6.0: 2 inch, 3 cm (4, 5: tifffile extensions)


def tiff_spacing_mm(tags: dict, imagej: dict, warnings: list[str]) -> tuple[tuple, str]:
    """Voxel size ``(dz, dy, dx)`` in mm and the unit it was converted from.

    ``tags`` holds XResolution / YResolution as (numerator, denominator) pixels per unit and
    ResolutionUnit; ``imagej`` the ImageJ description (``unit``, ``spacing`` = z step in that unit).
    Inch / cm resolution units are honoured; otherwise ImageJ's unit names the length. With no
    known unit the sizes stay in pixels (spacing 1 where nothing is given) and the unit is 'pixel'.
    """
    def per_pixel(tag_name):
        value = tags.get(tag_name)
        if value is None:
            return None
        try:
            num, den = value
            return float(den) / float(num) if num else None
        except (TypeError, ValueError):
            return None

    unit_name = str((imagej or {}).get("unit", "") or "").strip()
    imagej_mm = _UNIT_MM.get(unit_name.lower())
    try:
        resunit = int(tags.get("ResolutionUnit", 1) or 1)
    except (TypeError, ValueError):
        resunit = 1
    xy_mm = _RESUNIT_MM.get(resunit) or imagej_mm
    z_mm = imagej_mm or xy_mm
    if unit_name and imagej_mm is None and unit_name.lower() not in ("pixel", "pixels", "px"):
        warnings.append(f"unknown TIFF length unit {unit_name!r}; spacing left in that unit")
    dx, dy = per_pixel("XResolution"), per_pixel("YResolution")
    dz = float((imagej or {}).get("spacing", 0) or 0) or None
    spacing = (
        dz * z_mm if dz and z_mm else (dz or 1.0),
        dy * xy_mm if dy and xy_mm else (dy or 1.0),
        dx * xy_mm if dx and xy_mm else (dx or 1.0),
    )
    unit = "mm" if (xy_mm or z_mm) else (unit_name or "pixel")
    return spacing, unit


# --------------------------------------------------------------------------- crop box
def crop_bounds_mm(crop, spacing_zyx) -> tuple[np.ndarray, np.ndarray]:
    """The crop box ``((z0, z1), (y0, y1), (x0, x1))`` (inclusive voxel indices) as (lo, hi)
    corners in mm, ordered (x, y, z), in the volume's own frame where voxel ``(0, 0, 0)``'s centre
    is at 0 and axis ``a`` runs ``index · spacing[a]``. The box joins the centres of the first and
    last kept voxels (so interpolation never reaches a cropped voxel). Both the reference caster
    and the vispy view (whose scene is that frame) use it."""
    (z0, z1), (y0, y1), (x0, x1) = crop
    step = np.asarray(spacing_zyx, dtype=float)[::-1]
    lo = np.array([x0, y0, z0], dtype=float) * step
    hi = np.array([x1, y1, z1], dtype=float) * step
    return lo, hi


def crop_planes(crop, spacing_zyx) -> np.ndarray:
    """Six clipping planes ``(6, 2, 3)`` = (point, inward normal), x/y/z order, in mm (the vispy
    ``clipping_planes`` layout in scene units) for :func:`crop_bounds_mm`."""
    lo, hi = crop_bounds_mm(crop, spacing_zyx)
    planes = []
    for axis in range(3):
        normal = np.zeros(3)
        normal[axis] = 1.0
        low_point, high_point = np.zeros(3), np.zeros(3)
        low_point[axis], high_point[axis] = lo[axis], hi[axis]
        planes += [[low_point, normal], [high_point, -normal]]
    return np.asarray(planes, dtype=np.float32)
