"""Volume readers: NIfTI, DICOM series, NRRD, TIFF stacks, .npy/.npz, MetaImage (.mhd/.mha + raw).

Every reader returns a :class:`~engines.volume.model.Volume` with ``data[z, y, x]`` and
``spacing``/``origin`` in ``(z, y, x)`` order (mm), whatever order the format stores.
Use :func:`read_volume` (dispatch by suffix / folder / DICOM magic) or :func:`open_volume`
(also accepts the sample names ``phantom:``, ``phantom:256``, ``sample:phantom``).

Large volumes: a reader first computes the voxel count from the header. Above ``max_voxels``
it raises :class:`VolumeTooLarge` unless ``downsample=True``, in which case it keeps every
``f``-th voxel along each axis (smallest integer ``f`` that fits) and multiplies the spacing
by ``f``. Corrupt or truncated files raise :class:`VolumeReadError` with a one-line message.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engines.volume.geometry import (
    dicom_multiframe_affine,
    dicom_series_affine,
    meta_affine,
    nrrd_affine,
    stride_affine,
    tiff_spacing_mm,
)
from engines.volume.model import DEFAULT_MAX_VOXELS, Volume, VolumeReadError, VolumeTooLarge, xyz_affine_to_zyx

__all__ = [
    "READERS",
    "SUFFIXES",
    "downsample_factor",
    "is_sample_name",
    "open_volume",
    "read_volume",
]


# --------------------------------------------------------------------------- size guard
def downsample_factor(shape: tuple, max_voxels: int) -> int:
    """Smallest integer stride ``f`` with ``prod(ceil(n / f)) <= max_voxels`` (1 if it fits)."""
    factor = 1
    while math.prod(math.ceil(n / factor) for n in shape) > max_voxels:
        factor += 1
    return factor


def _guard(shape: tuple, name: str, max_voxels: int | None, downsample: bool) -> int:
    """Return the stride to read ``shape`` with, or raise :class:`VolumeTooLarge`."""
    if not max_voxels:
        return 1
    count = math.prod(shape)
    if count <= max_voxels:
        return 1
    factor = downsample_factor(shape, max_voxels)
    if not downsample:
        dims = "×".join(str(n) for n in shape)
        raise VolumeTooLarge(
            f"{name} is {dims} = {count / 1e6:.0f} M voxels ({count * 4 / 2**30:.1f} GB as float32), "
            f"more than the limit of {max_voxels / 1e6:.0f} M voxels; open it with downsampling "
            f"(every {factor}th voxel) or raise the limit"
        )
    return factor


def _note_stride(volume: Volume, factor: int) -> Volume:
    if factor > 1:
        volume.metadata["downsampled"] = factor
        volume.metadata["warnings"].append(f"downsampled by {factor} along every axis to fit the voxel limit")
    return volume


def _clean(data: np.ndarray, name: str) -> np.ndarray:
    """Contiguous copy; refuses volumes that are all NaN/inf."""
    data = np.ascontiguousarray(data)
    if data.dtype.kind == "f" and not np.isfinite(data).any():
        raise VolumeReadError(f"{name} contains no finite values")
    if data.dtype == np.float16:
        data = data.astype(np.float32)
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    return data


# --------------------------------------------------------------------------- NIfTI
def read_nifti(path: Path, max_voxels: int | None = DEFAULT_MAX_VOXELS, downsample: bool = False) -> Volume:
    """NIfTI-1/2 (``.nii``, ``.nii.gz``) via nibabel. nibabel's (i, j, k) = (x, y, z) is reversed."""
    import nibabel as nib

    name = path.name
    try:
        image = nib.load(str(path))
    except Exception as exc:  # nibabel raises many kinds for bad headers
        raise VolumeReadError(f"{name} is not a readable NIfTI file: {_first_line(exc)}") from exc
    shape = tuple(image.shape)
    warnings = []
    if len(shape) < 3:
        raise VolumeReadError(f"{name} holds a {len(shape)}-D image of shape {shape}, not a volume")
    index: tuple = ()
    if len(shape) > 3:
        if math.prod(shape[3:]) > 1:
            warnings.append(f"{name} has shape {shape}; showing the first 3-D volume")
        index = (0,) * (len(shape) - 3)
    stride = _guard(shape[:3][::-1], name, max_voxels, downsample)
    try:
        raw = np.asanyarray(image.dataobj[(slice(None, None, stride),) * 3 + index])
    except Exception as exc:
        raise VolumeReadError(f"{name} is truncated or corrupt: {_first_line(exc)}") from exc
    data = _clean(raw.transpose(2, 1, 0), name)
    header = image.header
    codes = [int(header["sform_code"]), int(header["qform_code"])] if "sform_code" in header else [0, 0]
    volume = Volume(
        data,
        affine=stride_affine(xyz_affine_to_zyx(image.affine), stride),  # nibabel: sform, else qform, else pixdim
        metadata={"format": "NIfTI", "path": str(path), "nifti_codes": codes, "warnings": warnings},
    )
    return _note_stride(volume, stride)


# --------------------------------------------------------------------------- NRRD
def read_nrrd(path: Path, max_voxels: int | None = DEFAULT_MAX_VOXELS, downsample: bool = False) -> Volume:
    """NRRD (``.nrrd`` or detached ``.nhdr``) via pynrrd, read in C index order (z, y, x)."""
    import nrrd

    name = path.name
    try:
        header = nrrd.read_header(str(path))
    except Exception as exc:
        raise VolumeReadError(f"{name} is not a readable NRRD file: {_first_line(exc)}") from exc
    sizes = [int(s) for s in header.get("sizes", [])]
    if len(sizes) != 3:
        raise VolumeReadError(f"{name} has {len(sizes)} axes (sizes {sizes}); a volume needs 3")
    stride = _guard(tuple(sizes[::-1]), name, max_voxels, downsample)
    try:
        data, header = nrrd.read(str(path), index_order="C")
    except Exception as exc:
        raise VolumeReadError(f"{name} is truncated or corrupt: {_first_line(exc)}") from exc
    warnings: list[str] = []
    affine = nrrd_affine(header, warnings)
    data = _clean(data[::stride, ::stride, ::stride], name)
    volume = Volume(
        data,
        affine=stride_affine(affine, stride),
        metadata={"format": "NRRD", "path": str(path), "space": str(header.get("space", "")), "warnings": warnings},
    )
    return _note_stride(volume, stride)


# --------------------------------------------------------------------------- TIFF
def read_tiff(path: Path, max_voxels: int | None = DEFAULT_MAX_VOXELS, downsample: bool = False) -> Volume:
    """A TIFF stack (multi-page or ImageJ hyperstack) via tifffile: pages = z.

    x/y spacing from the resolution tags, z from ImageJ's ``spacing``; 1 where absent.
    RGB stacks are converted to grey (mean of channels) with a warning.
    """
    import tifffile

    name = path.name
    warnings: list[str] = []
    try:
        with tifffile.TiffFile(str(path)) as tif:
            series = tif.series[0]
            axes = series.axes
            shape = tuple(series.shape)
            page = tif.pages[0]
            ij = tif.imagej_metadata or {}
            res = {}
            for tag_name in ("XResolution", "YResolution", "ResolutionUnit"):
                tag = page.tags.get(tag_name)
                if tag is not None:
                    res[tag_name] = tag.value
            spatial = [n for n, a in zip(shape, axes) if a not in "CS"]
            if len(spatial) < 3 or sum(1 for n in spatial if n > 1) < 3:
                raise VolumeReadError(f"{name} is a single image ({'×'.join(map(str, shape))}, axes {axes}), not a stack")
            stride = _guard(tuple(spatial[-3:]), name, max_voxels, downsample)
            data = series.asarray()
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(f"{name} is not a readable TIFF stack: {_first_line(exc)}") from exc
    data = np.asarray(data)
    if axes and axes[-1] in "CS" and data.ndim >= 4:
        warnings.append(f"{name} has colour samples; converted to grey")
        data = data.mean(axis=-1).astype(np.float32)
    while data.ndim > 3:
        if data.shape[0] > 1:
            warnings.append(f"{name} has shape {shape} (axes {axes}); showing the first 3-D stack")
        data = data[0]
    data = _clean(data[::stride, ::stride, ::stride], name)
    spacing, unit = tiff_spacing_mm(res, ij, warnings)
    meta = {"format": "TIFF", "path": str(path), "warnings": warnings}
    if unit:
        meta["spatial_unit"] = unit
    volume = Volume(data, spacing=tuple(s * stride for s in spacing), metadata=meta)
    return _note_stride(volume, stride)


# --------------------------------------------------------------------------- numpy
def _sidecar(path: Path) -> dict:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.exists():
            try:
                return json.loads(candidate.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise VolumeReadError(f"{candidate.name} (spacing sidecar) is not valid JSON: {exc}") from exc
    return {}


def read_npy(path: Path, max_voxels: int | None = DEFAULT_MAX_VOXELS, downsample: bool = False) -> Volume:
    """A 3-D ``.npy`` array in (z, y, x) order; spacing/origin/modality/units from an optional
    JSON sidecar ``<file>.json`` (keys ``spacing``, ``origin`` in z, y, x mm)."""
    name = path.name
    try:
        array = np.load(str(path), mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise VolumeReadError(f"{name} is not a readable .npy file (truncated or corrupt?): {_first_line(exc)}") from exc
    return _from_arrays(array, _sidecar(path), name, "NumPy", path, max_voxels, downsample)


def read_npz(path: Path, max_voxels: int | None = DEFAULT_MAX_VOXELS, downsample: bool = False) -> Volume:
    """A ``.npz`` archive: the volume under ``volume``/``data``/``image``/``arr_0`` (or the only
    3-D array), optional ``spacing`` and ``origin`` arrays (z, y, x mm)."""
    name = path.name
    try:
        with np.load(str(path), allow_pickle=False) as archive:
            keys = list(archive.keys())
            key = next((k for k in ("volume", "data", "image", "arr_0") if k in keys), None)
            if key is None:
                three_d = [k for k in keys if archive[k].ndim == 3]
                if len(three_d) != 1:
                    raise VolumeReadError(f"{name} holds {keys}; name the volume 'volume' or 'data'")
                key = three_d[0]
            array = archive[key]
            meta = {k: archive[k].tolist() for k in ("spacing", "origin", "affine") if k in keys}
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(f"{name} is not a readable .npz file (truncated or corrupt?): {_first_line(exc)}") from exc
    return _from_arrays(array, {**_sidecar(path), **meta}, name, "NumPy archive", path, max_voxels, downsample)


def _from_arrays(array, meta, name, fmt, path, max_voxels, downsample) -> Volume:
    if array.ndim != 3:
        raise VolumeReadError(f"{name} holds an array of shape {array.shape}; a volume must be 3-D (z, y, x)")
    stride = _guard(array.shape, name, max_voxels, downsample)
    data = _clean(np.array(array[::stride, ::stride, ::stride]), name)
    spacing = tuple(float(s) * stride for s in meta.get("spacing", (1.0, 1.0, 1.0)))
    affine = meta.get("affine")  # optional 4×4 (z, y, x) index → RAS mm; wins over spacing/origin
    volume = Volume(
        data,
        spacing=spacing,
        origin=tuple(meta.get("origin", (0.0, 0.0, 0.0))),
        modality=str(meta.get("modality", "unknown")),
        units=str(meta.get("units", "")),
        metadata={"format": fmt, "path": str(path)},
        affine=None if affine is None else stride_affine(_matrix(affine, name), stride),
    )
    return _note_stride(volume, stride)


# --------------------------------------------------------------------------- MetaImage
_MET_TYPES = {
    "MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2",
    "MET_UINT": "u4", "MET_INT": "i4", "MET_ULONG": "u8", "MET_LONG": "i8",
    "MET_ULONG_LONG": "u8", "MET_LONG_LONG": "i8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}


def parse_mhd_header(text: str) -> tuple[dict, int]:
    """Parse MetaImage ``key = value`` lines up to ``ElementDataFile``; returns (fields, chars used)."""
    fields: dict[str, str] = {}
    used = 0
    for line in text.splitlines(keepends=True):
        used += len(line.encode("latin-1"))
        if "=" not in line:
            if line.strip():
                raise VolumeReadError(f"bad MetaImage header line {line.strip()[:40]!r}")
            continue
        key, value = line.split("=", 1)
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    return fields, used


def read_meta(path: Path, max_voxels: int | None = DEFAULT_MAX_VOXELS, downsample: bool = False) -> Volume:
    """MetaImage: ``.mhd`` header + raw data file (``ElementDataFile``), or ``.mha`` (``LOCAL``).

    DimSize/ElementSpacing/Offset are x, y, z in the header and reversed here.
    """
    name = path.name
    try:
        head = path.read_bytes()[:65536].decode("latin-1")
    except OSError as exc:
        raise VolumeReadError(f"cannot read {name}: {exc}") from exc
    fields, header_len = parse_mhd_header(head)
    try:
        ndims = int(fields.get("NDims", "0"))
        dims = [int(v) for v in fields["DimSize"].split()]
        dtype = np.dtype(_MET_TYPES[fields["ElementType"].upper()])
        data_file = fields["ElementDataFile"]
    except KeyError as exc:
        raise VolumeReadError(f"{name} is not a MetaImage header: missing or unknown {exc}") from exc
    except ValueError as exc:
        raise VolumeReadError(f"{name} has a bad MetaImage header: {exc}") from exc
    if ndims != 3 or len(dims) != 3:
        raise VolumeReadError(f"{name} describes a {ndims}-D image {dims}; a volume needs NDims = 3")
    channels = int(fields.get("ElementNumberOfChannels", "1"))
    if channels != 1:
        raise VolumeReadError(f"{name} has {channels} channels per voxel; only scalar volumes are supported")
    msb = (fields.get("BinaryDataByteOrderMSB") or fields.get("ElementByteOrderMSB") or "False").lower() == "true"
    dtype = dtype.newbyteorder(">" if msb else "<")
    warnings: list[str] = []
    affine = meta_affine(fields, warnings)
    shape = tuple(dims[::-1])
    stride = _guard(shape, name, max_voxels, downsample)
    needed = math.prod(shape) * dtype.itemsize
    compressed = fields.get("CompressedData", "False").lower() == "true"
    if data_file.upper() == "LOCAL":
        source, offset = path, header_len
    else:
        if data_file.upper() == "LIST" or "%" in data_file:
            raise VolumeReadError(f"{name}: multi-file MetaImage data ({data_file}) is not supported")
        source, offset = path.parent / data_file, int(fields.get("HeaderSize", "0") or 0)
        if not source.exists():
            raise VolumeReadError(f"{name} refers to data file {data_file}, which does not exist")
    try:
        if compressed:
            raw = zlib.decompress(source.read_bytes()[offset:])
            if len(raw) < needed:
                raise VolumeReadError(f"{source.name} decompresses to {len(raw)} bytes; the header needs {needed}")
            data = np.frombuffer(raw, dtype=dtype, count=math.prod(shape)).reshape(shape)
        else:
            size = source.stat().st_size - offset
            if offset < 0 or size < needed:
                raise VolumeReadError(
                    f"{source.name} is truncated: it holds {max(size, 0)} bytes of voxel data, the header needs {needed}"
                )
            data = np.memmap(source, dtype=dtype, mode="r", offset=offset, shape=shape)
    except VolumeReadError:
        raise
    except (OSError, zlib.error, ValueError) as exc:
        raise VolumeReadError(f"{source.name} is corrupt: {_first_line(exc)}") from exc
    data = _clean(np.array(data[::stride, ::stride, ::stride]).astype(dtype.newbyteorder("=")), name)
    modality = fields.get("Modality", "unknown").replace("MET_MOD_", "") or "unknown"
    volume = Volume(
        data,
        affine=stride_affine(affine, stride),
        modality=modality,
        metadata={"format": "MetaImage", "path": str(path), "warnings": warnings,
                  "anatomical_orientation": fields.get("AnatomicalOrientation", "")},
    )
    return _note_stride(volume, stride)


# --------------------------------------------------------------------------- DICOM
def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_dicom(path: Path, max_voxels: int | None = DEFAULT_MAX_VOXELS, downsample: bool = False) -> Volume:
    """A DICOM series from a folder or from one dropped file of the series (its siblings with the
    same SeriesInstanceUID are read), or a single multi-frame file.

    Slices are sorted by ImagePositionPatient projected on the slice normal; z spacing comes
    from position differences (uneven spacing is reported in ``metadata['warnings']`` and the
    median is used); values = raw · RescaleSlope + RescaleIntercept (HU for CT).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    wanted_uid = None
    if not path.is_dir():
        try:
            first = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (InvalidDicomError, Exception) as exc:
            raise VolumeReadError(f"{path.name} is not a readable DICOM file: {_first_line(exc)}") from exc
        if int(getattr(first, "NumberOfFrames", 1) or 1) > 1:
            return _read_multiframe(path, max_voxels, downsample)
        wanted_uid = getattr(first, "SeriesInstanceUID", None)
    candidates = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    series: dict[str, list] = {}
    for file in candidates:
        if file.name.upper() == "DICOMDIR" or file.suffix.lower() in (".json", ".txt", ".xml"):
            continue
        try:
            ds = pydicom.dcmread(str(file), stop_before_pixels=True)
        except Exception:  # noqa: BLE001, S112 - not DICOM (or unreadable): skip it, like a file browser
            continue
        if "Rows" not in ds or "ImagePositionPatient" not in ds:
            continue
        series.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((file, ds))
    if not series:
        raise VolumeReadError(f"no DICOM image slices with positions found in {folder.name or folder}")
    warnings: list[str] = []
    if wanted_uid is not None and str(wanted_uid) in series:
        uid = str(wanted_uid)
    else:
        uid = max(series, key=lambda k: len(series[k]))
        if len(series) > 1:
            warnings.append(f"{len(series)} series in the folder; reading the largest ({len(series[uid])} slices)")
    slices = series[uid]
    if len(slices) == 1 and int(getattr(slices[0][1], "NumberOfFrames", 1) or 1) > 1:
        return _read_multiframe(slices[0][0], max_voxels, downsample)
    if len(slices) < 2:
        raise VolumeReadError("the DICOM series has only one slice; a volume needs at least 2")
    ref = slices[0][1]
    iop = np.asarray([float(v) for v in getattr(ref, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0])])
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([np.dot([float(v) for v in ds.ImagePositionPatient], normal) for _, ds in slices])
    order = np.argsort(positions, kind="stable")
    slices = [slices[i] for i in order]
    positions = positions[order]
    gaps = np.diff(positions)
    if np.any(gaps < 1e-4):
        raise VolumeReadError("the DICOM series has several slices at the same position (mixed series or duplicates)")
    dz = float(np.median(gaps))
    if gaps.max() - gaps.min() > max(1e-3, 0.01 * dz):
        warnings.append(
            f"uneven slice spacing: {gaps.min():.4g} to {gaps.max():.4g} mm (missing slices?); "
            f"using the median {dz:.4g} mm"
        )
    rows, cols = int(ref.Rows), int(ref.Columns)
    if any(int(ds.Rows) != rows or int(ds.Columns) != cols for _, ds in slices):
        raise VolumeReadError("the DICOM slices do not all have the same size")
    pixel_spacing = [float(v) for v in getattr(ref, "PixelSpacing", [1.0, 1.0])]
    stride = _guard((len(slices), rows, cols), folder.name or "series", max_voxels, downsample)
    kept = slices[::stride]
    data = np.empty((len(kept), math.ceil(rows / stride), math.ceil(cols / stride)), dtype=np.float32)
    for index, (file, _) in enumerate(kept):
        try:
            ds = pydicom.dcmread(str(file))
            pixels = ds.pixel_array
        except Exception as exc:
            raise VolumeReadError(f"{file.name}: cannot decode the pixel data (truncated or corrupt): {_first_line(exc)}") from exc
        if pixels.shape != (rows, cols):
            raise VolumeReadError(f"{file.name}: pixel data has shape {pixels.shape}, expected {(rows, cols)}")
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        data[index] = pixels[::stride, ::stride].astype(np.float32) * slope + intercept
    modality = str(getattr(ref, "Modality", "unknown") or "unknown")
    first_pos = np.asarray([float(v) for v in slices[0][1].ImagePositionPatient])
    last_pos = np.asarray([float(v) for v in slices[-1][1].ImagePositionPatient])
    affine = dicom_series_affine(iop, pixel_spacing, first_pos, last_pos, dz)
    volume = Volume(
        data,
        affine=stride_affine(affine, stride),
        modality=modality,
        units="HU" if modality == "CT" else str(getattr(ref, "RescaleType", "") or ""),
        metadata={
            "format": "DICOM series",
            "path": str(path),
            "series_uid": uid,
            "slices": len(slices),
            "slice_positions_mm": positions.tolist(),
            "warnings": warnings,
        },
    )
    return _note_stride(volume, stride)


def _read_multiframe(path: Path, max_voxels, downsample) -> Volume:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
        frames = int(ds.NumberOfFrames)
        stride = _guard((frames, int(ds.Rows), int(ds.Columns)), path.name, max_voxels, downsample)
        pixels = ds.pixel_array
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(f"{path.name}: cannot decode the multi-frame pixel data: {_first_line(exc)}") from exc
    if pixels.ndim != 3:
        raise VolumeReadError(f"{path.name}: multi-frame pixel data has shape {pixels.shape}; expected 3-D grey frames")
    slope = float(getattr(ds, "RescaleSlope", getattr(ds, "DoseGridScaling", 1.0)) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    data = pixels[::stride, ::stride, ::stride].astype(np.float32) * slope + intercept
    dz = None
    offsets = getattr(ds, "GridFrameOffsetVector", None)
    if offsets is not None and len(offsets) > 1:
        dz = float(np.median(np.abs(np.diff([float(o) for o in offsets]))))
    dz = dz or float(getattr(ds, "SpacingBetweenSlices", 0) or 0) or float(getattr(ds, "SliceThickness", 0) or 0) or 1.0
    pixel_spacing = [float(v) for v in getattr(ds, "PixelSpacing", [1.0, 1.0])]
    modality = str(getattr(ds, "Modality", "unknown") or "unknown")
    warnings: list[str] = []
    affine = dicom_multiframe_affine(ds, dz, pixel_spacing, warnings)
    volume = Volume(
        data,
        spacing=(dz * stride, pixel_spacing[0] * stride, pixel_spacing[1] * stride),
        modality=modality,
        units="HU" if modality == "CT" else ("Gy" if modality == "RTDOSE" else ""),
        metadata={"format": "DICOM multi-frame", "path": str(path), "warnings": warnings},
        affine=None if affine is None else stride_affine(affine, stride),
    )
    return _note_stride(volume, stride)


# --------------------------------------------------------------------------- dispatch
READERS: dict[str, Callable[..., Volume]] = {
    ".nii.gz": read_nifti,
    ".nii": read_nifti,
    ".nrrd": read_nrrd,
    ".nhdr": read_nrrd,
    ".tif": read_tiff,
    ".tiff": read_tiff,
    ".npy": read_npy,
    ".npz": read_npz,
    ".mhd": read_meta,
    ".mha": read_meta,
    ".dcm": read_dicom,
    ".ima": read_dicom,
}
#: every suffix :func:`read_volume` understands ("/" = a DICOM folder)
SUFFIXES = list(READERS) + ["/"]


def read_volume(
    path: str | os.PathLike,
    *,
    max_voxels: int | None = DEFAULT_MAX_VOXELS,
    downsample: bool = False,
) -> Volume:
    """Read any supported volume file or DICOM folder into a :class:`Volume` (data ``(Z, Y, X)``).

    Raises :class:`VolumeReadError` (a ``ValueError``) with a one-line message for missing,
    unsupported, corrupt or truncated input, and :class:`VolumeTooLarge` above ``max_voxels``
    unless ``downsample``.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeReadError(f"file not found: {path}")
    if path.is_dir():
        return read_dicom(path, max_voxels, downsample)
    lower = path.name.lower()
    if path.stat().st_size == 0:
        raise VolumeReadError(f"{path.name} is empty")
    for suffix, reader in READERS.items():
        if lower.endswith(suffix):
            return reader(path, max_voxels, downsample)
    if lower.endswith(".raw"):
        header = path.with_suffix(".mhd")
        if header.exists():
            return read_meta(header, max_voxels, downsample)
        raise VolumeReadError(
            f"{path.name} is raw data without a header: write a .mhd next to it "
            "(NDims = 3, DimSize = X Y Z, ElementType = MET_SHORT, ElementDataFile = " + path.name + ")"
        )
    if _is_dicom(path):
        return read_dicom(path, max_voxels, downsample)
    raise VolumeReadError(f"{path.name}: unsupported volume format (supported: {', '.join(SUFFIXES)})")


def is_sample_name(spec: str) -> bool:
    """Whether ``spec`` names the built-in phantom (``phantom:``, ``phantom:256``, ``sample:phantom``)."""
    text = str(spec).lower()
    return text.startswith(("phantom:", "sample:phantom")) or text == "phantom"


def open_volume(spec: str | os.PathLike, **kwargs) -> Volume:
    """:func:`read_volume`, or the procedural phantom for ``phantom:[SIZE]`` / ``sample:phantom[:SIZE]``."""
    text = os.fspath(spec)
    if is_sample_name(text) and not Path(text).exists():
        from engines.volume.phantom import make_phantom

        size_text = text.lower().replace("sample:", "").replace("phantom", "").strip(":")
        try:
            size = int(size_text) if size_text else 128
        except ValueError as exc:
            raise VolumeReadError(f"bad phantom size {size_text!r}; use e.g. phantom:128") from exc
        return make_phantom(size)[0]
    return read_volume(text, **kwargs)


def _matrix(value, name: str) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise VolumeReadError(f"{name}: 'affine' must be a 4×4 matrix of numbers") from exc
    if matrix.shape != (4, 4):
        raise VolumeReadError(f"{name}: 'affine' must be a 4×4 matrix, got shape {matrix.shape}")
    return matrix


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
