"""Token-quantizer lab: quantizer formulas (forward values and gradients), code statistics,
real range-coded token bits, and a short training job for every quantizer."""

import math

import numpy as np
import pytest
import torch

from engines.codec.token_lab import (QUANTIZERS, Tokenizer, bsq_quantize, code_statistics, ibq_entropy_loss, ibq_quantize, restart_dead_codes,
                                    rotation_trick, tokens_bits, train_tokenizer_job)
from engines.jobs import run_job


def test_rotation_trick_value_and_gradient():
    torch.manual_seed(0)
    e = torch.randn(5, 4, requires_grad=True)
    q = torch.randn(5, 4)
    out = rotation_trick(e, q)
    torch.testing.assert_close(out, q, atol=1e-5, rtol=1e-5)  # forward value is the code
    g = torch.randn(5, 4)
    out.backward(g)
    # the gradient is rotated and scaled: (|q|/|e|) R^T g, R maps e_hat to q_hat with R orthogonal
    en, qn = e.detach().norm(dim=-1, keepdim=True), q.norm(dim=-1, keepdim=True)
    assert torch.allclose(e.grad.norm(dim=-1, keepdim=True), (qn / en) * g.norm(dim=-1, keepdim=True), rtol=1e-4)
    e_hat, q_hat = e.detach() / en, q / qn
    for i in range(5):  # R e_hat = q_hat, so R^T q_hat = e_hat: a gradient along q_hat maps to one along e_hat
        w = torch.nn.functional.normalize(e_hat[i] + q_hat[i], dim=0)
        R = torch.eye(4) - 2 * torch.outer(w, w) + 2 * torch.outer(q_hat[i], e_hat[i])
        torch.testing.assert_close(R @ e_hat[i], q_hat[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(R.T @ R, torch.eye(4), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(e.grad[i], (qn[i] / en[i]) * (R.T @ g[i]), atol=1e-4, rtol=1e-4)


def test_bsq_and_ibq():
    z = torch.tensor([[0.5, -2.0, 1.0], [-1.0, -1.0, 3.0]], requires_grad=True)
    q, idx = bsq_quantize(z)
    torch.testing.assert_close(q, torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]]) / math.sqrt(3))
    assert idx.tolist() == [1 + 4, 4]
    assert torch.allclose(q.norm(dim=-1), torch.ones(2))
    cb = torch.randn(6, 3, requires_grad=True)
    out, i = ibq_quantize(z, cb)
    torch.testing.assert_close(out, cb[(z @ cb.T).argmax(-1)].detach())
    out.sum().backward()
    assert (cb.grad.abs().sum(-1) > 0).all()  # every code receives a gradient


@pytest.mark.parametrize("distance", [False, True])
def test_ibq_gradient_matches_the_formula(distance):
    """Value = the hard code; dL/dz = sum_j p_j (s_j - s_bar) dl_j/dz with s_k = g.c_k, and
    dL/dc_k = onehot_k g + p_k (s_k - s_bar) dl_k/dc_k: every code gets a gradient (computed by hand)."""
    torch.manual_seed(1)
    z0, c0, g = torch.randn(1, 3), torch.randn(5, 3), torch.randn(1, 3)
    z, cb = z0.clone().requires_grad_(), c0.clone().requires_grad_()
    out, idx = ibq_quantize(z, cb, distance=distance)
    logits = 2 * z0 @ c0.T - (c0**2).sum(-1) if distance else z0 @ c0.T
    k = int(logits.argmax())
    assert int(idx) == k and (k == int(torch.cdist(z0, c0).argmin()) or not distance)
    torch.testing.assert_close(out.detach(), c0[k : k + 1])
    out.backward(g)
    p = torch.softmax(logits, -1)[0]
    s = (c0 @ g[0])
    w = p * (s - (p * s).sum())
    dl_dz = 2 * c0 if distance else c0  # rows: d logit_j / d z
    torch.testing.assert_close(z.grad[0], (w[:, None] * dl_dz).sum(0), atol=1e-5, rtol=1e-5)
    dl_dc = 2 * (z0 - c0) if distance else z0.expand(5, 3)  # rows: d logit_k / d c_k
    expect = w[:, None] * dl_dc
    expect[k] += g[0]
    torch.testing.assert_close(cb.grad, expect, atol=1e-5, rtol=1e-5)
    assert (cb.grad.abs().sum(-1) > 0).all()


def test_ibq_entropy_loss_and_dead_code_restart():
    confident_spread = torch.eye(4) * 1.0  # each token sure of a different code: sample H = 0, batch H = log 4
    assert float(ibq_entropy_loss(confident_spread)) == pytest.approx(-math.log(4), abs=1e-4)
    collapsed = torch.tensor([[1.0, 0, 0, 0]] * 4)  # all on code 0: both entropies 0
    assert float(ibq_entropy_loss(collapsed)) == pytest.approx(0.0, abs=1e-4)
    cb = torch.zeros(4, 2)
    z = torch.tensor([[5.0, 5.0], [7.0, 7.0]])
    assert restart_dead_codes(cb, torch.tensor([3, 0, 1, 0]), z) == 2
    assert cb[0].tolist() == [0, 0] and cb[2].tolist() == [0, 0]
    for i in (1, 3):
        assert cb[i].tolist() in ([5.0, 5.0], [7.0, 7.0])


@pytest.mark.parametrize("quantizer", ["vq-rotation", "ibq"])
def test_training_keeps_codes_alive(quantizer):
    """Both collapsed to 1-2 codes of 1024 before the fixes; a short run now keeps a real spread."""
    from engines.codec.images import sample_image

    torch.set_num_threads(1)
    img = sample_image("chelsea")[:128, :128]
    _, out = run_job(train_tokenizer_job([img], quantizer, bits=8, steps=50, patch=32, batch=4, eval_every=50, restart_every=10))
    final = out["final"]
    assert final["utilisation"] > 0.05 and final["perplexity"] > 5, final  # collapsed: 1-2 codes, perplexity < 2


def test_code_statistics_and_real_bits():
    idx = np.array([0, 0, 1, 1, 2, 2, 3, 3] * 500)
    s = code_statistics(idx, 16)
    assert s["utilisation"] == 0.25 and s["dead_codes"] == 12
    assert s["entropy_bits"] == pytest.approx(2.0) and s["perplexity"] == pytest.approx(4.0)
    assert tokens_bits(idx) / idx.size == pytest.approx(2.0, abs=0.05)  # range coder close to H (+ header)


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_short_training_every_quantizer(quantizer):
    from engines.codec.images import sample_image

    torch.set_num_threads(1)
    img = sample_image("chelsea")[:96, :128]
    model, out = run_job(train_tokenizer_job([img], quantizer, bits=8, steps=6, patch=32, batch=2, eval_every=3))
    final = out["final"]
    assert final["tokens"] == 24 * 32 and 0 < final["utilisation"] <= 1
    assert 1 <= final["perplexity"] <= 256 and np.isfinite(final["psnr"]) and -1 <= final["ssim"] <= 1
    assert isinstance(model, Tokenizer) and len(out["history"]) == 2
    with pytest.raises(ValueError):
        Tokenizer("lfq")


def test_cli_tokens(capsys, tmp_path):
    import json

    from PIL import Image

    from engines.codec.images import sample_image
    from studio.cli import main

    src = tmp_path / "t.png"
    Image.fromarray(sample_image("rocket")[:96, :96]).save(src)
    assert main(["codec", "tokens", str(src), "--quantizer", "bsq", "--bits", "8", "--steps", "4", "--eval", str(src), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quantizer"] == "bsq" and out["tokens"] == 24 * 24 and 0 < out["utilisation"] <= 1
    assert main(["codec", "tokens", str(src), "--quantizer", "fsq", "--bits", "9", "--steps", "1"]) == 2
    assert "FSQ levels" in capsys.readouterr().err
    from engines.codec.token_file import read_tokens

    out_file = tmp_path / "t.sstk"
    assert main(["codec", "tokens", str(src), "--quantizer", "vq", "--bits", "8", "--steps", "2", "--eval", str(src), "--out", str(out_file), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    back = read_tokens(out_file.read_bytes())
    assert back["indices"].shape == (24, 24) and back["codes"] == 256 and res["file_bytes"] == out_file.stat().st_size
    assert main(["codec", "tokens", str(src), "--steps", "1", "--out", str(out_file)]) == 2  # exists, no --force
    assert "exists" in capsys.readouterr().err
    assert main(["codec", "tokens", str(src), "--steps", "1", "--out", str(tmp_path / "t.bin")]) == 2 and not (tmp_path / "t.bin").exists()


def test_token_file_round_trip_and_damage():
    from engines.codec.token_file import read_tokens, write_tokens

    idx = np.random.default_rng(0).integers(0, 1000, (24, 32))
    sha = "ab" * 32
    data = write_tokens(idx, 1000, 10, "fsq", levels=[8, 5, 5, 5], dim=4, downsample=4, image_shape=(96, 128), model_sha256=sha)
    back = read_tokens(data)
    np.testing.assert_array_equal(back["indices"], idx)
    assert (back["codes"], back["bits"], back["quantizer"], back["version"]) == (1000, 10, "fsq", 2)
    assert (back["levels"], back["dim"], back["image_shape"], back["model_sha256"]) == ([8, 5, 5, 5], 4, [96, 128], sha)
    head_len = int.from_bytes(data[5:9], "little")
    assert len(data) == tokens_bits(idx) / 8 + 4 + 1 + 12 + head_len  # the coded table + payload plus magic, version, lengths/CRC, header
    flipped = data[:-1] + bytes([data[-1] ^ 1])
    header_flip = data[:20] + bytes([data[20] ^ 4]) + data[21:]
    for bad, msg in ((data[:-3], "truncated"), (data[:12], "truncated"), (data + b"x", "longer"), (flipped, "CRC"),
                     (header_flip, "CRC"), (b"JUNK" + data[4:], "not a token file"), (data[:4] + bytes([9]) + data[5:], "version 9")):
        with pytest.raises(ValueError, match=msg):
            read_tokens(bad)
    for kwargs, field in (({"levels": [8, 5, 5]}, "levels"), ({"model_sha256": "xyz"}, "model_sha256"), ({"image_shape": (0, 5)}, "image_shape")):
        with pytest.raises(ValueError, match=field):
            write_tokens(idx, 1000, 10, "fsq", **kwargs)
    with pytest.raises(ValueError):
        write_tokens(np.array([[0, 5]]), 4, 2, "vq")  # index outside the codebook


def test_token_file_header_is_validated_on_read():
    """A header that passes the CRC but holds implausible fields (forged) is refused before decoding."""
    import json
    import struct
    import zlib

    from engines.codec.token_file import read_tokens, write_tokens

    data = write_tokens(np.zeros((2, 3), dtype=int), 16, 4, "vq")
    head_len, payload_len, _ = struct.unpack("<III", data[5:17])
    header, payload = json.loads(data[17 : 17 + head_len]), data[17 + head_len :]
    for key, value in (("rows", 1 << 30), ("codes", 0), ("levels", [4, 4, 2]), ("quantizer", 7)):
        forged = json.dumps({**header, key: value}).encode()
        blob = data[:5] + struct.pack("<III", len(forged), payload_len, zlib.crc32(payload, zlib.crc32(forged))) + forged + payload
        with pytest.raises(ValueError, match="implausible"):
            read_tokens(blob)


# a version-1 file (the writer before self-describing headers): 6 x 5 VQ tokens, 16 codes, 4 bits
V1_FILE = "U1NUSwEGAAUAEAAAAAQCdnExAAAAWYrx7BAAAQABAAAAAQABAAEAAQABAAEAAAABAAEAAQABAAEAAVx9aAieI8QeliGjWPtz2RA="


def test_version_1_token_files_still_read_but_cannot_be_checked():
    import base64

    from engines.codec.token_file import decode_tokens, read_tokens

    info = read_tokens(base64.b64decode(V1_FILE))
    np.testing.assert_array_equal(info["indices"], (np.arange(30).reshape(6, 5) * 7) % 16)
    assert (info["version"], info["codes"], info["bits"], info["quantizer"], info["self_describing"]) == (1, 16, 4, "vq", False)
    with pytest.raises(ValueError, match="records no model"):
        decode_tokens(Tokenizer("vq", 4), info)


@pytest.mark.parametrize("quantizer,bits", [("fsq", 10), ("bsq", 8), ("vq", 8), ("ibq", 8)])
def test_token_file_decodes_to_the_tokenizer_reconstruction(quantizer, bits):
    """Indices -> file -> indices -> codes -> decoder gives the image the tokenizer reconstructed;
    another model (or quantizer) is refused by the recorded weights hash."""
    from engines.codec.images import sample_image
    from engines.codec.token_file import decode_tokens, read_tokens, write_model_tokens
    from engines.codec.token_lab import decode_indices, model_fingerprint, reconstruct

    torch.manual_seed(0)
    model = Tokenizer(quantizer, bits).eval()
    img = sample_image("chelsea")[:48, :60]
    rec, idx, _ = reconstruct(model, img)
    info = read_tokens(write_model_tokens(model, idx, rec.shape))
    assert info["model_sha256"] == model_fingerprint(model)["model"] and info["dim"] == model.dim
    assert info["codes"] == (1000 if quantizer == "fsq" else 2**bits)
    np.testing.assert_array_equal(decode_indices(model, info["indices"]), rec)
    np.testing.assert_array_equal(decode_tokens(model, info), rec)
    torch.manual_seed(1)
    other = Tokenizer(quantizer, bits).eval()
    with pytest.raises(ValueError, match="another model"):
        decode_tokens(other, info)
    with pytest.raises(ValueError, match="the model is"):
        decode_tokens(Tokenizer("bsq" if quantizer != "bsq" else "vq", bits), info)


@pytest.mark.parametrize("logits", ["cosine", "dot"])
def test_ibq_tokens_are_the_argmax_of_the_code_logits(logits):
    """IBQ proper: the token is argmax z·Cᵀ over all codes (of the l2-normalised vectors by default,
    raw with "dot"), not the nearest code, and one backward pass through the model's quantizer
    (value, SEED-Voken loss, entropy term) reaches every codebook row."""
    torch.manual_seed(2)
    model = Tokenizer("ibq", 6, ibq_logits=logits)
    z = torch.randn(40, model.dim) * torch.linspace(0.5, 3.0, 40)[:, None]
    with torch.no_grad():
        model.codebook.mul_(torch.linspace(0.2, 2.0, model.codes)[:, None])  # unequal norms: dot != nearest
    q, idx, loss = model.quantize(z)
    book = model.codebook.detach()
    if logits == "cosine":
        zn, book = torch.nn.functional.normalize(z, dim=-1), torch.nn.functional.normalize(book, dim=-1)
        expect = (zn @ book.T).argmax(-1)
    else:
        expect = (z @ book.T).argmax(-1)
    assert torch.equal(idx, expect) and not torch.equal(idx, torch.cdist(z, model.codebook.detach()).argmin(-1))
    torch.testing.assert_close(q.detach(), book[expect])
    (q.square().sum() + loss).backward()
    assert (model.codebook.grad.abs().sum(-1) > 0).all()
    near = Tokenizer("ibq", 6, ibq_logits="distance")  # the comparison option: nearest-code logits
    with torch.no_grad():
        near.codebook.copy_(model.codebook)
    assert torch.equal(near.quantize(z)[1], torch.cdist(z, model.codebook.detach()).argmin(-1))
    with pytest.raises(ValueError):
        Tokenizer("ibq", 6, ibq_logits="softmax")


def test_token_file_opens_decoded_with_the_tokenizer_that_made_it(tmp_path):
    import os

    from engines.codec.images import sample_image
    from engines.codec.token_file import TokenizerMissing, open_token_file, write_model_tokens, write_tokens
    from engines.codec.token_lab import Tokenizer, decode_indices, reconstruct
    from engines.limits import set_max_decoded_bytes

    torch.manual_seed(0)
    made_it, other = Tokenizer("fsq", 8, width=8), Tokenizer("fsq", 8, width=8)  # same design, other weights
    image = sample_image("rocket")[:60, :44]
    rec, idx, _ = reconstruct(made_it, image)
    path = tmp_path / "rocket.sstk"
    path.write_bytes(write_model_tokens(made_it, idx, rec.shape))
    opened = open_token_file(path, [other, made_it])
    assert opened["tokenizer"] is made_it
    np.testing.assert_array_equal(opened["info"]["indices"], idx)
    np.testing.assert_array_equal(opened["image"], rec)  # the pixels the tokenizer made when it coded the image
    assert idx.shape == (15, 11) and opened["image"].shape == (60, 44, 3)
    path.write_bytes(write_model_tokens(made_it, idx, (58, 43)))  # the image size the file records is restored
    np.testing.assert_array_equal(open_token_file(path, [made_it])["image"], decode_indices(made_it, idx)[:58, :43])
    with pytest.raises(TokenizerMissing, match=r"^rocket.sstk needs the tokenizer that made it \(fsq, 240 codes, "
                                               r"weights sha256 [0-9a-f]{12}…\), which is not available$"):
        open_token_file(path, [other])
    nohash = tmp_path / "nohash.sstk"
    nohash.write_bytes(write_tokens(idx, made_it.codes, 8, "fsq", levels=made_it.levels))
    with pytest.raises(TokenizerMissing, match="nohash.sstk records no tokenizer"):
        open_token_file(nohash, [made_it])
    try:  # the decoder's memory is bounded before it runs
        set_max_decoded_bytes(idx.size * 100)
        with pytest.raises(ValueError, match=r"rocket.sstk \(15×11 tokens\) would decode to"):
            open_token_file(path, [made_it])
    finally:
        set_max_decoded_bytes(None)
    os.mkfifo(tmp_path / "pipe.sstk")  # never read (it would block)
    for name, message in (("pipe.sstk", "not a regular file"), ("gone.sstk", "file not found")):
        with pytest.raises(ValueError, match=f"{name}: {message}"):
            open_token_file(tmp_path / name, [made_it])
    (tmp_path / "cut.sstk").write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ValueError, match="cut.sstk: token file truncated"):
        open_token_file(tmp_path / "cut.sstk", [made_it])


def test_training_curves_redraw_coalesced_with_every_point(qtbot):
    """Live evaluations arriving faster than REDRAW_INTERVAL_MS are drawn together: no repaint of the
    plots per event, and the drawn curves hold every point once the interval has passed."""
    from engines.jobs import Preview
    from panels import live_plot
    from panels.codec import tokens_tab

    tab = tokens_tab.TokensTab(lambda *a, **k: None, lambda: None, lambda *a, **k: None)
    qtbot.addWidget(tab)
    draws = []
    original = tab._plot_history
    tab._plot_throttle._fn = lambda: (draws.append(1), original())
    keys = [key for key, _title, _unit in tokens_tab.SERIES]
    for step in range(1, 21):
        tab._on_event(Preview(image=None, data={"step": step, **{key: 0.5 for key in keys}}))
    assert draws == []  # nothing drawn inside the events
    qtbot.waitUntil(lambda: len(draws) == 1, timeout=5000)
    qtbot.wait(live_plot.REDRAW_INTERVAL_MS + 50)
    assert len(draws) == 1
    x, _y = tab.curves["psnr"].getData()
    assert list(x) == list(range(1, 21))
