"""FSQ and VQ token quantizers and the VQ patch codec (codec.md §5)."""

import numpy as np
import pytest
import torch

from engines.codec.images import sample_image
from engines.codec.tokens import (
    fsq_codes_to_indices,
    fsq_indices_to_codes,
    fsq_quantize,
    kmeans,
    vq_decode_image,
    vq_encode_image,
    vq_quantize,
)


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [7, 5, 5, 5, 5], [8, 6, 5]])
def test_fsq_codes_indices_bijection(levels):
    torch.manual_seed(0)
    z = torch.randn(5000, len(levels)) * 3
    codes, idx = fsq_quantize(z, levels)
    size = int(np.prod(levels))
    assert codes.abs().max() <= 1.0
    assert idx.min() >= 0 and idx.max() < size
    all_idx = torch.arange(size)
    back = fsq_codes_to_indices(fsq_indices_to_codes(all_idx, levels), levels)
    assert torch.equal(back, all_idx)
    # the indices are spread over the whole codebook (not stuck in a corner)
    if levels == [8, 5, 5, 5]:
        assert len(torch.unique(idx)) > 0.5 * size
    # each channel takes exactly L_i distinct values
    for i, L in enumerate(levels):
        assert len(torch.unique(codes[:, i])) == L


def test_fsq_straight_through_gradient():
    z = torch.randn(10, 3, requires_grad=True)
    codes, _ = fsq_quantize(z, [8, 6, 5])
    codes.sum().backward()
    assert z.grad is not None and torch.all(z.grad > 0)  # tanh' > 0 passes through round_ste


def test_vq_nearest_and_ste():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    e = torch.tensor([[0.2, -0.1], [0.9, 1.3], [4.0, 6.0]], requires_grad=True)
    out, idx, loss = vq_quantize(e, codebook)
    assert idx.tolist() == [0, 1, 2]
    assert torch.allclose(out, codebook[idx])
    out.sum().backward()
    assert torch.allclose(e.grad, torch.ones_like(e))
    assert loss.item() > 0


def test_kmeans_distortion_decreases():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(200, 2) + torch.tensor([5.0, 0]), torch.randn(200, 2) - torch.tensor([5.0, 0])])
    C, hist = kmeans(x, 2, iters=5)
    assert all(a >= b - 1e-6 for a, b in zip(hist, hist[1:]))
    assert sorted(C[:, 0].round().tolist()) == [-5.0, 5.0]


def test_vq_codec_in_registry():
    from engines.codec.realcodecs import run_codec, vq_codebook_size

    img = sample_image("astronaut")[::8, ::8].copy()
    lo, hi = run_codec(img, "vq", 10), run_codec(img, "vq", 90)
    assert vq_codebook_size(10) < vq_codebook_size(90)
    assert lo.bpp < hi.bpp


def test_vq_patch_codec_roundtrip_and_rate():
    img = sample_image("astronaut")[::4, ::4].copy()  # 128x128
    data, rec = vq_encode_image(img, k=64, patch=4, iters=4)
    np.testing.assert_array_equal(vq_decode_image(data), rec)
    assert rec.shape == img.shape
    mse = np.mean((rec.astype(float) - img) ** 2)
    assert 10 * np.log10(255**2 / mse) > 20
    # indices cost at most log2(64) = 6 bits per 16-pixel patch, plus the codebook
    assert len(data) < 128 * 128 / 16 * 6 / 8 + 64 * 48 + 500
    with pytest.raises(ValueError):
        vq_decode_image(b"nope")
