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
import stat
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engines.limits import check_decoded_size, valid_dims
from engines.volume.geometry import (
    dicom_multiframe_affine,
    dicom_series_affine,
    meta_affine,
    nrrd_affine,
    stride_affine,
    tiff_spacing_mm,
)
from engines.volume.model import (
    DEFAULT_MAX_VOXELS,
    Volume,
    VolumeReadError,
    VolumeTooLarge,
    xyz_affine_to_zyx,
)

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
    """Smallest integer stride ``f`` with ``prod(ceil(n / f)) <= max_voxels`` (1 if it fits).

    A bisection over ``1 .. max(shape)`` (the count never grows with ``f``), so absurd header
    sizes cost ~64 steps, not a loop per stride.
    """
    def count(f: int) -> int:
        return math.prod(-(-n // f) for n in shape)

    if count(1) <= max_voxels:
        return 1
    lo, hi = 1, max(max(shape), 1)  # count(lo) > max_voxels, count(hi) = 1 <= max_voxels
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(mid) > max_voxels:
            lo = mid
        else:
            hi = mid
    return hi


def _dims_text(shape: tuple) -> str:
    return "×".join(str(n) for n in shape)


def _guard(shape: tuple, name: str, max_voxels: int | None, downsample: bool, itemsize: int = 4) -> int:
    """Return the stride to read ``shape`` with, or raise :class:`VolumeTooLarge`.

    The dimensions must be whole numbers >= 1, and what is kept (``itemsize`` bytes per voxel)
    must fit the shared decoded-size limit (:mod:`engines.limits`); both are checked from the
    header before anything is allocated.
    """
    shape = valid_dims(shape, f"{name} header", VolumeReadError)
    count = math.prod(shape)
    factor = 1
    if max_voxels and count > max_voxels:
        factor = downsample_factor(shape, max_voxels)
        if not downsample:
            raise VolumeTooLarge(
                f"{name} is {_dims_text(shape)} = {count / 1e6:.0f} M voxels ({count * 4 / 2**30:.1f} GB as float32), "
                f"more than the limit of {max_voxels / 1e6:.0f} M voxels; open it with downsampling "
                f"(every {factor}th voxel) or raise the limit"
            )
    kept = math.prod(-(-n // factor) for n in shape)
    check_decoded_size(kept * max(int(itemsize), 4), f"{name} ({_dims_text(shape)} voxels)", VolumeReadError)
    return factor


def _check_whole(shape: tuple, itemsize: int, name: str) -> int:
    """For readers that decode the whole array before striding: its bytes must fit the limit."""
    shape = valid_dims(shape, f"{name} header", VolumeReadError)
    return check_decoded_size(math.prod(shape) * int(itemsize), f"{name} ({_dims_text(shape)} voxels)", VolumeReadError)


def _regular_file(candidate: Path, name: str, what: str = "data file") -> Path:
    """``candidate`` if it is an existing regular file; refuses folders, devices, fifos, missing files."""
    try:
        info = os.stat(candidate)
    except (OSError, ValueError):
        raise VolumeReadError(f"{name} refers to {what} {candidate.name or candidate}, which does not exist") from None
    if not stat.S_ISREG(info.st_mode):
        raise VolumeReadError(f"{name} refers to {what} {candidate}, which is not a regular file")
    return candidate


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
        shape = valid_dims(tuple(image.shape), f"{name} header", VolumeReadError)
        itemsize = image.get_data_dtype().itemsize
        affine = np.asarray(image.affine, dtype=float)
    except VolumeReadError:
        raise
    except Exception as exc:  # nibabel raises many kinds for bad headers
        raise VolumeReadError(f"{name} is not a readable NIfTI file: {_first_line(exc)}") from exc
    warnings = []
    if len(shape) < 3:
        raise VolumeReadError(f"{name} holds a {len(shape)}-D image of shape {shape}, not a volume")
    index: tuple = ()
    if len(shape) > 3:
        if math.prod(shape[3:]) > 1:
            warnings.append(f"{name} has shape {shape}; showing the first 3-D volume")
        index = (0,) * (len(shape) - 3)
    stride = _guard(shape[:3][::-1], name, max_voxels, downsample, itemsize)
    if not np.all(np.isfinite(affine)):
        raise VolumeReadError(f"{name} has a NIfTI header with a non-finite orientation (affine)")
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
    from nrrd.reader import _determine_datatype

    name = path.name
    warnings: list[str] = []
    with _open_regular(path, name) as handle:
        try:
            header = nrrd.read_header(handle)
            sizes = [int(s) for s in np.asarray(header.get("sizes", []), dtype=np.float64).ravel()]
            dtype = np.dtype(_determine_datatype(header))
        except Exception as exc:
            raise VolumeReadError(f"{name} is not a readable NRRD file: {_first_line(exc)}") from exc
        if len(sizes) != 3:
            raise VolumeReadError(f"{name} has {len(sizes)} axes (sizes {sizes}); a volume needs 3")
        affine = _geometry(name, nrrd_affine, header, warnings)
        shape = tuple(sizes[::-1])
        stride = _guard(shape, name, max_voxels, downsample, dtype.itemsize)
        _check_whole(shape, dtype.itemsize, name)
        data = _nrrd_data(header, handle, path, dtype, shape)
    data = _clean(data[::stride, ::stride, ::stride], name)
    volume = Volume(
        data,
        affine=stride_affine(affine, stride),
        metadata={"format": "NRRD", "path": str(path), "space": str(header.get("space", "")), "warnings": warnings},
    )
    return _note_stride(volume, stride)


def _geometry(name: str, function, *args):
    """Call a :mod:`engines.volume.geometry` helper; malformed header values become VolumeReadError."""
    try:
        return function(*args)
    except VolumeReadError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError, np.linalg.LinAlgError) as exc:
        raise VolumeReadError(f"{name} has unusable geometry fields in its header: {_first_line(exc)}") from exc


def _open_regular(path: Path, name: str):
    """Open a header file for reading (it must be a regular file)."""
    _regular_file(path, name, "file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise VolumeReadError(f"cannot read {name}: {exc.strerror or exc}") from exc


def _nrrd_data(header: dict, handle, path: Path, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """The voxels of an NRRD (attached after the header in ``handle``, or the detached ``data file``),
    read with exactly the size the header announces (never more than the decoded-size limit)."""
    name = path.name
    count = math.prod(shape)
    needed = count * dtype.itemsize
    encoding = str(header.get("encoding", "raw")).lower()
    try:
        line_skip = int(header.get("line skip", header.get("lineskip", 0)))
        byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    except (TypeError, ValueError):
        raise VolumeReadError(f"{name} has a bad 'line skip' or 'byte skip' field") from None
    if line_skip < 0 or byte_skip < -1:
        raise VolumeReadError(f"{name} has a negative 'line skip' or 'byte skip'")
    data_file = header.get("data file", header.get("datafile"))
    source, owned = handle, None
    if data_file is not None:
        text = str(data_file).strip()
        if text.upper().startswith("LIST") or len(text.split()) > 1 or "%" in text:
            raise VolumeReadError(f"{name}: multi-file NRRD data ({text[:60]}) is not supported")
        target = _regular_file(path.parent / text, name)
        try:
            owned = source = open(target, "rb")  # noqa: SIM115 - closed in the finally below
        except OSError as exc:
            raise VolumeReadError(f"cannot read the data file of {name}: {exc.strerror or exc}") from exc
    try:
        for _ in range(min(line_skip, 1 << 30)):
            if not source.readline():
                raise VolumeReadError(f"{name}: the data ends inside the {line_skip} skipped lines")
        start = source.tell()
        available = os.fstat(source.fileno()).st_size - start
        if encoding == "raw":
            if byte_skip == -1:
                start = start + available - needed
            else:
                start, available = start + byte_skip, available - byte_skip
            if available < needed or start < 0:
                raise VolumeReadError(f"{name} is truncated: it holds {max(available, 0)} bytes of voxel data, "
                                      f"the header needs {needed}")
            source.seek(start)
            raw = source.read(needed)
            if len(raw) < needed:
                raise VolumeReadError(f"{name} is truncated: the data file ended early")
            return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)
        check_decoded_size(available, f"{name} (encoded voxel data)", VolumeReadError)
        if encoding in ("gzip", "gz", "bzip2", "bz2"):
            raw = _bounded_decompress(source.read(), encoding, needed + max(byte_skip, 0), name)
            raw = raw[-needed:] if byte_skip == -1 else raw[max(byte_skip, 0):]
            if len(raw) < needed:
                raise VolumeReadError(f"{name} is truncated: its data decompresses to {len(raw)} bytes, the header needs {needed}")
            return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)
        if encoding in ("ascii", "text", "txt"):
            values = source.read().split()
            if len(values) < count:
                raise VolumeReadError(f"{name} is truncated: {len(values)} text values, the header needs {count}")
            try:
                return np.array(values[:count], dtype=np.float64).astype(dtype.newbyteorder("=")).reshape(shape)
            except (ValueError, OverflowError):
                raise VolumeReadError(f"{name} has text voxel values that are not numbers") from None
        raise VolumeReadError(f"{name}: unsupported NRRD encoding {encoding!r}")
    except OSError as exc:
        raise VolumeReadError(f"cannot read the voxel data of {name}: {exc.strerror or exc}") from exc
    finally:
        if owned is not None:
            owned.close()


def _bounded_decompress(blob: bytes, encoding: str, limit: int, name: str) -> bytes:
    """Decompress gzip / bzip2 / zlib data, stopping after ``limit`` bytes (no decompression bombs)."""
    import bz2

    try:
        if encoding in ("bzip2", "bz2"):
            dec = bz2.BZ2Decompressor()
            return dec.decompress(blob, max_length=limit)
        wbits = zlib.MAX_WBITS | (16 if encoding in ("gzip", "gz") else 0)
        return zlib.decompressobj(wbits).decompress(blob, limit)
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        raise VolumeReadError(f"{name} has corrupt compressed voxel data: {_first_line(exc)}") from exc


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
            stride = _guard(tuple(spatial[-3:]), name, max_voxels, downsample, series.dtype.itemsize)
            _check_whole(shape, series.dtype.itemsize, name)
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
    spacing, unit = _geometry(name, tiff_spacing_mm, res, ij, warnings)
    meta = {"format": "TIFF", "path": str(path), "warnings": warnings}
    if unit:
        meta["spatial_unit"] = unit
    volume = Volume(data, spacing=tuple(s * stride for s in spacing), metadata=meta)
    return _note_stride(volume, stride)


# --------------------------------------------------------------------------- numpy
def _sidecar(path: Path) -> dict:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.exists():
            _regular_file(candidate, path.name, "sidecar")
            try:
                with open(candidate, "rb") as handle:
                    meta = json.loads(handle.read(1 << 20).decode("utf-8"))
            except (OSError, ValueError, RecursionError) as exc:
                raise VolumeReadError(f"{candidate.name} (spacing sidecar) is not valid JSON: {_first_line(exc)}") from exc
            if not isinstance(meta, dict):
                raise VolumeReadError(f"{candidate.name} (spacing sidecar) must hold a JSON object")
            return meta
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
            headers = _npz_headers(archive, name)
            keys = list(headers)
            key = next((k for k in ("volume", "data", "image", "arr_0") if k in keys), None)
            if key is None:
                three_d = [k for k in keys if len(headers[k][0]) == 3]
                if len(three_d) != 1:
                    raise VolumeReadError(f"{name} holds {keys}; name the volume 'volume' or 'data'")
                key = three_d[0]
            shape, dtype = headers[key]
            if len(shape) != 3:
                raise VolumeReadError(f"{name} holds an array of shape {shape}; a volume must be 3-D (z, y, x)")
            _guard(shape, name, max_voxels, downsample, dtype.itemsize)
            _check_whole(shape, dtype.itemsize, name)  # a zip member is decompressed whole
            array = archive[key]
            meta = {}
            for k in ("spacing", "origin", "affine"):
                if k in keys:
                    if math.prod(headers[k][0]) > 16:
                        raise VolumeReadError(f"{name}: '{k}' must hold at most 16 numbers")
                    meta[k] = archive[k].tolist()
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(f"{name} is not a readable .npz file (truncated or corrupt?): {_first_line(exc)}") from exc
    return _from_arrays(array, {**_sidecar(path), **meta}, name, "NumPy archive", path, max_voxels, downsample)


def _npz_headers(archive, name: str) -> dict:
    """``{key: (shape, dtype)}`` of every array in an open ``.npz``, read from the member headers only."""
    from numpy.lib import format as npy_format

    out = {}
    for key in archive.keys():  # noqa: SIM118 - NpzFile
        with archive.zip.open(key + ".npy") as member:
            version = npy_format.read_magic(member)
            reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _fortran, dtype = reader(member)
        if dtype.hasobject:
            raise VolumeReadError(f"{name}: array '{key}' holds Python objects (pickled data), which are never loaded")
        out[key] = (tuple(shape), dtype)
    return out


def _from_arrays(array, meta, name, fmt, path, max_voxels, downsample) -> Volume:
    if array.dtype.hasobject:
        raise VolumeReadError(f"{name} holds Python objects (pickled data), which are never loaded")
    if array.ndim != 3:
        raise VolumeReadError(f"{name} holds an array of shape {array.shape}; a volume must be 3-D (z, y, x)")
    stride = _guard(array.shape, name, max_voxels, downsample, array.dtype.itemsize)
    data = _clean(np.array(array[::stride, ::stride, ::stride]), name)
    try:
        spacing = tuple(float(s) * stride for s in meta.get("spacing", (1.0, 1.0, 1.0)))
        origin = tuple(float(o) for o in meta.get("origin", (0.0, 0.0, 0.0)))
    except (TypeError, ValueError):
        raise VolumeReadError(f"{name}: spacing and origin must be lists of 3 numbers") from None
    if len(spacing) != 3 or len(origin) != 3 or not np.all(np.isfinite(origin)):
        raise VolumeReadError(f"{name}: spacing and origin must be lists of 3 finite numbers")
    affine = meta.get("affine")  # optional 4×4 (z, y, x) index → RAS mm; wins over spacing/origin
    volume = Volume(
        data,
        spacing=spacing,
        origin=origin,
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
        with _open_regular(path, name) as handle:
            head = handle.read(65536).decode("latin-1")
    except OSError as exc:
        raise VolumeReadError(f"cannot read {name}: {exc.strerror or exc}") from exc
    fields, header_len = parse_mhd_header(head)
    try:
        ndims = int(fields.get("NDims", "0"))
        dims = [int(v) for v in fields["DimSize"].split()]
        dtype = np.dtype(_MET_TYPES[fields["ElementType"].upper()])
        data_file = fields["ElementDataFile"]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
        header_size = int(fields.get("HeaderSize", "0") or 0)
    except KeyError as exc:
        raise VolumeReadError(f"{name} is not a MetaImage header: missing or unknown {exc}") from exc
    except ValueError as exc:
        raise VolumeReadError(f"{name} has a bad MetaImage header: {exc}") from exc
    if ndims != 3 or len(dims) != 3:
        raise VolumeReadError(f"{name} describes a {ndims}-D image {dims}; a volume needs NDims = 3")
    if channels != 1:
        raise VolumeReadError(f"{name} has {channels} channels per voxel; only scalar volumes are supported")
    msb = (fields.get("BinaryDataByteOrderMSB") or fields.get("ElementByteOrderMSB") or "False").lower() == "true"
    dtype = dtype.newbyteorder(">" if msb else "<")
    warnings: list[str] = []
    affine = _geometry(name, meta_affine, fields, warnings)
    shape = valid_dims(tuple(dims[::-1]), f"{name} header", VolumeReadError)  # before any loop or allocation
    count = math.prod(shape)
    needed = count * dtype.itemsize
    compressed = fields.get("CompressedData", "False").lower() == "true"
    if data_file.upper() == "LOCAL":
        source, offset = path, header_len
    else:
        if data_file.upper() == "LIST" or "%" in data_file or len(data_file.split()) > 1:
            raise VolumeReadError(f"{name}: multi-file MetaImage data ({data_file[:60]}) is not supported")
        source = _regular_file(path.parent / data_file, name)
        offset = header_size
    if offset < -1:
        raise VolumeReadError(f"{name} has a negative HeaderSize ({offset})")
    try:
        file_size = source.stat().st_size
        if not compressed and file_size - max(offset, 0) < needed:
            raise VolumeReadError(f"{source.name} is truncated: it holds {max(file_size - max(offset, 0), 0)} bytes "
                                  f"of voxel data, the header needs {needed}")
        stride = _guard(shape, name, max_voxels, downsample, dtype.itemsize)
        if compressed:
            _check_whole(shape, dtype.itemsize, name)
            if offset == -1:
                raise VolumeReadError(f"{name}: HeaderSize = -1 cannot be used with compressed data")
            check_decoded_size(max(file_size - offset, 0), f"{source.name} (compressed voxel data)", VolumeReadError)
            with open(source, "rb") as handle:
                handle.seek(offset)
                raw = _bounded_decompress(handle.read(), "zlib", needed, source.name)
            if len(raw) < needed:
                raise VolumeReadError(f"{source.name} decompresses to {len(raw)} bytes; the header needs {needed}")
            data = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)
        else:
            if offset == -1:  # MetaIO: the data are the last bytes of the file
                offset = file_size - needed
            size = file_size - offset
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
    warnings: list[str] = []
    if not path.is_dir():
        _regular_file(path, path.name, "file")
        try:
            first = pydicom.dcmread(str(path), stop_before_pixels=True)
            frames = _frames(first)
            wanted_uid = str(getattr(first, "SeriesInstanceUID", "") or "")
        except VolumeReadError:
            raise
        except (InvalidDicomError, Exception) as exc:
            raise VolumeReadError(f"{path.name} is not a readable DICOM file: {_first_line(exc)}") from exc
        if frames > 1:
            return _read_multiframe(path, max_voxels, downsample)
    candidates = sorted(p for p in folder.iterdir() if _is_regular(p)) if folder.is_dir() else []
    series: dict[str, list] = {}
    for file in candidates:
        if file.name.upper() == "DICOMDIR" or file.suffix.lower() in (".json", ".txt", ".xml"):
            continue
        try:
            ds = pydicom.dcmread(str(file), stop_before_pixels=True)
            if "Rows" not in ds or "ImagePositionPatient" not in ds:
                continue
            uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
        except Exception:  # noqa: BLE001, S112 - not DICOM (or unreadable): skip it, like a file browser
            continue
        problem = _slice_problem(ds)
        if problem:
            warnings.append(f"skipped {file.name}: {problem}")
            continue
        series.setdefault(uid, []).append((file, ds))
    if not series:
        detail = f" ({'; '.join(warnings[:3])})" if warnings else ""
        raise VolumeReadError(f"no DICOM image slices with positions found in {folder.name or folder}{detail}")
    if wanted_uid is not None and str(wanted_uid) in series:
        uid = str(wanted_uid)
    else:
        uid = max(series, key=lambda k: len(series[k]))
        if len(series) > 1:
            warnings.append(f"{len(series)} series in the folder; reading the largest ({len(series[uid])} slices)")
    slices = series[uid]
    if len(slices) == 1 and _frames(slices[0][1]) > 1:
        return _read_multiframe(slices[0][0], max_voxels, downsample)
    slices = _consistent_size(slices, warnings)
    if len(slices) < 2:
        raise VolumeReadError(_too_few(len(slices), warnings))
    ref = slices[0][1]
    row_dir, col_dir, normal = _orientation(ref)
    rows, cols = int(ref.Rows), int(ref.Columns)
    pixel_spacing = _floats(_tag(ref, "PixelSpacing", None), 2) or [1.0, 1.0]
    stride = _guard((len(slices), rows, cols), folder.name or "series", max_voxels, downsample)
    positions = np.array([np.dot(_floats(ds.ImagePositionPatient, 3), normal) for _, ds in slices])
    order = np.argsort(positions, kind="stable")
    slices = [slices[i] for i in order]
    planes, kept = [], []
    for file, _ in slices[::stride]:
        try:
            ds = pydicom.dcmread(str(file))
            pixels = ds.pixel_array
            slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
            intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        except Exception as exc:  # noqa: BLE001 - pydicom / its pixel handlers raise many kinds
            warnings.append(f"skipped {file.name}: cannot decode its pixel data ({_first_line(exc)})")
            continue
        if pixels.shape != (rows, cols) or not (math.isfinite(slope) and math.isfinite(intercept)):
            warnings.append(f"skipped {file.name}: pixel data of shape {pixels.shape} or its rescale is unusable")
            continue
        planes.append(pixels[::stride, ::stride].astype(np.float32) * slope + intercept)
        kept.append((file, ds))
    if len(kept) < 2:
        raise VolumeReadError(_too_few(len(kept), warnings))
    slices = kept if stride == 1 else slices  # with a stride, spacing comes from every slice's position
    positions = np.array([np.dot(_floats(ds.ImagePositionPatient, 3), normal) for _, ds in slices])
    gaps = np.diff(positions)
    if np.any(gaps < 1e-4):
        raise VolumeReadError("the DICOM series has several slices at the same position (mixed series or duplicates)")
    dz = float(np.median(gaps))
    if gaps.max() - gaps.min() > max(1e-3, 0.01 * dz):
        warnings.append(
            f"uneven slice spacing: {gaps.min():.4g} to {gaps.max():.4g} mm (missing slices?); "
            f"using the median {dz:.4g} mm"
        )
    data = np.stack(planes)
    modality = str(_tag(ref, "Modality", "unknown") or "unknown")
    first_pos = np.asarray(_floats(slices[0][1].ImagePositionPatient, 3))
    last_pos = np.asarray(_floats(slices[-1][1].ImagePositionPatient, 3))
    iop = np.concatenate([row_dir, col_dir])
    affine = _geometry(folder.name or "the DICOM series", dicom_series_affine, iop, pixel_spacing, first_pos, last_pos, dz)
    volume = Volume(
        data,
        affine=stride_affine(affine, stride),
        modality=modality,
        units="HU" if modality == "CT" else str(_tag(ref, "RescaleType", "") or ""),
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
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        shape = (_frames(ds), int(ds.Rows), int(ds.Columns))
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
        bits = int(getattr(ds, "BitsAllocated", 16) or 16)
        stride = _guard(shape, path.name, max_voxels, downsample)
        _check_whole(shape + (max(samples, 1),), max(bits, 8) // 8 + 4, path.name)
        ds = pydicom.dcmread(str(path))
        pixels = ds.pixel_array
        slope = float(getattr(ds, "RescaleSlope", getattr(ds, "DoseGridScaling", 1.0)) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        dz = None
        offsets = getattr(ds, "GridFrameOffsetVector", None)
        if offsets is not None and len(offsets) > 1:
            dz = float(np.median(np.abs(np.diff([float(o) for o in offsets]))))
        dz = dz or float(getattr(ds, "SpacingBetweenSlices", 0) or 0) or float(getattr(ds, "SliceThickness", 0) or 0) or 1.0
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(f"{path.name}: cannot decode the multi-frame pixel data: {_first_line(exc)}") from exc
    if pixels.ndim != 3:
        raise VolumeReadError(f"{path.name}: multi-frame pixel data has shape {pixels.shape}; expected 3-D grey frames")
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        raise VolumeReadError(f"{path.name}: its rescale slope or intercept is not a finite number")
    data = pixels[::stride, ::stride, ::stride].astype(np.float32) * slope + intercept
    pixel_spacing = _floats(_tag(ds, "PixelSpacing", None), 2) or [1.0, 1.0]
    modality = str(_tag(ds, "Modality", "unknown") or "unknown")
    warnings: list[str] = []
    affine = _geometry(path.name, dicom_multiframe_affine, ds, dz, pixel_spacing, warnings)
    volume = Volume(
        data,
        spacing=(dz * stride, pixel_spacing[0] * stride, pixel_spacing[1] * stride),
        modality=modality,
        units="HU" if modality == "CT" else ("Gy" if modality == "RTDOSE" else ""),
        metadata={"format": "DICOM multi-frame", "path": str(path), "warnings": warnings},
        affine=None if affine is None else stride_affine(affine, stride),
    )
    return _note_stride(volume, stride)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _tag(ds, keyword: str, default):
    """A DICOM attribute, or ``default`` when absent or undecodable (pydicom converts values lazily)."""
    try:
        return getattr(ds, keyword, default)
    except Exception:  # noqa: BLE001 - unknown VRs, bad lengths, bad numbers ...
        return default


def _frames(ds) -> int:
    """NumberOfFrames as an int (1 when absent); VolumeReadError when it is not a count."""
    try:
        return int(getattr(ds, "NumberOfFrames", 1) or 1)
    except Exception:  # noqa: BLE001 - pydicom converts lazily: ValueError, TypeError, NotImplementedError ...
        raise VolumeReadError("the DICOM NumberOfFrames is not a whole number") from None


def _floats(value, n: int) -> list[float] | None:
    """``n`` finite floats from a DICOM multi-value, or None."""
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _slice_problem(ds) -> str:
    """Why a slice header cannot be used in a series ('' if it can)."""
    for label, check in (("ImagePositionPatient is not three numbers", lambda: _floats(ds.ImagePositionPatient, 3)),
                         ("ImageOrientationPatient is not six numbers", lambda: _orientation_or_none(ds)),
                         ("Rows/Columns are not positive whole numbers", lambda: int(ds.Rows) > 0 < int(ds.Columns) or None)):
        try:
            if check() is None:
                return f"its {label}"
        except Exception:  # noqa: BLE001 - pydicom converts values lazily and raises many kinds
            return f"its {label}"
    return ""


def _orientation_or_none(ds):
    iop = _floats(ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), 6)
    if iop is None:
        return None
    row_dir, col_dir = np.asarray(iop[:3]), np.asarray(iop[3:])
    normal = np.cross(row_dir, col_dir)
    if np.linalg.norm(normal) < 1e-6:
        return None
    return row_dir, col_dir, normal


def _orientation(ds):
    """(row, column, normal) directions of a slice (checked by :func:`_slice_problem`)."""
    found = _orientation_or_none(ds)
    if found is None:
        raise VolumeReadError("the DICOM slice orientation is degenerate")
    return found


def _consistent_size(slices: list, warnings: list) -> list:
    """Keep the slices of the most common Rows×Columns; name and skip the others."""
    from collections import Counter

    sizes = Counter((int(ds.Rows), int(ds.Columns)) for _, ds in slices)
    if len(sizes) <= 1:
        return slices
    (size, count), = sizes.most_common(1)
    if count <= len(slices) // 2:
        raise VolumeReadError("the DICOM slices do not all have the same size")
    for file, ds in slices:
        if (int(ds.Rows), int(ds.Columns)) != size:
            warnings.append(f"skipped {file.name}: its size {int(ds.Rows)}×{int(ds.Columns)} differs from the series")
    return [(f, ds) for f, ds in slices if (int(ds.Rows), int(ds.Columns)) == size]


def _too_few(count: int, warnings: list) -> str:
    skipped = [w for w in warnings if w.startswith("skipped")]
    detail = f" ({'; '.join(skipped)[:300]})" if skipped else ""
    what = "only one usable slice" if count == 1 else "no usable slices"
    return f"the DICOM series has {what}; a volume needs at least 2" + detail


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
    _regular_file(path, path.name, "file")
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
    raise VolumeReadError(f"{path.name}: unsupported volume format (supported: {', '.join(READERS)} "
                          "or a DICOM folder)")


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
    return text.splitlines()[0] if text else "no details"
