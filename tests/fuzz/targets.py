"""One fuzz target per loader: a small valid sample, the corruptions that apply, the loader call
and the loader's one clear error type.

A target's ``build(folder)`` writes the pristine sample and returns the path the loader opens;
``mutate(rng, folder, primary)`` corrupts a fresh copy of it and returns a description;
``load(primary)`` calls the loader (its return value is the accepted result); ``errors()``
returns the clear error type(s) of that loader (imported lazily, in the worker).
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.fuzz.mutations import (
    BAD_JSON_VALUES,
    BAD_NUMBERS,
    SPECIAL_TARGETS,
    mutate_bytes,
    mutate_json,
    mutate_json_text,
    pick,
    replace_with_special,
    set_text_field,
    write_json_mutation,
)


@dataclass
class Target:
    """A loader under fuzzing."""

    name: str
    build: Callable[[Path], Path]
    mutate: Callable
    load: Callable[[Path], object]
    errors: Callable[[], tuple]
    family: str = ""  # targets of one family share a worker (same heavy imports)


def _volume_errors():
    from engines.volume.model import VolumeReadError

    return (VolumeReadError,)


def _read_volume(path: Path):
    from engines.volume.readers import read_volume

    return read_volume(path)


def _ramp(shape=(5, 6, 7), dtype=np.int16) -> np.ndarray:
    return (np.arange(np.prod(shape)).reshape(shape) % 251).astype(dtype)


# -- render scenes -------------------------------------------------------------------------------------
def _build_ply(folder: Path) -> Path:
    import torch

    from engines.render.io import save_ply
    from engines.render.scene import Gaussians

    g = torch.Generator().manual_seed(0)
    n = 40
    scene = Gaussians(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g) - 2,
                      torch.randn(n, generator=g), torch.randn(n, 4, 3, generator=g) * 0.3)
    path = folder / "scene.ply"
    save_ply(path, scene)
    return path


def _mutate_ply(rng, folder: Path, path: Path) -> str:
    data = path.read_bytes()
    end = data.find(b"end_header\n") + len(b"end_header\n")
    mode = rng.random()
    if mode < 0.45:
        header = data[:end].decode("ascii")
        lines = header.splitlines(keepends=True)
        i = int(rng.integers(1, len(lines) - 1))
        line = lines[i]
        choice = int(rng.integers(5))
        if choice == 0 or line.startswith("element"):
            new = f"element vertex {pick(rng, BAD_NUMBERS)}\n"
        elif choice == 1:
            new = line.replace("float", pick(rng, ["double", "uchar", "list uchar float", "char", "bogus", "int64"]))
        elif choice == 2:
            new = pick(rng, ["format ascii 1.0\n", "format binary_big_endian 1.0\n", "format binary_little_endian 9\n"])
        elif choice == 3:
            new = "element chunk 1\nproperty float x\n" if rng.random() < 0.5 else ""
        else:
            new = line.replace("property float ", "property float z" if rng.random() < 0.5 else "property float x")
        lines[i] = new
        path.write_bytes("".join(lines).encode("ascii") + data[end:])
        return f"header line {i} {line.strip()!r} -> {new.strip()!r}"
    if mode < 0.5:
        return replace_with_special(rng, path)
    return mutate_bytes(rng, path, header_bias=end)


def _load_scene(path: Path):
    from engines.render.io import load_scene

    return load_scene(path)


def _scene_errors():
    from engines.render.io import SceneFileError

    return (SceneFileError,)


def _build_splat(folder: Path) -> Path:
    from engines.render.io import save_splat

    ply = _build_ply(folder)
    scene = _load_scene(ply)
    ply.unlink()
    path = folder / "scene.splat"
    save_splat(path, scene)
    return path


def _mutate_splat(rng, folder: Path, path: Path) -> str:
    if rng.random() < 0.3:  # bad floats in a record
        data = bytearray(path.read_bytes())
        record = int(rng.integers(len(data) // 32))
        field = int(rng.integers(6))
        value = pick(rng, [float("nan"), float("inf"), -1.0, 0.0, 1e38, -1e38])
        struct.pack_into("<f", data, record * 32 + 4 * field, value)
        path.write_bytes(bytes(data))
        return f"record {record} float {field} = {value}"
    if rng.random() < 0.05:
        return replace_with_special(rng, path)
    return mutate_bytes(rng, path)


# -- NIfTI ------------------------------------------------------------------------------------------------
_NIFTI_INT16 = {"dim0": 40, "dim1": 42, "dim2": 44, "dim3": 46, "dim4": 48, "datatype": 70, "bitpix": 72,
                "qform_code": 252, "sform_code": 254}
_NIFTI_FLOAT = {"pixdim1": 80, "pixdim2": 84, "pixdim3": 88, "vox_offset": 108, "scl_slope": 112, "scl_inter": 116,
                "quatern_b": 256, "qoffset_x": 268, "srow_x0": 280, "srow_z3": 324}


def _build_nifti(folder: Path) -> Path:
    import nibabel as nib

    image = nib.Nifti1Image(_ramp().transpose(2, 1, 0), np.diag([0.5, 0.7, 1.2, 1.0]))
    image.header.set_sform(np.diag([0.5, 0.7, 1.2, 1.0]), code=1)
    path = folder / "head.nii"
    nib.save(image, path)
    return path


def _mutate_nifti(rng, folder: Path, path: Path) -> str:
    import gzip

    gz = rng.random() < 0.3
    data = bytearray(path.read_bytes())
    mode = rng.random()
    if mode < 0.5:
        if rng.random() < 0.5:
            field, offset = pick(rng, list(_NIFTI_INT16.items()))
            value = pick(rng, [32767, -1, 0, -32768, 1000, 8, 7, 255, 2048, 16384])
            struct.pack_into("<h", data, offset, value)
        else:
            field, offset = pick(rng, list(_NIFTI_FLOAT.items()))
            value = pick(rng, [float("nan"), float("inf"), -1.0, 0.0, 1e30, -1e30, 1e-30, 3.4e38, 348.0, 2e9])
            struct.pack_into("<f", data, offset, value)
        what = f"{field} = {value}"
        path.write_bytes(bytes(data))
    else:
        what = mutate_bytes(rng, path, header_bias=352)
    if gz:
        target = path.with_name("head.nii.gz")
        target.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
        path.unlink()
        if rng.random() < 0.3:
            what += "; then " + mutate_bytes(rng, target)
        return what + " (gzipped)"
    return what


def _load_nifti(path: Path):
    gz = path.with_name("head.nii.gz")
    return _read_volume(gz if gz.exists() else path)


# -- DICOM ----------------------------------------------------------------------------------------------
def _dicom_dataset(pixels: np.ndarray, position: float, series: str, frames: int = 1):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"1.2.3.4.{int(position * 10) + 100}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", series
    ds.Modality = "CT"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelSpacing = [0.7, 0.6]
    ds.ImagePositionPatient = [0.0, 0.0, float(position)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 1.5
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


def _save_dicom(ds, path: Path) -> None:
    from pydicom import config

    config.settings.writing_validation_mode = config.IGNORE
    ds.save_as(path, enforce_file_format=True)


def _build_dicom_series(folder: Path) -> Path:
    series = folder / "series"
    series.mkdir()
    volume = _ramp((4, 6, 7)).astype(np.uint16)
    for k in range(volume.shape[0]):
        _save_dicom(_dicom_dataset(volume[k], 1.5 * k, "1.2.3.9"), series / f"slice{k}.dcm")
    return series


_DICOM_FIELDS = ["Rows", "Columns", "NumberOfFrames", "BitsAllocated", "SamplesPerPixel", "ImagePositionPatient",
                 "ImageOrientationPatient", "PixelSpacing", "RescaleSlope", "RescaleIntercept", "PixelData",
                 "SeriesInstanceUID", "PixelRepresentation", "PhotometricInterpretation", "GridFrameOffsetVector"]


def _dicom_bad_value(rng, field: str):
    if field in ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PixelRepresentation"):
        return pick(rng, [0, 1, 65535, 3, 64, 12])
    if field == "NumberOfFrames":
        return pick(rng, ["999999999", "-1", "0", "abc", "4294967296", "1e9"])
    if field in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "GridFrameOffsetVector"):
        return pick(rng, [["nan", "0", "0"], ["1"], ["x", "y", "z"], ["0", "0", "0", "0", "0", "0"], [], ["1e400", "0"]])
    if field in ("RescaleSlope", "RescaleIntercept"):
        return pick(rng, ["nan", "inf", "abc", "1e400", "0"])
    if field == "PixelData":
        return pick(rng, [b"", b"\x00" * 7, b"\x01" * 3])
    return pick(rng, ["", "x" * 70, "MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL"])


def _mutate_dicom_file(rng, path: Path) -> str:
    import pydicom

    if rng.random() < 0.5:
        return mutate_bytes(rng, path, header_bias=400)
    try:
        ds = pydicom.dcmread(path)
        ds.PixelData  # noqa: B018 - fails here when an earlier mutation broke the file
    except Exception:  # noqa: BLE001 - already corrupted by an earlier mutation of this case
        return mutate_bytes(rng, path, header_bias=400)
    field = pick(rng, _DICOM_FIELDS)
    value = _dicom_bad_value(rng, field)
    try:
        if field == "PixelData":
            ds.PixelData = value
        elif field in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "GridFrameOffsetVector",
                       "RescaleSlope", "RescaleIntercept", "NumberOfFrames"):
            from pydicom.datadict import dictionary_VR, tag_for_keyword
            from pydicom.dataelem import DataElement

            tag = tag_for_keyword(field)
            raw = "\\".join(value) if isinstance(value, list) else value
            ds[tag] = DataElement(tag, dictionary_VR(tag), raw)
        else:
            setattr(ds, field, value)
        _save_dicom(ds, path)
    except Exception as exc:  # noqa: BLE001 - the corruption could not be written; corrupt bytes instead
        return f"could not set {field} ({exc}); " + mutate_bytes(rng, path, header_bias=400)
    return f"{path.name}: {field} = {value!r:.40}"


def _mutate_dicom_series(rng, folder: Path, series: Path) -> str:
    files = sorted(series.iterdir())
    victim = pick(rng, files)
    mode = rng.random()
    if mode < 0.1:
        return replace_with_special(rng, victim)
    if mode < 0.15:
        shutil.copy(files[0], series / "duplicate.dcm")
        return "duplicated a slice"
    what = _mutate_dicom_file(rng, victim)
    if rng.random() < 0.2:
        what += "; " + _mutate_dicom_file(rng, pick(rng, files))
    return what


def _build_dicom_file(folder: Path) -> Path:
    frames = _ramp((5, 6, 7)).astype(np.uint16)
    ds = _dicom_dataset(frames, 0.0, "1.2.3.8", frames=5)
    ds.GridFrameOffsetVector = [0.0, 1.5, 3.0, 4.5, 6.0]
    path = folder / "multi.dcm"
    _save_dicom(ds, path)
    return path


def _mutate_dicom_single(rng, folder: Path, path: Path) -> str:
    return _mutate_dicom_file(rng, path)


# -- NRRD ----------------------------------------------------------------------------------------------
_NRRD_FIELDS = ["sizes", "type", "dimension", "encoding", "endian", "space directions", "space origin",
                "byte skip", "line skip", "space", "spacings", "kinds"]


def _build_nrrd(folder: Path) -> Path:
    import nrrd

    path = folder / "vol.nrrd"
    nrrd.write(str(path), _ramp(), {"space": "left-posterior-superior",
                                    "space directions": np.diag([1.2, 0.7, 0.5]), "space origin": [1.0, 2.0, 3.0]},
               index_order="C")
    return path


def _mutate_nrrd_header(rng, path: Path, fields: list[str]) -> str:
    data = path.read_bytes()
    end = data.find(b"\n\n")
    header = data[:end].decode("latin-1")
    new, what = set_text_field(rng, header, r"^{key}:[ ]?(?P<value>.*)$", fields)
    if rng.random() < 0.2:
        new, more = set_text_field(rng, new, r"^{key}:[ ]?(?P<value>.*)$", fields)
        what += "; " + more
    path.write_bytes(new.encode("latin-1") + data[end:])
    return what


def _mutate_nrrd(rng, folder: Path, path: Path) -> str:
    if rng.random() < 0.2:  # gzip-encoded variant, then corrupt
        import nrrd

        data, header = nrrd.read(str(path), index_order="C")
        nrrd.write(str(path), data, {k: header[k] for k in ("space", "space directions", "space origin")},
                   index_order="C", compression_level=1)
        if rng.random() < 0.5:
            return "gzip; " + mutate_bytes(rng, path, header_bias=200)
        return "gzip; " + _mutate_nrrd_header(rng, path, _NRRD_FIELDS)
    if rng.random() < 0.5:
        return _mutate_nrrd_header(rng, path, _NRRD_FIELDS)
    if rng.random() < 0.1:
        data = path.read_bytes()
        end = data.find(b"\n\n")
        target = pick(rng, SPECIAL_TARGETS)
        if target == "fifo":
            import os

            os.mkfifo(folder / "fifo")
            target = str(folder / "fifo")
        path.write_bytes(data[:end] + f"\ndata file: {target}".encode() + data[end:])
        return f"attached header names data file {target!r}"
    return mutate_bytes(rng, path, header_bias=300)


def _build_nhdr(folder: Path) -> Path:
    import nrrd

    path = folder / "vol.nhdr"
    nrrd.write(str(path), _ramp(), {"space": "left-posterior-superior", "space directions": np.diag([1.2, 0.7, 0.5])},
               detached_header=True, index_order="C")
    return path


def _mutate_nhdr(rng, folder: Path, path: Path) -> str:
    mode = rng.random()
    data_file = next(p for p in folder.iterdir() if p.name != path.name)
    if mode < 0.3:
        target = pick(rng, SPECIAL_TARGETS)
        text = path.read_text()
        if target == "fifo":
            import os

            os.mkfifo(folder / "fifo")
        new = "\n".join(f"data file: {target}" if line.startswith("data file") else line for line in text.splitlines())
        path.write_text(new + "\n")
        return f"data file: {target!r}"
    if mode < 0.45:
        return replace_with_special(rng, data_file)
    if mode < 0.6:
        return mutate_bytes(rng, data_file)
    return _mutate_nrrd_header(rng, path, _NRRD_FIELDS + ["data file"]) if path.read_bytes().find(b"\n\n") > 0 else \
        _mutate_text_fields(rng, path, r"^{key}:[ ]?(?P<value>.*)$", _NRRD_FIELDS + ["data file"])


def _mutate_text_fields(rng, path: Path, pattern: str, fields: list[str]) -> str:
    text = path.read_text(encoding="latin-1")
    new, what = set_text_field(rng, text, pattern, fields)
    path.write_text(new, encoding="latin-1")
    return what


# -- MetaImage ---------------------------------------------------------------------------------------------
_MHD_FIELDS = ["NDims", "DimSize", "ElementType", "ElementSpacing", "Offset", "HeaderSize", "ElementDataFile",
               "CompressedData", "ElementNumberOfChannels", "TransformMatrix", "BinaryDataByteOrderMSB",
               "CompressedDataSize"]


def _build_mhd(folder: Path) -> Path:
    data = _ramp()
    (folder / "vol.raw").write_bytes(data.astype("<i2").tobytes())
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 1 2 3\n"
              "ElementSpacing = 0.5 0.7 1.2\nDimSize = 7 6 5\nElementType = MET_SHORT\nElementDataFile = vol.raw\n")
    path = folder / "vol.mhd"
    path.write_text(header)
    return path


def _mutate_mhd(rng, folder: Path, path: Path) -> str:
    mode = rng.random()
    pattern = r"^{key} = (?P<value>.*)$"
    if mode < 0.25:  # a local (.mha) or compressed variant first
        raw = (folder / "vol.raw").read_bytes()
        text = path.read_text()
        if rng.random() < 0.5:
            text = text.replace("CompressedData = False", "CompressedData = True")
            raw = zlib.compress(raw)
            (folder / "vol.raw").write_bytes(raw)
            what = "compressed"
        else:
            text = text.replace("ElementDataFile = vol.raw", "ElementDataFile = LOCAL")
            (folder / "vol.raw").unlink()
            path.unlink()
            path = folder / "vol.mha"
            path.write_bytes(text.encode() + raw)
            (folder / "vol.mhd").symlink_to("vol.mha")  # the loader opens vol.mhd
            path = folder / "vol.mha"
            if rng.random() < 0.5:
                return "local data; " + mutate_bytes(rng, path, header_bias=len(text))
            return "local data; " + _mutate_text_fields(rng, path, pattern, _MHD_FIELDS)
        path.write_text(text)
        return what + "; " + (_mutate_text_fields(rng, path, pattern, _MHD_FIELDS) if rng.random() < 0.5
                              else mutate_bytes(rng, folder / "vol.raw"))
    if mode < 0.4:
        target = pick(rng, SPECIAL_TARGETS)
        if target == "fifo":
            import os

            os.mkfifo(folder / "fifo")
        text = path.read_text().replace("ElementDataFile = vol.raw", f"ElementDataFile = {target}")
        path.write_text(text)
        return f"ElementDataFile = {target!r}"
    if mode < 0.5:
        return replace_with_special(rng, folder / "vol.raw")
    if mode < 0.85:
        what = _mutate_text_fields(rng, path, pattern, _MHD_FIELDS)
        if rng.random() < 0.2:
            what += "; " + _mutate_text_fields(rng, path, pattern, _MHD_FIELDS)
        return what
    return mutate_bytes(rng, pick(rng, [path, folder / "vol.raw"]))


def _load_mhd(path: Path):
    return _read_volume(path.with_name("vol.mhd"))


# -- TIFF -----------------------------------------------------------------------------------------------
def _build_tiff(folder: Path) -> Path:
    import tifffile

    path = folder / "stack.tif"
    tifffile.imwrite(path, _ramp().astype(np.uint16), imagej=True, resolution=(1 / 0.7, 1 / 0.5),
                     metadata={"spacing": 1.2, "unit": "um", "axes": "ZYX"})
    return path


def _mutate_tiff(rng, folder: Path, path: Path) -> str:
    data = bytearray(path.read_bytes())
    if rng.random() < 0.5 and data[:2] == b"II":
        ifd = struct.unpack_from("<I", data, 4)[0]
        if ifd + 2 <= len(data):
            count = struct.unpack_from("<H", data, ifd)[0]
            entry = ifd + 2 + 12 * int(rng.integers(max(count, 1)))
            if entry + 12 <= len(data):
                part = int(rng.integers(3))
                if part == 0:  # the value / offset
                    value = pick(rng, [0xFFFFFFFF, 0x7FFFFFFF, 0, 1, 65535, len(data) + 10, 1 << 30])
                    struct.pack_into("<I", data, entry + 8, value)
                elif part == 1:  # the count
                    value = pick(rng, [0xFFFFFFFF, 0, 1 << 28, 3])
                    struct.pack_into("<I", data, entry + 4, value)
                else:  # the type
                    value = pick(rng, [0, 13, 99, 12, 16])
                    struct.pack_into("<H", data, entry + 2, value)
                path.write_bytes(bytes(data))
                tag = struct.unpack_from("<H", data, entry)[0]
                return f"IFD entry tag {tag} field {part} = {value}"
    return mutate_bytes(rng, path, header_bias=512)


# -- NumPy -----------------------------------------------------------------------------------------------
def _build_npy(folder: Path) -> Path:
    path = folder / "vol.npy"
    np.save(path, _ramp().astype(np.float32))
    (folder / "vol.npy.json").write_text(json.dumps({"spacing": [1.2, 0.7, 0.5], "origin": [0, 0, 0], "modality": "CT"}))
    return path


def _npy_header_edit(rng, data: bytes) -> tuple[bytes, str]:
    end = data.find(b"}") + 1
    header = data[10:end].decode("latin-1")
    choice = int(rng.integers(3))
    if choice == 0:
        shape = pick(rng, ["(9223372036854775807, 1, 1)", "(-1, 6, 7)", "(5, 6)", "(5.5, 6, 7)", "()",
                           "(4294967296, 4294967296, 4294967296)", "(0, 6, 7)", "'abc'", "(5, 6, 7, 8)"])
        new = header.split("'shape':")[0] + f"'shape': {shape}, }}"
        what = f"shape {shape}"
    elif choice == 1:
        descr = pick(rng, ["'|O'", "'<c16'", "'|V8'", "'<f16'", "'bogus'", "'<U10'", "[('a', '<f4')]", "5"])
        new = header.replace("'<f4'", descr)
        what = f"descr {descr}"
    else:
        new = header.replace("False", pick(rng, ["True", "'yes'", "None"]))
        what = "fortran_order changed"
    body = new.encode("latin-1")
    pad = (-(10 + len(body) + 1)) % 64
    body = body + b" " * pad + b"\n"
    return data[:8] + struct.pack("<H", len(body)) + body + data[10 + (data[8] | data[9] << 8):], what


def _mutate_npy(rng, folder: Path, path: Path) -> str:
    mode = rng.random()
    if mode < 0.1:
        np.save(path, np.array([{"a": 1}, None, 3], dtype=object).reshape(3, 1, 1), allow_pickle=True)
        return "object array (pickle)"
    if mode < 0.45:
        new, what = _npy_header_edit(rng, path.read_bytes())
        path.write_bytes(new)
        return what
    if mode < 0.6:
        return write_json_mutation(rng, folder / "vol.npy.json")
    if mode < 0.65:
        return replace_with_special(rng, folder / "vol.npy.json")
    return mutate_bytes(rng, path, header_bias=128)


def _build_npz(folder: Path) -> Path:
    path = folder / "vol.npz"
    np.savez(path, volume=_ramp().astype(np.float32), spacing=np.array([1.2, 0.7, 0.5]), origin=np.zeros(3))
    return path


def _mutate_npz(rng, folder: Path, path: Path) -> str:
    import zipfile

    mode = rng.random()
    if mode < 0.45:  # rewrite one member with a bad header / object dtype, keep the zip valid
        with zipfile.ZipFile(path) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        name = pick(rng, sorted(members))
        if rng.random() < 0.2:
            import io

            buf = io.BytesIO()
            np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
            members[name] = buf.getvalue()
            what = f"{name} holds a pickled object array"
        else:
            members[name], what = _npy_header_edit(rng, members[name])
            what = f"{name}: {what}"
        compression = zipfile.ZIP_DEFLATED if rng.random() < 0.5 else zipfile.ZIP_STORED
        with zipfile.ZipFile(path, "w", compression) as archive:
            for n, blob in members.items():
                archive.writestr(n, blob)
        return what
    if mode < 0.55:  # a zip bomb member: a huge all-zero array compressed
        import io

        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                       "shape": (2048, 2048, 1024)})
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
                archive.open("volume.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(int(rng.integers(1, 64))):
                member.write(chunk)
        return "zip bomb member (4 GiB declared, zeros)"
    return mutate_bytes(rng, path, header_bias=200)


# -- images --------------------------------------------------------------------------------------------------
def _image_pixels() -> np.ndarray:
    y, x = np.mgrid[0:20, 0:24]
    return np.stack([x * 10, y * 12, (x + y) * 5], -1).astype(np.uint8)


def _build_png(folder: Path) -> Path:
    from PIL import Image

    path = folder / "image.png"
    Image.fromarray(_image_pixels()).save(path)
    return path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _mutate_png(rng, folder: Path, path: Path) -> str:
    data = bytearray(path.read_bytes())
    mode = rng.random()
    if mode < 0.3:  # IHDR size (with a fixed CRC half the time)
        w = pick(rng, [0xFFFFFFFF, 0x7FFFFFFF, 0, 1, 65535, 100000, 30000])
        h = pick(rng, [0xFFFFFFFF, 0x7FFFFFFF, 0, 1, 65535, 100000, 30000])
        struct.pack_into(">II", data, 16, w, h)
        if rng.random() < 0.5:
            struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
        path.write_bytes(bytes(data))
        return f"IHDR {w}x{h}"
    if mode < 0.4:  # decompression bomb: a big image of zeros in a small file
        side = pick(rng, [20000, 46000, 70000])
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
        comp = zlib.compressobj(9)
        row = bytes(side + 1)
        idat = b"".join(comp.compress(row) for _ in range(64)) + comp.flush()
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
        return f"bomb {side}x{side} grey"
    if mode < 0.5:  # a chunk length set to something huge
        struct.pack_into(">I", data, 8, pick(rng, [0xFFFFFFFF, 0x7FFFFFFF, 1 << 30]))
        path.write_bytes(bytes(data))
        return "IHDR length huge"
    return mutate_bytes(rng, path, header_bias=64)


def _load_image(path: Path):
    from engines.codec.images import load_image

    return load_image(path)


def _image_errors():
    from engines.imagefile import ImageFileError

    return (ImageFileError,)


def _build_jpeg(folder: Path) -> Path:
    from PIL import Image

    path = folder / "image.jpg"
    Image.fromarray(_image_pixels()).save(path, quality=80)
    return path


def _mutate_jpeg(rng, folder: Path, path: Path) -> str:
    data = bytearray(path.read_bytes())
    sof = data.find(b"\xff\xc0")
    if rng.random() < 0.35 and sof > 0:
        h = pick(rng, [12000, 65535, 0, 1, 30000, 20000])
        w = pick(rng, [12000, 65535, 0, 1, 30000, 20000])
        struct.pack_into(">HH", data, sof + 5, h, w)
        path.write_bytes(bytes(data))
        return f"SOF0 {w}x{h}"
    return mutate_bytes(rng, path, header_bias=600)


# -- block codec bitstream ------------------------------------------------------------------------------------
def _build_ssbc(folder: Path) -> Path:
    from engines.codec.blockcodec import BlockCodecParams, encode

    image = np.concatenate([_image_pixels(), _image_pixels()[:, :8]], 1)[:, :32]
    path = folder / "image.ssbc"
    path.write_bytes(encode(image, BlockCodecParams(quality=60)).bitstream)
    return path


def _forge(data: bytes) -> bytes:
    """Recompute the v2 lengths and CRC-32 so the parser reaches the (corrupted) fields."""
    header_len = struct.unpack_from("<I", data, 5)[0]
    body = data[17:]
    header_len = min(header_len, len(body))
    return data[:5] + struct.pack("<III", header_len, len(body) - header_len, zlib.crc32(body)) + body


def _mutate_ssbc(rng, folder: Path, path: Path) -> str:
    data = path.read_bytes()
    mode = rng.random()
    if mode < 0.15:  # truncated by whole 32-bit words
        cut = len(data) - 4 * int(rng.integers(1, len(data) // 4))
        path.write_bytes(data[:cut])
        return f"truncated by {(len(data) - cut) // 4} words"
    if mode < 0.3:  # a version-1 stream (no lengths, no checksum), then corrupted
        v1 = bytearray(data[:4] + b"\x01" + data[17:])
        path.write_bytes(bytes(v1))
        return "version 1; " + mutate_bytes(rng, path, header_bias=40)
    if mode < 0.7:  # header fields with a forged checksum
        out = bytearray(data)
        field = pick(rng, [("H", 17, "<I"), ("W", 21, "<I"), ("N", 25, "<B"), ("alphabet", 26, "<B"),
                           ("subsampling", 27, "<B"), ("name length", 28, "<B")])
        name, offset, fmt = field
        limit = 255 if fmt == "<B" else 0xFFFFFFFF
        value = pick(rng, [limit, 0, 1, 2, 3, 4, 16, 64, 65535, 100000, 7])
        struct.pack_into(fmt, out, offset, min(value, limit))
        extra = ""
        if rng.random() < 0.3:
            out, extra = bytearray(mutate_bytes_in_memory(rng, bytes(out), start=17)), " and random bytes"
        path.write_bytes(_forge(bytes(out)))
        return f"{name} = {min(value, limit)}{extra} (checksum forged)"
    if mode < 0.85:
        path.write_bytes(_forge(mutate_bytes_in_memory(rng, data, start=17)))
        return "random bytes (checksum forged)"
    return mutate_bytes(rng, path, header_bias=64)


def mutate_bytes_in_memory(rng, data: bytes, start: int = 0) -> bytes:
    """A random byte mutation of ``data[start:]`` (the prefix kept)."""
    import tempfile

    with tempfile.NamedTemporaryFile(delete=False) as handle:
        handle.write(data[start:])
    tmp = Path(handle.name)
    try:
        mutate_bytes(rng, tmp, header_bias=64)
        return data[:start] + tmp.read_bytes()
    finally:
        tmp.unlink()


def _load_ssbc(path: Path):
    from engines.codec.blockcodec import decode

    if not path.is_file():
        raise _ssbc_errors()[0](f"{path.name} is not a regular file")
    return decode(path.read_bytes(), name=path.name)


def _ssbc_errors():
    from engines.codec.bitstream import BitstreamError

    return (BitstreamError,)


# -- token files (.sstk) ----------------------------------------------------------------------------------------
def _build_sstk(folder: Path) -> Path:
    from engines.codec.token_file import write_tokens

    grid = (np.arange(12 * 9).reshape(12, 9) * 37) % 1000
    path = folder / "tokens.sstk"
    path.write_bytes(write_tokens(grid, 1000, 10, "fsq", levels=[8, 5, 5, 5], dim=4, downsample=4, image_shape=(48, 36),
                                  model_sha256="0" * 64, codebook_sha256="1" * 64))
    return path


def _mutate_sstk(rng, folder: Path, path: Path) -> str:
    data = path.read_bytes()
    head_len = struct.unpack_from("<I", data, 5)[0]
    mode = rng.random()
    if mode < 0.15:
        cut = int(rng.integers(1, len(data)))
        path.write_bytes(data[:cut])
        return f"truncated to {cut} bytes"
    if mode < 0.55:  # one header field replaced, lengths and checksum recomputed
        header = json.loads(data[17 : 17 + head_len])
        key = pick(rng, ["rows", "cols", "codes", "bits", "levels", "dim", "image_shape", "model_sha256", "quantizer"])
        value = pick(rng, [0, -1, 1, 2**31, 2**62, 1e300, None, "x", [], [0, 0], [2**40, 3], {"a": 1}, True, "9" * 64])
        header[key] = value
        head = json.dumps(header).encode()
        path.write_bytes(_forge(data[:5] + struct.pack("<III", len(head), 0, 0) + head + data[17 + head_len :]))
        return f"{key} = {value!r:.40} (checksum forged)"
    if mode < 0.85:
        path.write_bytes(_forge(mutate_bytes_in_memory(rng, data, start=17)))
        return "random bytes (checksum forged)"
    return mutate_bytes(rng, path, header_bias=64)


def _load_sstk(path: Path):
    from engines.codec.token_file import read_tokens

    if not path.is_file():
        raise ValueError(f"{path.name} is not a regular file")
    return read_tokens(path.read_bytes())


def _sstk_errors():
    return (ValueError,)


# -- generation models ---------------------------------------------------------------------------------------
def _build_model(folder: Path) -> Path:
    from engines.generation.models import SHIPPED_MODELS_DIR

    path = folder / "digits"
    shutil.copytree(SHIPPED_MODELS_DIR / "digits-flow", path)
    return path


def _mutate_safetensors_header(rng, path: Path) -> str:
    data = path.read_bytes()
    n = struct.unpack_from("<Q", data, 0)[0]
    header = json.loads(data[8 : 8 + n])
    keys = [k for k in header if k != "__metadata__"]
    key = pick(rng, keys)
    mode = int(rng.integers(4))
    if mode == 0:
        header[key + "_renamed"] = header.pop(key)
        what = f"tensor {key} renamed"
    elif mode == 1:
        header[key]["shape"] = pick(rng, [[10**12], [-1], [1, 2, 3, 4, 5, 6], [], ["x"]])
        what = f"tensor {key} shape {header[key]['shape']}"
    elif mode == 2:
        header[key]["dtype"] = pick(rng, ["F64", "U8", "BOGUS", "F16"])
        what = f"tensor {key} dtype {header[key]['dtype']}"
    else:
        header[key]["data_offsets"] = pick(rng, [[0, 10**15], [-1, 4], [5, 1], [0]])
        what = f"tensor {key} offsets {header[key]['data_offsets']}"
    body = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body + data[8 + n :])
    return what


def _mutate_model(rng, folder: Path, model: Path) -> str:
    files = ["model_index.json", "spectra_model.json", "unet/config.json", "scheduler/scheduler_config.json"]
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    mode = rng.random()
    if mode < 0.55:
        what = write_json_mutation(rng, model / pick(rng, files))
        if rng.random() < 0.2:
            what += "; " + write_json_mutation(rng, model / pick(rng, files))
        return what
    if mode < 0.7:
        return _mutate_safetensors_header(rng, weights)
    if mode < 0.8:
        return replace_with_special(rng, model / pick(rng, files + ["unet/diffusion_pytorch_model.safetensors"]))
    if mode < 0.85:
        with open(weights, "r+b") as handle:  # NaN weights
            handle.seek(weights.stat().st_size - 4)
            handle.write(struct.pack("<f", float("nan")))
        return "a NaN weight"
    return mutate_bytes(rng, weights, header_bias=4096)


def _load_model(path: Path):
    from engines.generation.models import clear_cache, inspect_model, load_model

    clear_cache()
    info = inspect_model(path)
    loaded = load_model(info)
    clear_cache()
    return info.name, type(loaded.unet).__name__


def _model_errors():
    from engines.generation.models import ModelError

    return (ModelError,)


def _build_single(folder: Path) -> Path:
    from engines.generation.models import SHIPPED_MODELS_DIR, write_skeleton

    shutil.copy(SHIPPED_MODELS_DIR / "digits-flow" / "unet" / "diffusion_pytorch_model.safetensors",
                folder / "digits.safetensors")
    write_skeleton(SHIPPED_MODELS_DIR / "digits-flow", folder / "digits.config")
    return folder / "digits.safetensors"


def _mutate_single(rng, folder: Path, path: Path) -> str:
    skeleton = folder / "digits.config"
    files = ["model_index.json", "spectra_model.json", "unet/config.json", "scheduler/scheduler_config.json"]
    mode = rng.random()
    if mode < 0.5:
        return write_json_mutation(rng, skeleton / pick(rng, files))
    if mode < 0.7:
        return _mutate_safetensors_header(rng, path)
    if mode < 0.8:
        return replace_with_special(rng, pick(rng, [skeleton / pick(rng, files), skeleton, path]))
    return mutate_bytes(rng, path, header_bias=4096)


# -- adapter files (LoRA header and trigger words) ------------------------------------------------------------
def _build_lora(folder: Path) -> Path:
    from safetensors.numpy import save_file

    path = folder / "style.safetensors"
    tags = {"10_style": {"inkstyle": 12, "1girl": 3}, "2_extra": {"outdoors": 5}}
    save_file({"lora_unet_a_b.lora_down.weight": np.ones((2, 4), np.float32),
               "lora_unet_a_b.lora_up.weight": np.ones((4, 2), np.float32)}, str(path),
              metadata={"ss_tag_frequency": json.dumps(tags), "modelspec.trigger_phrase": "ink, wash"})
    return path


def _mutate_lora(rng, folder: Path, path: Path) -> str:
    mode = rng.random()
    if mode < 0.4:  # the metadata the trigger words come from
        data = path.read_bytes()
        n = struct.unpack_from("<Q", data, 0)[0]
        header = json.loads(data[8 : 8 + n])
        meta = header["__metadata__"]
        key = pick(rng, ["ss_tag_frequency", "modelspec.trigger_phrase", "__metadata__"])
        value = json.dumps(pick(rng, [*BAD_JSON_VALUES, {"d": {"t": 10**30}}, {"d": ["x"]}, [[["x"]]]]))
        if key == "__metadata__":
            header[key] = json.loads(value)
        else:
            meta[key] = value if rng.random() < 0.5 else value[: int(rng.integers(0, len(value) + 1))]
        body = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(body)) + body + data[8 + n :])
        return f"metadata {key} = {value[:40]}"
    if mode < 0.6:
        return _mutate_safetensors_header(rng, path)
    return mutate_bytes(rng, path, header_bias=256)


def _load_adapter(path: Path):
    from engines.generation.adapter_files import adapter_info

    return adapter_info(path)


def _adapter_errors():
    return (ValueError,)


# -- provenance chunk --------------------------------------------------------------------------------------------
def _build_provenance(folder: Path) -> Path:
    from studio.export import make_provenance, save_png

    path = folder / "export.png"
    record = make_provenance("codec", "codec.block.encode", {"quality": 42, "transform": "dct", "N": 8}, seed=3)
    save_png(path, _image_pixels(), record)
    return path


def _mutate_provenance(rng, folder: Path, path: Path) -> str:
    from PIL import Image, PngImagePlugin

    from studio.export import PNG_KEY

    if rng.random() < 0.25:
        return mutate_bytes(rng, path, header_bias=200)
    with Image.open(path) as image:
        record = json.loads(image.info[PNG_KEY])
    mode = rng.random()
    if mode < 0.1:
        text, what = "{not json" + "x" * int(rng.integers(0, 100)), "invalid JSON"
    elif mode < 0.15:
        text, what = json.dumps({"panel": "codec", "parameters": {"x": "y" * 3_000_000}}), "3 MB record"
    else:
        text, what = mutate_json_text(rng, record)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEY, text)
    Image.fromarray(_image_pixels()).save(path, pnginfo=info)
    return what


def _load_provenance(path: Path):
    from studio.export import read_provenance

    return read_provenance(path)


def _provenance_errors():
    from studio.export import ExportError

    return (ExportError,)


# -- formats added later: SPZ, SuperSplat compressed PLY, JPEG internals, transfer functions --------------------
def _build_spz(folder: Path) -> Path:
    from engines.render.formats.spz import save_spz

    scene = _load_scene(_build_ply(folder))
    (folder / "scene.ply").unlink()
    path = folder / "scene.spz"
    save_spz(path, scene)
    return path


def _mutate_spz(rng, folder: Path, path: Path) -> str:
    import gzip

    if rng.random() < 0.3:
        return mutate_bytes(rng, path)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    if rng.random() < 0.5:  # header: magic, version, numPoints, shDegree, fractionalBits, flags
        field, offset, fmt = pick(rng, [("version", 4, "<I"), ("points", 8, "<I"), ("sh degree", 12, "<B"),
                                         ("fractional bits", 13, "<B"), ("flags", 14, "<B")])
        limit = 255 if fmt == "<B" else 0xFFFFFFFF
        value = min(pick(rng, [limit, 0, 1, 2, 3, 4, 24, 65535, 1 << 31]), limit)
        struct.pack_into(fmt, raw, offset, value)
        what = f"{field} = {value}"
    else:
        tmp = path.with_suffix(".raw")
        tmp.write_bytes(bytes(raw))
        what = mutate_bytes(rng, tmp, header_bias=16)
        raw = bytearray(tmp.read_bytes())
        tmp.unlink()
    path.write_bytes(gzip.compress(bytes(raw), mtime=0))
    return what


def _build_compressed_ply(folder: Path) -> Path:
    from engines.render.formats.compressed_ply import save_compressed_ply

    scene = _load_scene(_build_ply(folder))
    path = folder / "scene.ply"
    path.unlink()
    save_compressed_ply(path, scene)
    return path


def _build_jpeg_internals(folder: Path) -> Path:
    from PIL import Image

    path = folder / "image.jpg"
    progressive = {"progressive": True} if (folder.name.__hash__() & 1) else {}
    Image.fromarray(_image_pixels()).save(path, quality=80, **progressive)
    (folder / "progressive.jpg").write_bytes(_progressive_jpeg())
    return path


def _progressive_jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_image_pixels()).save(buf, "JPEG", quality=70, progressive=True, subsampling=0)
    return buf.getvalue()


def _mutate_jpeg_internals(rng, folder: Path, path: Path) -> str:
    if rng.random() < 0.5:
        path.write_bytes((folder / "progressive.jpg").read_bytes())
        return "progressive; " + _mutate_jpeg(rng, folder, path)
    return _mutate_jpeg(rng, folder, path)


def _load_jpeg_internals(path: Path):
    from engines.codec.jpeg_internals import read_jpeg_internals

    return read_jpeg_internals(path, with_pixels=True)


def _jpeg_errors():
    from engines.codec.jpeg_parse import JpegError

    return (JpegError,)


_TF_TEXTS = {
    "tf.vp": "1\n8 -1000 0 0 0 300 0.2 1200 0.8\n16 -1000 0 0 0 300 1 0.5 0.2 1200 1 1 1\n4 0 1 255 1\n0\n0.1\n0.7\n0.2\n10\n",
    "tf.1dt": "3\n0.0 0 0 0 0\n0.5 1 0.5 0.2 0.3\n1.0 1 1 1 0.9\n",
    "tf.json": None,
}


def _build_tf(folder: Path) -> Path:
    from engines.volume.tf import default_tf, to_slicer_vp

    for name, text in _TF_TEXTS.items():
        if text is not None:
            (folder / name).write_text(text)
    (folder / "tf.vp").write_text(to_slicer_vp(default_tf(-1000.0, 2000.0)))
    (folder / "tf.json").write_text(json.dumps([{"Name": "map", "ColorSpace": "Diverging", "RGBPoints": [
        0, 0.2, 0.3, 0.8, 0.5, 0.9, 0.9, 0.9, 1, 0.7, 0.1, 0.1], "Points": [0, 0, 0.5, 0, 1, 1, 0.5, 0]}]))
    return folder / "tf.vp"


def _mutate_tf(rng, folder: Path, path: Path) -> str:
    name = pick(rng, sorted(_TF_TEXTS))
    chosen = folder / name
    (folder / ".choice").write_text(name)
    if name == "tf.json" and rng.random() < 0.6:
        return write_json_mutation(rng, chosen)
    if rng.random() < 0.5:
        text = chosen.read_text()
        tokens = text.split()
        i = int(rng.integers(len(tokens)))
        tokens[i] = pick(rng, BAD_NUMBERS) or "x"
        chosen.write_text(" ".join(tokens) if rng.random() < 0.3 else "\n".join(tokens))
        return f"{name}: token {i} = {tokens[i]!r}"
    if rng.random() < 0.1:
        return replace_with_special(rng, chosen)
    return mutate_bytes(rng, chosen)


def _load_tf(path: Path):
    from engines.volume.tf_exchange import read_tf_file

    choice = path.parent / ".choice"
    target = path.parent / (choice.read_text() if choice.exists() else path.name)
    return read_tf_file(target, value_range=(-1000.0, 2000.0))


def _tf_errors():
    from engines.volume.tf_exchange import TFFileError

    return (TFFileError,)


def _build_sslc(folder: Path) -> Path:
    from engines.codec.learned import compress

    path = folder / "image.sslc"
    path.write_bytes(compress(np.concatenate([_image_pixels()] * 2, 1)[:, :32], "hp-default", 60.0)["data"])
    return path


def _mutate_sslc(rng, folder: Path, path: Path) -> str:
    data = path.read_bytes()
    fixed = 4 + 13  # magic, u8 version, u32 header length, u32 payload length, u32 crc
    version, hlen, _plen, _crc = struct.unpack("<BIII", data[4:fixed])
    header, payload = data[fixed : fixed + hlen], data[fixed + hlen :]
    mode = rng.random()
    if mode < 0.5:  # header JSON fields, checksum forged
        new, what = mutate_json(rng, json.loads(header))
        header = (new if isinstance(new, str) and what.startswith("nested") else json.dumps(new)).encode()
    elif mode < 0.7:  # payload bytes, checksum forged
        payload = mutate_bytes_in_memory(rng, payload)
        payload, what = payload[: len(payload) // 4 * 4], "payload bytes"
    else:
        return mutate_bytes(rng, path, header_bias=fixed + hlen)
    crc = zlib.crc32(payload, zlib.crc32(header))
    path.write_bytes(data[:4] + struct.pack("<BIII", version, len(header), len(payload), crc) + header + payload)
    return what + " (checksum forged)"


def _load_sslc(path: Path):
    from engines.codec.learned import decompress

    return decompress(path.read_bytes(), name=path.name)


def _sslc_errors():
    from engines.codec.learned import LearnedCodecError

    return (LearnedCodecError,)


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("ply", _build_ply, _mutate_ply, _load_scene, _scene_errors, "scenes"),
    Target("splat", _build_splat, _mutate_splat, _load_scene, _scene_errors, "scenes"),
    Target("nifti", _build_nifti, _mutate_nifti, _load_nifti, _volume_errors, "volumes"),
    Target("dicom-file", _build_dicom_file, _mutate_dicom_single, _read_volume, _volume_errors, "volumes"),
    Target("dicom-series", _build_dicom_series, _mutate_dicom_series, _read_volume, _volume_errors, "volumes"),
    Target("nrrd", _build_nrrd, _mutate_nrrd, _read_volume, _volume_errors, "volumes"),
    Target("nrrd-detached", _build_nhdr, _mutate_nhdr, _read_volume, _volume_errors, "volumes"),
    Target("mhd", _build_mhd, _mutate_mhd, _load_mhd, _volume_errors, "volumes"),
    Target("tiff", _build_tiff, _mutate_tiff, _read_volume, _volume_errors, "volumes"),
    Target("npy", _build_npy, _mutate_npy, _read_volume, _volume_errors, "volumes"),
    Target("npz", _build_npz, _mutate_npz, _read_volume, _volume_errors, "volumes"),
    Target("png", _build_png, _mutate_png, _load_image, _image_errors, "images"),
    Target("jpeg", _build_jpeg, _mutate_jpeg, _load_image, _image_errors, "images"),
    Target("ssbc", _build_ssbc, _mutate_ssbc, _load_ssbc, _ssbc_errors, "codec"),
    Target("model-folder", _build_model, _mutate_model, _load_model, _model_errors, "models"),
    Target("model-single", _build_single, _mutate_single, _load_model, _model_errors, "models"),
    Target("lora-header", _build_lora, _mutate_lora, _load_adapter, _adapter_errors, "models"),
    Target("provenance", _build_provenance, _mutate_provenance, _load_provenance, _provenance_errors, "images"),
    Target("spz", _build_spz, _mutate_spz, _load_scene, _scene_errors, "scenes"),
    Target("ply-compressed", _build_compressed_ply, _mutate_ply, _load_scene, _scene_errors, "scenes"),
    Target("jpeg-internals", _build_jpeg_internals, _mutate_jpeg_internals, _load_jpeg_internals, _jpeg_errors, "codec"),
    Target("tf-files", _build_tf, _mutate_tf, _load_tf, _tf_errors, "volumes"),
    Target("sslc", _build_sslc, _mutate_sslc, _load_sslc, _sslc_errors, "codec"),
    Target("sstk", _build_sstk, _mutate_sstk, _load_sstk, _sstk_errors, "codec"),
]}


def _more_targets() -> list[Target]:
    """Model files, posed views, foreign PNG chunks, sidecars, strokes, TIFF / WebP / BMP / AVIF / JPEG 2000 / GIF
    images (other modules)."""
    from tests.fuzz.file_targets import file_targets
    from tests.fuzz.image_targets import image_targets
    from tests.fuzz.model_targets import model_targets

    return model_targets(Target) + file_targets(Target) + image_targets(Target)


TARGETS.update((t.name, t) for t in _more_targets())
#: family -> its targets, in table order
FAMILIES: dict[str, list[str]] = {}
for _target in TARGETS.values():
    FAMILIES.setdefault(_target.family, []).append(_target.name)


# -- deliberately broken loaders: prove the harness sees each kind of failure -------------------------------
def _build_blob(folder: Path) -> Path:
    path = folder / "blob.bin"
    path.write_bytes(bytes(range(64)))
    return path


def _mutate_blob(rng, folder: Path, path: Path) -> str:
    return mutate_bytes(rng, path)


def _broken_loader(kind: str):
    def load(path: Path):
        data = path.read_bytes()
        if data == bytes(range(64)):
            return "pristine"  # the warm-up load
        if kind == "typeerror":
            raise TypeError("unsupported operand")
        if kind == "unclear":
            raise ValueError("KeyError: 'x' while parsing")
        if kind == "hang":
            import time

            time.sleep(3600)
        if kind == "abort":
            import os

            os.abort()
        if kind == "memory":
            return bytearray(8 << 30)
        raise ValueError("blob is corrupt")

    return load


SELF_TEST_TARGETS: dict[str, Target] = {
    f"selftest-{kind}": Target(f"selftest-{kind}", _build_blob, _mutate_blob, _broken_loader(kind), lambda: (ValueError,))
    for kind in ("typeerror", "unclear", "hang", "abort", "memory", "clean")
}
