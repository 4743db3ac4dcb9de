"""Loaders check sizes from the header before allocating or looping: the cases of issue 9.

Each test builds the hostile file in code and checks the ONE clear error (type and wording)
and that nothing large was allocated or looped over (they all finish in well under a second).
"""

import io
import os
import re
import struct
import time
import zlib

import numpy as np
import pytest

from engines.codec.bitstream import BitstreamError
from engines.codec.blockcodec import BlockCodecParams, decode, encode
from engines.imagefile import ImageFileError, open_image
from engines.limits import ENV_VAR, check_decoded_size, max_decoded_bytes, set_max_decoded_bytes
from engines.volume.model import VolumeReadError
from engines.volume.readers import downsample_factor, read_volume


@pytest.fixture
def small_limit():
    set_max_decoded_bytes(1 << 20)
    yield
    set_max_decoded_bytes(None)


def _fast(fn, *args):
    start = time.perf_counter()
    try:
        return fn(*args)
    finally:
        assert time.perf_counter() - start < 2.0


# -- the shared limit -----------------------------------------------------------------------------
def test_limit_default_environment_and_override(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert max_decoded_bytes() == 2 * 2**30
    monkeypatch.setenv(ENV_VAR, "512M")
    assert max_decoded_bytes() == 512 * 2**20
    monkeypatch.setenv(ENV_VAR, "garbage")
    assert max_decoded_bytes() == 2 * 2**30
    set_max_decoded_bytes(1000)
    try:
        assert max_decoded_bytes() == 1000
        with pytest.raises(VolumeReadError, match=r"x.raw \(big\) would decode to 1.0 KiB, more than the limit of 1000 B"):
            check_decoded_size(1024, "x.raw (big)", VolumeReadError)
    finally:
        set_max_decoded_bytes(None)
    with pytest.raises(ValueError):
        set_max_decoded_bytes(-5)


# -- MetaImage ----------------------------------------------------------------------------------------
def _mhd(tmp_path, dims, data_file="v.raw", extra=""):
    (tmp_path / "v.raw").write_bytes(bytes(2 * 5 * 6 * 7))
    path = tmp_path / "v.mhd"
    path.write_text(f"NDims = 3\nDimSize = {dims}\nElementType = MET_SHORT\n{extra}ElementDataFile = {data_file}\n")
    return path


@pytest.mark.parametrize("dims,message", [
    ("9223372036854775807 1 1", "v.raw is truncated"),  # used to loop forever in downsample_factor
    ("-1 6 5", "dimension -1 is negative"),           # used to raise OverflowError
    ("7 0 5", "dimension 0 is zero"),
    ("7.5 6 5", "bad MetaImage header"),
    ("nan 6 5", "bad MetaImage header"),
])
def test_mhd_dimensions_are_checked_before_any_loop(tmp_path, dims, message):
    with pytest.raises(VolumeReadError, match=message):
        _fast(read_volume, _mhd(tmp_path, dims))


def test_downsample_factor_is_a_bisection():
    assert _fast(downsample_factor, (2**62, 1, 1), 512**3) == 2**62 // 512**3 + (2**62 % 512**3 > 0)
    for shape in [(600, 600, 600), (1000, 3, 7), (513, 512, 512)]:
        f = downsample_factor(shape, 512**3)
        def count(k, shape=shape):
            return np.prod([-(-n // k) for n in shape])

        assert count(f) <= 512**3 and (f == 1 or count(f - 1) > 512**3)


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "dir", "missing"])
def test_external_data_files_must_be_regular(tmp_path, kind):
    target = {"/dev/zero": "/dev/zero", "fifo": "pipe", "dir": "sub", "missing": "nothere.raw"}[kind]
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe")
    if kind == "dir":
        (tmp_path / "sub").mkdir()
    expected = "does not exist" if kind == "missing" else "not a regular file"
    with pytest.raises(VolumeReadError, match=expected):
        _fast(read_volume, _mhd(tmp_path, "7 6 5", data_file=target))
    nhdr = tmp_path / "v.nhdr"
    nhdr.write_text(f"NRRD0004\ntype: short\ndimension: 3\nsizes: 7 6 5\nendian: little\nencoding: raw\n"
                    f"data file: {target}\n")
    with pytest.raises(VolumeReadError, match=f"v.nhdr refers to data file .*{expected}"):
        _fast(read_volume, nhdr)


def test_nrrd_gzip_bomb_stops_at_the_announced_size(tmp_path):
    path = tmp_path / "bomb.nrrd"
    blob = zlib.compressobj(9, zlib.DEFLATED, 31)
    payload = blob.compress(bytes(64 << 20)) + blob.flush()  # 64 MiB of zeros in ~64 KiB
    path.write_bytes(b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: gzip\n\n" + payload)
    volume = _fast(read_volume, path)
    assert volume.shape == (4, 4, 4) and not volume.data.any()


# -- numpy ------------------------------------------------------------------------------------------
def test_pickled_object_arrays_are_never_loaded(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}] * 8, dtype=object).reshape(2, 2, 2), allow_pickle=True)
    with pytest.raises(VolumeReadError, match="o.npy"):
        read_volume(tmp_path / "o.npy")
    np.savez(tmp_path / "o.npz", volume=np.array([{"a": 1}] * 8, dtype=object).reshape(2, 2, 2))
    with pytest.raises(VolumeReadError, match="Python objects"):
        read_volume(tmp_path / "o.npz")


def test_npz_member_announcing_too_much_is_refused_before_decompressing(tmp_path, small_limit):
    np.savez_compressed(tmp_path / "z.npz", volume=np.zeros((128, 128, 128), np.float32))
    with pytest.raises(VolumeReadError, match="z.npz .*more than the limit"):
        _fast(read_volume, tmp_path / "z.npz")


# -- images ---------------------------------------------------------------------------------------------
def _png(width, height, rows=4):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    idat = zlib.compress(bytes(width + 1) * rows, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_png_bomb_and_oversize_are_clear_errors(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_png(60000, 60000))
    with pytest.raises(ImageFileError, match="bomb.png .*more than the limit"):
        _fast(open_image, tmp_path / "bomb.png")
    (tmp_path / "short.png").write_bytes(_png(20000, 20000))  # 400 MB of pixels from a few hundred bytes
    with pytest.raises(ImageFileError, match="short.png is truncated or corrupt: a 20000×20000 PNG needs at least"):
        _fast(open_image, tmp_path / "short.png")


def test_jpeg_claiming_a_huge_size_is_refused_before_decoding(tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 12000, 12000)
    (tmp_path / "big.jpg").write_bytes(bytes(data))
    with pytest.raises(ImageFileError, match="big.jpg is truncated or corrupt: a 12000×12000 JPEG"):
        _fast(open_image, tmp_path / "big.jpg")


def test_image_limit_follows_the_setting(tmp_path, small_limit):
    from PIL import Image

    Image.fromarray(np.zeros((600, 600, 3), np.uint8)).save(tmp_path / "ok.png")
    with pytest.raises(ImageFileError, match=r"ok.png \(600×600 RGB image\) would decode to 1.4 MiB"):
        open_image(tmp_path / "ok.png")
    assert Image.MAX_IMAGE_PIXELS == 1 << 20


# -- block codec bitstream -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stream():
    y, x = np.mgrid[0:24, 0:40]
    image = np.stack([x * 6, y * 9, (x * y) % 255], -1).astype(np.uint8)
    return encode(image, BlockCodecParams(quality=50)).bitstream


def test_every_word_truncation_and_bit_flip_is_detected(stream):
    for words in range(1, len(stream) // 4 + 1):
        with pytest.raises(BitstreamError, match="truncated|empty"):
            decode(stream[: len(stream) - 4 * words])
    for bit in range(8 * len(stream)):
        damaged = bytearray(stream)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            decode(bytes(damaged), name="x.ssbc")


def test_version_1_streams_still_decode(stream):
    v1 = stream[:4] + b"\x01" + stream[17:]
    np.testing.assert_array_equal(decode(v1).image, decode(stream).image)


@pytest.mark.parametrize("offset,fmt,value,message", [
    (17, "<I", 2**32 - 1, "would decode to"),   # H = 2^32 - 1: constriction used to abort the process
    (21, "<I", 0, "image size"),
    (25, "<B", 7, "block length"),
    (26, "<B", 9, "alphabet"),
    (27, "<B", 5, "subsampling"),
])
def test_forged_header_fields_are_refused(stream, offset, fmt, value, message):
    data = bytearray(stream)
    struct.pack_into(fmt, data, offset, value)
    body = bytes(data[17:])
    header_len = struct.unpack_from("<I", data, 5)[0]
    forged = bytes(data[:5]) + struct.pack("<III", header_len, len(body) - header_len, zlib.crc32(body)) + body
    with pytest.raises(BitstreamError, match=message):
        _fast(decode, forged)


# -- CLI lines --------------------------------------------------------------------------------------------
def test_error_lines_never_show_exception_classes():
    from studio.errors import describe_error

    assert describe_error(struct.error("unpack requires a buffer of 4 bytes")) == \
        "internal error (unpack requires a buffer of 4 bytes)"
    assert describe_error(KeyError("ElementType")) == "missing entry 'ElementType'"
    assert describe_error(AssertionError()) == "internal error (run with --traceback for details)"
    assert "Error" not in describe_error(OSError(28, "No space left on device", "/tmp/x.ssbc"))


def test_cli_reports_hostile_files_in_one_clear_line(tmp_path, capsys, stream):
    from studio.cli import main

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "huge.mhd").write_text("NDims = 3\nDimSize = 9223372036854775807 1 1\nElementType = MET_SHORT\n"
                                       "ElementDataFile = pipe\n")
    (tmp_path / "bomb.png").write_bytes(_png(60000, 60000))
    (tmp_path / "cut.ssbc").write_bytes(stream[:-8])
    (tmp_path / "cut.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 4294967295\n"
                                       b"property float x\nend_header\n" + bytes(12))
    commands = [
        ["volume", "info", str(tmp_path / "huge.mhd")],
        ["codec", "encode", str(tmp_path / "bomb.png"), "--out", str(tmp_path / "x.ssbc")],
        ["codec", "decode", str(tmp_path / "cut.ssbc"), "--out", str(tmp_path / "x.png")],
        ["render", "info", str(tmp_path / "cut.ply")],
    ]
    for argv in commands:
        assert main(argv) == 2, argv  # bad input: the usage-error status, not an internal failure
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("error: "), err
        assert not re.search(r"[A-Z][a-z]+(Error|Exception)\b|Traceback", err), err
        assert any(name in err for name in ("huge.mhd", "pipe", "bomb.png", "cut.ssbc", "cut.ply")), err
    assert not (tmp_path / "x.ssbc").exists() and not (tmp_path / "x.png").exists()
