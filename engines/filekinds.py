"""What a file or folder holds, decided from a few bytes or the folder's layout (no Qt, no decoding).

:func:`sniff` reads at most a few kilobytes (and lists at most a few dozen folder entries), so
the studio can route a drop without building panels or opening the file. The suffix only
breaks ties the magic bytes cannot (``.splat`` has no magic; MetaImage is text).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

# file kinds
PLY_SCENE, SPLAT, SPZ = "ply", "splat", "spz"
NIFTI, DICOM, NRRD, METAIMAGE, TIFF_STACK, NPY, NPZ = "nifti", "dicom", "nrrd", "metaimage", "tiff-stack", "npy", "npz"
PNG, JPEG, WEBP, BMP, TIFF_IMAGE, AVIF, JP2, GIF = "png", "jpeg", "webp", "bmp", "tiff-image", "avif", "jp2", "gif"
SSBC, CHECKPOINT, SSLC, SSTK = "ssbc", "checkpoint", "sslc", "sstk"
CODEC_MODEL, EMBEDDING, TORCHSCRIPT = "codec-model", "embedding", "torchscript"
TRANSFER_FUNCTION = "transfer-function"  # a .json colour map (ParaView's or ours)
# folder kinds
DICOM_FOLDER, MODEL_FOLDER, POSED_VIEWS, EMPTY_FOLDER = "dicom-folder", "diffusers-model", "posed-views", "empty-folder"
CONTROLNET_FOLDER = "controlnet-folder"
UNKNOWN, MISSING = "unknown", "missing"

#: a short phrase per kind, for messages ("a DICOM series folder")
DESCRIPTIONS = {
    PLY_SCENE: "a PLY scene", SPLAT: "a .splat scene", SPZ: "an SPZ scene", NIFTI: "a NIfTI volume", DICOM: "a DICOM file",
    NRRD: "an NRRD volume", METAIMAGE: "a MetaImage volume", TIFF_STACK: "a TIFF stack", NPY: "a NumPy array",
    NPZ: "a NumPy archive", PNG: "a PNG image", JPEG: "a JPEG image", WEBP: "a WebP image", BMP: "a bitmap image",
    TIFF_IMAGE: "a TIFF image", AVIF: "an AVIF image", JP2: "a JPEG 2000 image", GIF: "a GIF image", SSBC: "a block-codec bitstream",
    CHECKPOINT: "a model checkpoint", SSLC: "a learned-codec bitstream", SSTK: "a token file (.sstk)",
    CODEC_MODEL: "a learned-codec model", EMBEDDING: "a textual-inversion embedding",
    TORCHSCRIPT: "a TorchScript network", TRANSFER_FUNCTION: "a transfer function",
    DICOM_FOLDER: "a DICOM series folder", MODEL_FOLDER: "a diffusers model folder",
    CONTROLNET_FOLDER: "a ControlNet folder",
    POSED_VIEWS: "a folder of posed views", EMPTY_FOLDER: "an empty folder", UNKNOWN: "a file of unknown type",
    MISSING: "a missing file",
}

_HEAD = 4096
_FOLDER_PROBES = 64


def _head(path: Path, size: int = _HEAD) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def _nifti_header(head: bytes) -> bool:
    """A NIfTI-1/2 header (either byte order): sizeof_hdr 348 or 540 and the n+1/ni1 magic."""
    if len(head) < 348:
        return False
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348 and head[344:347] in (b"n+1", b"ni1"):
            return True
        if size == 540 and head[4:7] in (b"n+2", b"ni2"):
            return True
    return False


def _gunzip_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(544)
    except (OSError, EOFError, zlib.error):
        return b""


def _tiff_kind(path: Path) -> str:
    """A stack (several pages, or a 3D series) goes to Volume; a single 2D or RGB page is an image."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            shape = tif.series[0].shape if tif.series else ()
    except Exception:  # noqa: BLE001 - tifffile raises many types on broken files: not a TIFF we read
        return UNKNOWN
    if len(shape) >= 3 and not (len(shape) == 3 and shape[-1] in (3, 4)):
        return TIFF_STACK
    return TIFF_IMAGE if len(shape) >= 2 else UNKNOWN


def _metaimage_header(head: bytes) -> bool:
    text = head[:1024].decode("latin-1", "replace")
    keys = {line.split("=", 1)[0].strip().lower() for line in text.splitlines() if "=" in line}
    return "dimsize" in keys and ("ndims" in keys or "objecttype" in keys)


#: how much of a .json file is searched for a transfer function's keys, and its largest size
_TF_JSON_HEAD, _TF_JSON_MAX_BYTES = 1 << 16, 1 << 20
_TF_JSON_MARKERS = (b"RGBPoints", b"spectra-studio-tf1d")


def _tf_json(path: Path) -> bool:
    """A small .json file holding a transfer function: a ParaView colour map list or ours."""
    return path.stat().st_size <= _TF_JSON_MAX_BYTES and any(m in _head(path, _TF_JSON_HEAD) for m in _TF_JSON_MARKERS)


_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ts")
_PICKLE_HEAD = 1 << 16


def _torch_kind(path: Path) -> str:
    """What a ``torch.save`` / ``torch.jit.save`` zip holds, from its member names and the first
    bytes of its pickle (never unpickled): TorchScript (a ``code/`` folder), a learned-codec model
    (``config`` + ``state``) or an A1111 / SDXL embedding; else UNKNOWN."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()[:4096]
            if any("/code/" in n for n in names):
                return TORCHSCRIPT
            pickle = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if pickle is None:
                return UNKNOWN
            with archive.open(pickle) as handle:
                head = handle.read(_PICKLE_HEAD)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError, EOFError, zlib.error):
        return UNKNOWN
    from engines.generation.embeddings import A1111_KEYS, SDXL_KEYS

    if any(key.encode() in head for key in A1111_KEYS) or all(key.encode() in head for key in SDXL_KEYS):
        return EMBEDDING
    if b"config" in head and b"state" in head and b"kind" in head:
        return CODEC_MODEL
    return UNKNOWN


def _sniff_file(path: Path) -> str:
    head = _head(path)
    name = path.name.lower()
    if not head:
        return UNKNOWN
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:12] in (b"ftypavif", b"ftypavis"):
        return AVIF
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return JP2
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return _tiff_kind(path)
    if head.startswith((b"ply\n", b"ply\r\n")):
        return PLY_SCENE
    if head.startswith(b"\x93NUMPY"):
        return NPY
    if head.startswith(b"PK\x03\x04") and name.endswith(".npz"):
        return NPZ
    if head.startswith(b"PK\x03\x04") and name.endswith(_TORCH_SUFFIXES):
        return _torch_kind(path)
    if head.startswith(b"NRRD000"):
        return NRRD
    if head.startswith(b"SSBC"):
        return SSBC
    if head.startswith(b"SSLC"):
        return SSLC
    if head.startswith(b"SSTK"):
        return SSTK
    if len(head) >= 132 and head[128:132] == b"DICM":
        return DICOM
    if _nifti_header(head):
        return NIFTI
    if head.startswith(b"\x1f\x8b"):
        inner = _gunzip_head(path)
        if _nifti_header(inner):
            return NIFTI
        if inner[:4] == b"NGSP":
            return SPZ
    if head.startswith(b"BM") and name.endswith(".bmp"):
        return BMP
    if name.endswith(".safetensors") and len(head) >= 9 and head[8:9] == b"{":
        return CHECKPOINT
    if name.endswith((".mhd", ".mha")) and _metaimage_header(head):
        return METAIMAGE
    if name.endswith(".json") and _tf_json(path):
        return TRANSFER_FUNCTION
    if name.endswith(".splat"):
        size = path.stat().st_size
        return SPLAT if size and size % 32 == 0 else UNKNOWN
    return UNKNOWN


#: the weight files :func:`engines.generation.controlnet.controlnet_weights_file` reads from a folder
_CONTROLNET_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")


def _controlnet_folder(path: Path) -> bool:
    """A diffusers ControlNet folder (or its ``controlnet/`` subfolder): ``config.json`` naming
    ``ControlNetModel`` next to its weights."""
    for folder in (path, path / "controlnet"):
        config = folder / "config.json"
        if config.is_file() and b'"ControlNetModel"' in _head(config, 1024) and \
                any((folder / name).is_file() for name in _CONTROLNET_WEIGHTS):
            return True
    return False


def _sniff_folder(path: Path) -> str:
    if (path / "model_index.json").is_file():
        return MODEL_FOLDER
    if _controlnet_folder(path):
        return CONTROLNET_FOLDER
    if (path / "cameras.json").is_file() or (path / "transforms.json").is_file():
        return POSED_VIEWS
    if any((base / f"cameras{ext}").is_file() and (base / f"images{ext}").is_file()
           for base in (path, path / "sparse" / "0", path / "sparse") for ext in (".bin", ".txt")):
        return POSED_VIEWS  # a COLMAP sparse model
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return UNKNOWN
    files = [e for e in entries if not e.name.startswith(".") and e.is_file()]
    if not entries:
        return EMPTY_FOLDER
    for entry in files[:_FOLDER_PROBES]:
        head = _head(Path(entry.path), 132)
        if head[128:132] == b"DICM":
            return DICOM_FOLDER
    return UNKNOWN


def sniff(path: str | os.PathLike) -> str:
    """The kind of ``path`` (one of this module's constants) from its first bytes or folder layout.

    Never raises: unreadable or unrecognised input is :data:`UNKNOWN`, a missing path :data:`MISSING`.
    """
    path = Path(path)
    try:
        if path.is_dir():
            return _sniff_folder(path)
        if not path.is_file():
            return MISSING
        return _sniff_file(path)
    except OSError:
        return UNKNOWN


def describe(kind: str) -> str:
    """``"dicom-folder"`` → ``"a DICOM series folder"``."""
    return DESCRIPTIONS.get(kind, DESCRIPTIONS[UNKNOWN])
