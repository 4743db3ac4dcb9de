"""Learned codec: GDN formula, entropy models, training job, real bitstreams through
constriction (exact round trip, rate close to the model's estimate), corrupt files, CLI."""

import json

import numpy as np
import pytest
import torch

from engines.codec import learned
from engines.codec.learned_model import GDN, EntropyBottleneck, GaussianConditional, build_model
from engines.jobs import run_job


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A factorized and a hyperprior model trained for a few steps (file paths)."""
    from engines.codec.images import sample_image

    torch.set_num_threads(1)
    out = {}
    imgs = [sample_image("chelsea"), sample_image("rocket")]
    for kind in ("factorized", "hyperprior"):
        model, cfg = run_job(learned.train_job(imgs, kind=kind, N=16, M=16, steps=4, patch=64, batch=2, seed=1))
        out[kind] = str(learned.save_model(model, tmp_path_factory.mktemp(kind) / f"{kind}.pt", cfg))
    return out


@pytest.fixture(scope="module")
def img():
    from engines.codec.images import sample_image

    return sample_image("astronaut")[100:197, 150:281]  # 97 x 131, not a multiple of 64


def test_gdn_and_igdn_formula():
    torch.manual_seed(0)
    g = GDN(4)
    with torch.no_grad():
        g.gamma.copy_(torch.sqrt(torch.rand(4, 4) * 0.3))
        g.beta.copy_(torch.sqrt(torch.rand(4) + 0.5))
    x = torch.randn(2, 4, 3, 5)
    beta, gamma = g.beta.detach() ** 2, g.gamma.detach() ** 2
    norm = torch.einsum("ij,bjhw->bihw", gamma, x * x) + beta[None, :, None, None]
    torch.testing.assert_close(g(x), x / torch.sqrt(norm), atol=1e-5, rtol=1e-5)
    g.inverse = True
    torch.testing.assert_close(g(x), x * torch.sqrt(norm), atol=1e-5, rtol=1e-5)


def test_entropy_models_are_probabilities():
    eb = EntropyBottleneck(3)
    wide = torch.arange(-2000, 2001, dtype=torch.float32)
    lik = eb.likelihood(wide.view(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous())
    assert torch.allclose(lik.sum(-1), torch.ones(1, 3, 1), atol=1e-4)
    k = torch.arange(-60, 61, dtype=torch.float32)
    gc = GaussianConditional()
    p = gc.likelihood(k.view(1, 1, 1, -1), torch.full((1, 1, 1, 121), 3.0))
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-5)
    # N(0, 3^2) convolved with a unit box at 0: Phi(0.5/3) - Phi(-0.5/3)
    from scipy.stats import norm

    assert float(p[0, 0, 0, 60]) == pytest.approx(norm.cdf(0.5 / 3) - norm.cdf(-0.5 / 3), rel=1e-4)
    with pytest.raises(ValueError, match="unknown learned model kind"):
        build_model("vae", 16, 16)


@pytest.mark.parametrize("kind", ["factorized", "hyperprior"])
def test_bitstream_round_trip_and_rate(tiny_models, img, kind):
    path = tiny_models[kind]
    for quality in (40, 90):
        res = learned.compress(img, path, quality)
        dec = learned.decompress(res["data"])
        np.testing.assert_array_equal(dec, res["decoded"])
        assert dec.shape == img.shape
    lo, hi = learned.compress(img, path, 20), learned.compress(img, path, 95)
    assert len(lo["data"]) < len(hi["data"])  # a coarser latent step costs fewer bits
    ro = learned.latent_readouts(img, path, 95)
    real_bits = 8 * (len(hi["data"]) - 17 - len(hi["data"].split(b"}", 1)[0]))  # payload only
    assert ro["bits_map"].ndim == 2 and ro["bits_map"].sum() > 0
    if kind == "factorized":  # rate = the model's -log2 p within 5 % (+ one range-coder word)
        assert real_bits == pytest.approx(ro["bits_map"].sum(), rel=0.05, abs=64)


def test_corrupt_truncated_and_unknown_model(tiny_models, img):
    data = learned.compress(img, tiny_models["hyperprior"], 75)["data"]
    for bad in (data[:-4], data[:10], data + b"\0\0\0\0", b"JUNK" + data[4:]):
        with pytest.raises(learned.LearnedCodecError):
            learned.decompress(bad)
    flipped = bytearray(data)
    flipped[-3] ^= 0x10
    with pytest.raises(learned.LearnedCodecError, match="CRC"):
        learned.decompress(bytes(flipped))
    with pytest.raises(learned.LearnedCodecError, match="no learned model"):
        learned.compress(img, "no-such-model", 50)
    with pytest.raises(ValueError, match="multiple of 64"):
        run_job(learned.train_job([img], kind="hyperprior", N=16, M=16, steps=1, patch=48))


def test_cli_train_encode_decode(capsys, tmp_path):
    from PIL import Image

    from engines.codec.images import sample_image
    from studio.cli import main

    src = tmp_path / "a.png"
    Image.fromarray(sample_image("coffee")[:80, :100]).save(src)
    model = tmp_path / "m.pt"
    assert main(["codec", "train", str(src), "--kind", "factorized", "--N", "16", "--M", "16", "--steps", "2", "--patch", "64", "--batch", "1", "--out", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["steps"] == 2 and model.exists()
    out = tmp_path / "a.sslc"
    assert main(["codec", "encode", str(src), "--codec", f"learned:{model}", "--quality", "60", "--out", str(out), "--json"]) == 0
    enc = json.loads(capsys.readouterr().out)
    assert enc["bpp"] == pytest.approx(8 * out.stat().st_size / (80 * 100))
    png = tmp_path / "d.png"
    assert main(["codec", "decode", str(out), "--out", str(png), "--json"]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(np.asarray(Image.open(png)), learned.decompress(out.read_bytes()))
    assert main(["codec", "encode", str(src), "--codec", "learned:nope", "--out", str(tmp_path / "x.sslc")]) == 2
    assert "no learned model" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a codec
        main(["codec", "encode", str(src), "--codec", "jpeg:x", "--out", str(tmp_path / "x.jpg")])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["hp-default", "dct-default"])
def test_panel_encode_runs_the_analysis_once_and_codes_the_same_bytes(img, name, monkeypatch):
    """The Codec panel's learned encode: one analysis pass serves the bitstream and the readouts,
    which equal what compress() and latent_readouts() give on their own."""
    from panels.codec.learned_tab import learned_encode_job

    model, _ = learned.load_model(name)
    alone = learned.compress(img, name, 60)
    readouts = learned.latent_readouts(img, name, 60)
    calls = []
    if model.kind == "dct":
        real = model.analysis
        monkeypatch.setattr(model, "analysis", lambda x: (calls.append(x.shape), real(x))[1])
        hook = None
    else:
        hook = model.g_a.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    try:
        out = run_job(learned_encode_job(img, name, 60))
    finally:
        if hook is not None:
            hook.remove()
    assert len(calls) == 1
    assert out["data"] == alone["data"] and out["exact"]
    np.testing.assert_array_equal(out["bits_map"], readouts["bits_map"])
    assert out["y"] == readouts["y"] and out["histograms"] == readouts["histograms"]
    assert out["bpp_estimate"] == readouts["bpp_estimate"]


def test_loaded_models_are_cached_up_to_a_bound(tmp_path):
    """load_model keeps the last MODEL_CACHE_SIZE files loaded (the same object again), no more."""
    torch.manual_seed(0)
    paths = [str(learned.save_model(build_model("factorized", 8, 8), tmp_path / f"m{i}.pt", {}))
             for i in range(learned.MODEL_CACHE_SIZE + 1)]
    first = learned.load_model(paths[0])[0]
    assert learned.load_model(paths[0])[0] is first
    loaded = [learned.load_model(p)[0] for p in paths[1:]]
    assert all(learned.load_model(p)[0] is m for p, m in zip(paths[2:], loaded[1:], strict=True))
    again = learned.load_model(paths[0])[0]  # pushed out by the newer files: read again
    assert again is not first
    for name, value in again.state_dict().items():
        torch.testing.assert_close(value, first.state_dict()[name])
