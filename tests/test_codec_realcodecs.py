"""Real codecs through Pillow, the JPEG inspector, metrics, RD sweeps and BD-rate."""

import io

import numpy as np
import pytest
from PIL import Image

from engines.codec.images import load_image, sample_image
from engines.codec.metrics import MS_SSIM_MIN_SIZE, all_metrics, ms_ssim, psnr, psnr_channels, ssim
from engines.codec.quant import JPEG_CHROMA, JPEG_LUMA, ijg_scale
from engines.codec.rd import (
    bd_psnr,
    bd_rate,
    bd_table,
    curves_from_rows,
    parse_codec_spec,
    rd_sweep_job,
    rows_to_csv,
)
from engines.codec.realcodecs import available_codecs, inspect_jpeg, run_codec
from engines.jobs import CancelToken, JobCancelled, Progress, run_job


@pytest.fixture(scope="module")
def img():
    return sample_image("astronaut")[::2, ::2].copy()  # 256x256


@pytest.mark.parametrize("codec", ["jpeg", "webp", "avif", "jpeg2000", "block"])
def test_codecs_roundtrip_and_rate_ordering(img, codec):
    assert codec in available_codecs()
    lo = run_codec(img, codec, 20)
    hi = run_codec(img, codec, 85)
    assert lo.decoded.shape == img.shape and lo.decoded.dtype == np.uint8
    assert lo.bpp < hi.bpp
    assert psnr(img, lo.decoded) < psnr(img, hi.decoded)
    assert psnr(img, hi.decoded) > 28


def test_run_codec_errors(img):
    with pytest.raises(ValueError, match="unknown codec"):
        run_codec(img, "bpg", 50)
    with pytest.raises(ValueError, match="quality"):
        run_codec(img, "jpeg", 0)
    with pytest.raises(ValueError, match="uint8"):
        run_codec(img.astype(float), "jpeg", 50)


def test_inspect_jpeg_with_known_tables(img):
    luma = np.arange(1, 65).reshape(8, 8)
    chroma = np.full((8, 8), 33)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", qtables=[luma.ravel().tolist(), chroma.ravel().tolist()], subsampling=0)
    info = inspect_jpeg(buf.getvalue())
    assert np.array_equal(info["quantization"][0], luma)
    assert np.array_equal(info["quantization"][1], chroma)
    assert info["subsampling"] == "4:4:4"
    assert info["progressive"] is False
    assert info["bytes"] == len(buf.getvalue())
    assert (info["width"], info["height"]) == (img.shape[1], img.shape[0])
    assert {h["class"] for h in info["huffman_tables"]} == {"DC", "AC"}
    assert info["ijg_tables"] is False and "not IJG" in info["quality_note"]
    assert info["restart_interval"] == 0 and info["eoi"] is True and info["scans"] == 1


@pytest.mark.parametrize("q", [1, 5, 25, 50, 75, 90, 99, 100])
def test_inspect_matches_exact_ijg_quality(img, q):
    res = run_codec(img, "jpeg", q, subsampling="4:2:0", progressive=True)
    info = inspect_jpeg(res.data)
    assert info["estimated_quality"] == q and info["ijg_tables"] is True
    assert info["quality_note"] == f"exact IJG tables, quality {q}"
    assert info["subsampling"] == "4:2:0"
    assert info["progressive"] is True
    np.testing.assert_array_equal(info["quantization"][0], ijg_scale(JPEG_LUMA, q))
    np.testing.assert_array_equal(info["quantization"][1], ijg_scale(JPEG_CHROMA, q))


def test_inspect_rejects_non_jpeg(tmp_path):
    with pytest.raises(ValueError, match="not a JPEG"):
        inspect_jpeg(b"\x89PNG....")


def test_psnr_and_channels_hand_computed():
    a = np.zeros((16, 16, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 10  # only red differs by 10
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (100 / 3)))
    ch = psnr_channels(a, b)
    assert ch["R"] == pytest.approx(10 * np.log10(255**2 / 100))
    assert ch["G"] == float("inf")
    # Y = 0.299 R -> MSE 2.99^2
    assert ch["Y"] == pytest.approx(10 * np.log10(255**2 / 2.99**2), abs=1e-4)


def test_ssim_ms_ssim(img):
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    assert ssim(img, noisy) < 0.9
    assert 0 < ms_ssim(img, noisy) < 1
    small = img[:128, :128]
    with pytest.raises(ValueError, match=f"at least {MS_SSIM_MIN_SIZE}"):
        ms_ssim(small, small)
    m = all_metrics(small, small, 100)
    assert m["ms_ssim"] is None and "MS-SSIM needs" in m["ms_ssim_note"]
    assert m["bpp"] == pytest.approx(800 / 128**2)


def test_bd_rate_against_itself_and_scaled_copy():
    r = np.array([0.25, 0.5, 1.0, 2.0])
    d = np.array([29.0, 32.0, 35.5, 38.0])
    for m in ("cubic", "pchip"):
        assert bd_rate(r, d, r, d, m) == pytest.approx(0.0, abs=1e-9)
        assert bd_rate(r, d, 0.9 * r, d, m) == pytest.approx(-10.0, abs=1e-6)
        assert bd_rate(r, d, 1.2 * r, d, m) == pytest.approx(20.0, abs=1e-6)
        assert bd_psnr(r, d, r, d + 0.7, m) == pytest.approx(0.7, abs=1e-9)


def test_bd_rate_analytic_value():
    """log10 r_anchor(D) is a cubic in D (fitted exactly); the test curve adds 0.01 (D - 30).
    Over the overlap [30, 38] the mean log-rate difference is 0.04 -> BD-rate = 10^0.04 - 1."""
    D = np.array([30.0, 32.0, 35.0, 38.0])
    la = 0.5 + 0.05 * (D - 30) + 0.002 * (D - 30) ** 2 - 0.0001 * (D - 30) ** 3
    lt = la + 0.01 * (D - 30)
    expected = (10**0.04 - 1) * 100
    assert bd_rate(10**la, D, 10**lt, D, "cubic") == pytest.approx(expected, abs=1e-9)
    assert bd_rate(10**la, D, 10**lt, D, "pchip") == pytest.approx(expected, rel=0.02)


def test_bd_errors():
    with pytest.raises(ValueError, match="4"):
        bd_rate([1, 2], [30, 31], [1, 2], [30, 31])
    with pytest.raises(ValueError, match="overlap"):
        bd_rate([1, 2, 3, 4], [30, 31, 32, 33], [1, 2, 3, 4], [40, 41, 42, 43])


def test_rd_sweep_job_rows_curves_and_csv():
    image = sample_image("astronaut")[:96, :96].copy()
    specs = ["jpeg", "block:transform=rdct,N=8"]
    events = []
    rows = run_job(rd_sweep_job([("crop", image)], specs, [20, 40, 60, 80]), events.append)
    assert len(rows) == 8
    assert any(isinstance(e, Progress) and e.done == 8 for e in events)
    assert all(r["ms_ssim"] is None for r in rows)  # too small: skipped with a warning
    curves = curves_from_rows(rows)
    assert list(curves) == specs
    table = bd_table(curves, "jpeg")
    assert table[0]["bd_rate_cubic"] == pytest.approx(0.0, abs=1e-9)
    assert table[1]["bd_rate_pchip"] is not None
    csv_text = rows_to_csv(rows)
    assert csv_text.splitlines()[0].startswith("image,codec,label,quality,bytes,bpp")
    assert len(csv_text.strip().splitlines()) == 9
    assert parse_codec_spec("block:transform=rdct,N=8")["options"] == {"transform": "rdct", "N": 8}


def test_rd_sweep_cancellation():
    image = sample_image("astronaut")[:64, :64].copy()
    token = CancelToken()
    seen = []

    def on_event(e):
        seen.append(e)
        if isinstance(e, Progress) and e.done >= 2:
            token.cancel()

    gen = rd_sweep_job([("x", image)], ["jpeg"], list(range(10, 100, 10)))
    with pytest.raises(JobCancelled):
        run_job(gen, on_event, token)
    assert max(e.done for e in seen if isinstance(e, Progress)) < 9
    assert gen.gi_frame is None  # closed


def test_load_image(tmp_path):
    p = tmp_path / "g.png"
    Image.fromarray(np.full((5, 6), 7, np.uint8)).save(p)
    arr = load_image(p)
    assert arr.shape == (5, 6, 3) and arr.dtype == np.uint8
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(bad)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    assert load_image("sample:chelsea").shape == (300, 451, 3)
