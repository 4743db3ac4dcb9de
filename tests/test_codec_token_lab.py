"""Token-quantizer lab: quantizer formulas (forward values and gradients), code statistics,
real range-coded token bits, and a short training job for every quantizer."""

import math

import numpy as np
import pytest
import torch

from engines.codec.token_lab import QUANTIZERS, Tokenizer, bsq_quantize, code_statistics, ibq_quantize, rotation_trick, tokens_bits, train_tokenizer_job
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
    assert 1 <= final["perplexity"] <= 256 and np.isfinite(final["psnr"])
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
