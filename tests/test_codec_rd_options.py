"""RD sweeps: codec options are checked, BD per image besides the mean curve, BD on SSIM and
MS-SSIM (in dB), and the inspector's per-block CSV of a real JPEG."""

import json

import numpy as np
import pytest
from PIL import Image

from engines.codec.rd import bd_per_image, bd_rate, bd_table, curves_from_rows, metric_value, parse_codec_spec
from engines.codec.realcodecs import run_codec
from studio.cli import main


@pytest.mark.parametrize("spec,match", [
    ("jpeg:subsampling=4:1:1", "bad value '4:1:1'"),
    ("jpeg:foo=1", "unknown option 'foo'"),
    ("webp:method=9", "integer 0..6"),
    ("block:N=12", "bad value 12"),
    ("block:transform=haar", "bad value 'haar'"),
    ("jpeg2000:quality_mode=dB", "unknown option"),
    ("bpg", "unknown codec"),
])
def test_unknown_or_bad_codec_options_are_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_codec_spec(spec)


def test_run_codec_checks_options_too():
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown option 'quality_layers'"):
        run_codec(img, "jpeg", 50, quality_layers=[3])
    assert parse_codec_spec("jpeg:subsampling=4:4:4,progressive=true")["options"] == {"subsampling": "4:4:4", "progressive": True}


def _rows():
    """Two images, two codecs, made-up but consistent numbers: codec b needs 20 % fewer bits on
    image 1 and the same bits on image 2 at every quality."""
    rows = []
    for image, saving in (("one", 0.8), ("two", 1.0)):
        for q, (bpp, psnr, ssim) in enumerate([(0.2, 28.0, 0.80), (0.4, 31.0, 0.88), (0.8, 34.0, 0.93), (1.6, 37.0, 0.97)]):
            for label, f in (("a", 1.0), ("b", saving)):
                rows.append({"image": image, "label": label, "codec": label, "quality": 10 * q, "bpp": bpp * f, "psnr_rgb": psnr, "psnr_y": psnr, "ssim": ssim, "ms_ssim": ssim})
    return rows


def test_bd_per_image_and_on_ssim():
    rows = _rows()
    per = {(r["image"], r["codec"]): r for r in bd_per_image(rows, "psnr_rgb", "a")}
    assert per[("one", "b")]["bd_rate_cubic"] == pytest.approx(-20.0, abs=1e-6)
    assert per[("two", "b")]["bd_rate_pchip"] == pytest.approx(0.0, abs=1e-9)
    # SSIM in dB: the same bpp ratio gives the same BD-rate whatever the quality axis
    ssim_db = curves_from_rows([r for r in rows if r["image"] == "one"], "ssim")
    assert ssim_db["a"]["psnr"][0] == pytest.approx(-10 * np.log10(1 - 0.80))
    assert bd_table(ssim_db, "a")[1]["bd_rate_cubic"] == pytest.approx(-20.0, abs=1e-6)
    mean = bd_table(curves_from_rows(rows, "ms_ssim"), "a")[1]["bd_rate_cubic"]
    a = curves_from_rows(rows, "ms_ssim")["a"]
    assert mean == pytest.approx(bd_rate(a["bpp"], a["psnr"], [0.9 * b for b in a["bpp"]], a["psnr"]), abs=1e-9)
    assert metric_value({"ms_ssim": None}, "ms_ssim") is None
    with pytest.raises(ValueError, match="unknown metric"):
        metric_value({}, "lpips")


def test_cli_rejects_bad_options_and_writes_per_image_bd(capsys, tmp_path):
    out = tmp_path / "rd.json"
    assert main(["codec", "rd", "sample:astronaut", "--codecs", "jpeg:subsampling=4:1:1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "4:1:1" in err and not out.exists()
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    from engines.codec.images import sample_image

    Image.fromarray(sample_image("astronaut")[:96, :96]).save(a)
    Image.fromarray(sample_image("astronaut")[200:296, 200:296]).save(b)
    code = main(["codec", "rd", str(a), str(b), "--codecs", "jpeg", "jpeg:subsampling=4:4:4", "--qualities", "30,50,70,90", "--metric", "ssim", "--no-ms-ssim", "--out", str(out), "--json"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert {r["image"] for r in res["bd_per_image"]} == {"a.png", "b.png"}
    assert len(res["bd_per_image"]) == 4 and len(res["bd"]) == 2
    assert main(["codec", "rd", str(a), "--metric", "ms_ssim", "--no-ms-ssim", "--out", str(tmp_path / "x.csv")]) == 2


def test_cli_inspect_blocks_csv(capsys, tmp_path):
    from engines.codec.images import sample_image

    src = tmp_path / "p.jpg"
    Image.fromarray(sample_image("astronaut")[:64, :80]).save(src, quality=70, progressive=True)
    csv_path = tmp_path / "blocks.csv"
    assert main(["codec", "inspect", str(src), "--blocks", str(csv_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    t = info["internals"]
    assert t["block_bits"] + t["padding_bits"] + 8 * (t["stuffed_bytes"] + t["header_and_marker_bytes"]) == 8 * src.stat().st_size
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "plane,x,y,w,h,bits,nonzero"
    assert len(lines) - 1 == 8 * 10 + 2 * 4 * 5  # 4:2:0: 8x10 luma blocks, 4x5 per chroma plane
    assert sum(int(line.split(",")[5]) for line in lines[1:]) == t["block_bits"]
    assert main(["codec", "inspect", str(src), "--blocks", str(csv_path)]) == 2  # exists, no --force
