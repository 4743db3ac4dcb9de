"""The ``dct`` learned codec (engines/codec/learned_dct.py): JPEG-exact initialisation (YCbCr,
orthonormal 8×8 DCT-II against scipy, IJG steps, identity GDN), exact inverse synthesis, real
.sslc bitstreams (file decode == in-memory decode), the rate falling with the step multiplier,
training through the CLI, and the shipped model."""

import json

import numpy as np
import pytest
import torch
from scipy.fft import dctn

from engines.codec import learned
from engines.codec.learned_dct import MULTIPLIER_RANGE, jpeg_base_steps, multiplier_for_quality
from engines.codec.learned_model import build_model
from engines.jobs import run_job


@pytest.fixture(scope="module")
def img():
    from engines.codec.images import sample_image

    return sample_image("coffee")[40:137, 200:331]  # 97 x 131, not a multiple of 32


@pytest.fixture(scope="module")
def tiny_dct(tmp_path_factory):
    """A dct model trained for three steps (file path)."""
    from engines.codec.images import sample_image

    torch.set_num_threads(1)
    model, cfg = run_job(learned.train_job([sample_image("chelsea")], kind="dct", N=8, M=192, lam=0.1, steps=3, patch=64, batch=2, seed=3))
    return str(learned.save_model(model, tmp_path_factory.mktemp("dct") / "dct.pt", cfg))


def _ycbcr(rgb: np.ndarray) -> np.ndarray:
    """JFIF YCbCr of 0..255 RGB with every channel level-shifted to be centred on 0."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b - 128.0
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return np.stack([y, cb, cr])


def test_initial_analysis_is_jpeg_dct_and_synthesis_inverts_it(img):
    torch.manual_seed(0)
    model = build_model("dct", 16, 64)  # M is ignored: always 3 x 64
    assert model.M == 192
    crop = img[:64, :96]
    x = torch.from_numpy(crop.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    with torch.no_grad():
        coef = model.dct(model.color(x * 255.0))[0].double().numpy()
        u = model.analysis(x)
        back = model.synthesis(u, 1.0)
    ycc = _ycbcr(crop)
    for c in range(3):
        for by, bx in ((0, 0), (3, 5), (7, 11)):
            ref = dctn(ycc[c, 8 * by : 8 * by + 8, 8 * bx : 8 * bx + 8], norm="ortho")
            got = coef[64 * c : 64 * c + 64, by, bx].reshape(8, 8)
            np.testing.assert_allclose(got, ref, atol=2e-3)  # float32 conv of 0..1000 values
    # u = coefficient / IJG quality-50 step, GDN ~ identity at init (|u| < 70 -> < 0.3 % off)
    expected = coef / jpeg_base_steps()[:, None, None]
    np.testing.assert_allclose(u[0].numpy(), expected, rtol=4e-3, atol=1e-3)
    np.testing.assert_allclose(back[0].numpy(), x[0].numpy(), atol=1e-4)


def test_multiplier_mapping():
    assert multiplier_for_quality(60) == 1.0
    assert multiplier_for_quality(100) == pytest.approx(0.25)
    assert multiplier_for_quality(40) == pytest.approx(2.0)
    qs = np.arange(1, 101)
    ms = [multiplier_for_quality(q) for q in qs]
    assert np.all(np.diff(ms) < 0)
    assert MULTIPLIER_RANGE[0] <= multiplier_for_quality(100) and multiplier_for_quality(1) <= MULTIPLIER_RANGE[1]


def test_file_decode_equals_encoder_and_rate_falls_with_multiplier(tiny_dct, img, tmp_path):
    sizes, errors = [], []
    for q in (10, 40, 70, 95):
        res = learned.compress(img, tiny_dct, q)
        path = tmp_path / f"q{q}.sslc"
        path.write_bytes(res["data"])
        dec = learned.decompress(path.read_bytes(), path.name)
        np.testing.assert_array_equal(dec, res["decoded"])
        assert dec.shape == img.shape and res["step"] == pytest.approx(multiplier_for_quality(q))
        sizes.append(len(res["data"]))
        errors.append(float(np.mean((dec.astype(float) - img) ** 2)))
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes  # a coarser step costs fewer bits
    assert errors[-1] < errors[0]
    bad = bytearray(learned.compress(img, tiny_dct, 50)["data"])
    bad[-5] ^= 1
    with pytest.raises(learned.LearnedCodecError, match="CRC"):
        learned.decompress(bytes(bad))


def _payload_words(data: bytes) -> tuple[int, int]:
    """(all payload words, z words) of an .sslc file."""
    hlen, plen = np.frombuffer(data[5:13], dtype="<u4")
    return int(plen) // 4, json.loads(data[17 : 17 + int(hlen)])["z_words"]


def test_readouts_match_the_coded_rate(tiny_dct, img):
    res = learned.compress(img, tiny_dct, 60)
    ro = learned.latent_readouts(img, tiny_dct, 60)
    assert ro["bits_map"].shape == (16, 20)  # 97 x 131 padded to 128 x 160, one position per 8x8 block
    words, z_words = _payload_words(res["data"])
    y_bits = 32 * (words - z_words)
    # the coder uses the scale snapped up to the 64-level table (<= 13 % wider): a little above -log2 p
    assert ro["bits_map"].sum() * 0.97 <= y_bits <= ro["bits_map"].sum() * 1.15 + 64
    assert set(ro["histograms"]) <= set(range(192))


def test_cli_trains_and_codes_the_dct_kind(capsys, tmp_path, img):
    from PIL import Image

    from studio.cli import main

    src = tmp_path / "a.png"
    Image.fromarray(img).save(src)
    model = tmp_path / "d.pt"
    assert main(["codec", "train", str(src), "--kind", "dct", "--N", "8", "--steps", "2", "--patch", "64", "--batch", "1",
                 "--decay-last", "0.5", "--out", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "dct" and model.exists()
    blob = torch.load(model, weights_only=True)
    assert blob["config"]["kind"] == "dct" and blob["config"]["lambda"] == 0.1 and blob["config"]["decay_last"] == 0.5
    out = tmp_path / "a.sslc"
    assert main(["codec", "encode", str(src), "--codec", f"learned:{model}", "--quality", "30", "--out", str(out), "--json"]) == 0
    enc = json.loads(capsys.readouterr().out)
    assert enc["bpp"] == pytest.approx(8 * out.stat().st_size / (img.shape[0] * img.shape[1]))
    png = tmp_path / "d.png"
    assert main(["codec", "decode", str(out), "--out", str(png), "--json"]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(np.asarray(Image.open(png)), learned.decompress(out.read_bytes()))
    assert main(["codec", "train", str(src), "--kind", "dct", "--steps", "1", "--patch", "48", "--out", str(tmp_path / "x.pt")]) == 2
    assert "multiple of 32" in capsys.readouterr().err


def test_shipped_dct_model_beats_jpeg_at_equal_rate_on_a_held_out_crop():
    """On a held-out photo (astronaut, not in the training set) the shipped model gives a higher
    PSNR than JPEG 4:2:0 with optimized Huffman tables at a rate no larger than JPEG's."""
    from engines.codec.images import sample_image
    from engines.codec.metrics import psnr_channels
    from engines.codec.realcodecs import run_codec

    torch.set_num_threads(1)
    image = sample_image("astronaut")[128:384, 128:384]
    ours = learned.compress(image, "dct-default", 50)
    ours_bpp = 8 * len(ours["data"]) / image.shape[0] ** 2
    ours_psnr = psnr_channels(image, learned.decompress(ours["data"]))["rgb"]
    for q in range(95, 4, -5):  # the best JPEG quality that is not bigger than our file
        jpeg = run_codec(image, "jpeg", q, subsampling="4:2:0", optimize=True)
        if jpeg.bpp <= ours_bpp:
            break
    assert jpeg.bpp <= ours_bpp
    assert ours_psnr > psnr_channels(image, jpeg.decoded)["rgb"] + 0.5
