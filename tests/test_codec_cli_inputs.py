"""The codec verbs on awkward inputs: tiny images, exact channels, bitstreams, bad targets."""

import json

import numpy as np
import pytest
from PIL import Image

from studio.cli import main


def _run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_one_pixel_image_gives_strict_json_and_clear_notes(capsys, tmp_path):
    src = tmp_path / "one.png"
    Image.fromarray(np.array([[[10, 200, 37]]], dtype=np.uint8)).save(src)
    code, out, err = _run(capsys, ["codec", "encode", str(src), "--out", str(tmp_path / "one.png.jp2"), "--codec", "jpeg2000", "--json"])
    assert code == 0, err
    # strict JSON: no Infinity/NaN tokens (JPEG 2000 reproduces this pixel exactly)
    data = json.loads(out, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    assert data["ssim"] is None and "11x11" in data["ssim_note"]
    assert data["ms_ssim"] is None and "161x161" in data["ms_ssim_note"]
    if any(v is None for v in data["psnr"].values()):
        assert "infinite" in data["psnr_note"]
    code, out, err = _run(capsys, ["codec", "encode", str(src), "--out", str(tmp_path / "one.ssbc")])
    assert code == 0, err
    assert "SSIM: n/a" in out and "MS-SSIM: n/a" in out and "bpp" in out


def test_inspect_block_bitstream_and_corrupt_one(capsys, tmp_path):
    from engines.codec.images import sample_image

    src = tmp_path / "crop.png"
    Image.fromarray(sample_image("coffee")[:64, :80]).save(src)
    stream = tmp_path / "c.ssbc"
    assert main(["codec", "encode", str(src), "--out", str(stream), "--transform", "sdct", "--quality", "40"]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, ["codec", "inspect", str(stream), "--json"])
    assert code == 0, err
    info = json.loads(out)
    assert (info["width"], info["height"], info["transform"], info["N"]) == (80, 64, "sdct", 8)
    assert info["bpp"] == pytest.approx(8 * stream.stat().st_size / (80 * 64))
    bad = tmp_path / "bad.ssbc"
    bad.write_bytes(stream.read_bytes()[:40])
    code, out, err = _run(capsys, ["codec", "inspect", str(bad)])
    assert code == 2 and "bad.ssbc is truncated" in err and "Traceback" not in err


def test_outputs_are_checked_before_any_work(capsys, tmp_path):
    code, _, err = _run(capsys, ["codec", "rd", "sample:astronaut", "--codecs", "jpeg", "webp", "--qualities", "30,50,70,90", "--out", str(tmp_path / "nope" / "rd.csv")])
    assert code == 2 and "does not exist" in err
    code, _, err = _run(capsys, ["codec", "rd", "sample:astronaut", "--codecs", "jpeg", "webp", "--anchor", "avif", "--out", str(tmp_path / "rd.csv")])
    assert code == 2 and "--anchor" in err
    assert not (tmp_path / "rd.csv").exists()
    recon = tmp_path / "r.png"
    recon.write_bytes(b"keep")
    code, _, err = _run(capsys, ["codec", "encode", "sample:astronaut", "--out", str(tmp_path / "a.ssbc"), "--recon", str(recon)])
    assert code == 2 and "exists" in err
    assert not (tmp_path / "a.ssbc").exists() and recon.read_bytes() == b"keep"


def test_fom_show_matrix_errors_and_no_negative_zero(capsys):
    code, _, err = _run(capsys, ["codec", "fom", "--show-matrix", "minangle-mx"])
    assert code == 2 and "minangle-m1" in err
    code, out, err = _run(capsys, ["codec", "fom", "--N", "16", "--show-matrix", "jam-rdct"])
    assert code == 0, err
    matrix = out.split("T (jam-rdct):")[1]
    assert "-0 " not in matrix and "-0\n" not in matrix
    rows = [[int(v) for v in line.split()] for line in matrix.strip().splitlines()]
    T = np.array(rows)
    assert T.shape == (16, 16)
    P = T @ T.T
    assert np.array_equal(P, np.diag(np.diag(P)))


def test_rd_text_table(capsys, tmp_path):
    code, out, err = _run(capsys, ["codec", "rd", "sample:astronaut", "--codecs", "jpeg", "webp", "--qualities", "30,50,70,90", "--out", str(tmp_path / "rd.csv"), "--no-ms-ssim"])
    assert code == 0, err
    assert "BD against jpeg" in out and "webp" in out and "%" in out
    assert "[{" not in out  # not a raw JSON dump


def test_rd_on_a_lossless_pixel_writes_strict_json_and_explains_bd(capsys, tmp_path):
    src = tmp_path / "one.png"
    Image.fromarray(np.array([[[10, 200, 37]]], dtype=np.uint8)).save(src)
    out = tmp_path / "rd.json"
    code, stdout, err = _run(capsys, ["codec", "rd", str(src), "--codecs", "jpeg", "jpeg2000", "--qualities", "20,40,60,80", "--out", str(out), "--json"])
    assert code == 0, err
    strict = {"parse_constant": lambda token: pytest.fail(f"non-standard JSON token {token}")}
    saved = json.loads(out.read_text(), **strict)
    printed = json.loads(stdout, **strict)
    assert len(saved["rows"]) == 8
    jp2 = next(r for r in printed["bd"] if r["codec"] == "jpeg2000")
    assert jp2["bd_rate_cubic"] is None and ("infinite" in jp2["note"] or "distinct" in jp2["note"])
    assert any(r["codec"] == "jpeg2000" and r["psnr_rgb"] is None for r in saved["rows"])  # lossless -> null
