"""The learned codec: training (a job), model files, real bitstreams through ``constriction``.

* :func:`train_job` trains a :mod:`~engines.codec.learned_model` model on random crops of the
  user's images with ``L = lambda * 255^2 * MSE + bpp`` (Adam; the entropy bottleneck's
  quantiles with their own optimizer on the auxiliary loss) and returns it.
* :func:`save_model` / :func:`load_model`: ``{"config", "state"}`` in a torch file (loaded with
  ``weights_only=True``); :func:`available_models` lists the shipped ones in ``assets/models/codec``.
* :func:`compress` / :func:`decompress`: the ``.sslc`` container
  ``"SSLC" | u8 version | u32 header_len | u32 payload_len | u32 crc32 | JSON header | payload``;
  the payload is one range-coder stream (z, then y). ``step`` (the quantisation step of the
  latents, 1 = as trained) gives a whole RD curve from one model: ``quality_step(q)``.
* :func:`latent_readouts`: bits per latent position, per-channel histograms, and the marginal
  vs joint statistics of the latents (Gaussianization view).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import struct
import time
import zlib
from pathlib import Path

import numpy as np

from engines.jobs import Log, Preview, Progress, wait_in_thread

__all__ = [
    "LearnedCodecError",
    "available_models",
    "compress",
    "decompress",
    "coding_step",
    "default_lambda",
    "default_training_images",
    "latent_readouts",
    "load_model",
    "model_path",
    "quality_step",
    "save_model",
    "train_job",
]

MAGIC = b"SSLC"
VERSION = 1
_PREFIX = "<BIII"
MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / "codec"
_Y_RANGE = 1023  # coded latents are clamped to +-_Y_RANGE steps


class LearnedCodecError(ValueError):
    """A missing or unusable model, or a corrupt ``.sslc`` bitstream."""


def quality_step(quality: float) -> float:
    """Latent quantisation step for quality 1..100: ``2^((75 - q)/25)`` (q 75 -> 1, 100 -> 0.5, 25 -> 4)."""
    return float(2.0 ** ((75.0 - float(quality)) / 25.0))


def default_lambda(kind: str) -> float:
    """The rate-distortion weight a kind trains with by default: 0.013 (Ballé kinds; CompressAI
    quality 4), 0.1 for ``dct`` (its weight at step multiplier 1, scaled by ``1/m^2``)."""
    return 0.1 if kind == "dct" else 0.013


# -- model files ------------------------------------------------------------------------------
def available_models() -> list[str]:
    """Names of the shipped models (``assets/models/codec/NAME.pt``)."""
    return sorted(p.stem for p in MODEL_DIR.glob("*.pt")) if MODEL_DIR.is_dir() else []


def model_path(name_or_path: str) -> Path:
    """A shipped model's file, or the path itself if it is a file."""
    p = Path(name_or_path)
    shipped = MODEL_DIR / f"{name_or_path}.pt"
    try:
        if p.suffix == ".pt" and p.is_file():
            return p
        if shipped.is_file():
            return shipped
    except OSError:  # e.g. a name too long for the file system
        pass
    names = ", ".join(available_models()) or "none shipped"
    raise LearnedCodecError(f"no learned model {name_or_path!r} (shipped: {names}; or give a .pt file from 'codec train')")


def save_model(model, path, config: dict) -> Path:
    """Write ``model`` with its ``config`` (kind, N, M, lambda, training facts) to ``path``."""
    import torch

    path = Path(path)
    cfg = {"kind": model.kind, "N": model.N, "M": model.M, **config}
    torch.save({"config": cfg, "state": model.state_dict()}, path)
    return path


MODEL_CACHE_SIZE = 4  # models kept loaded (the most recently used); a rewritten file is loaded again


def load_model(name_or_path: str):
    """``(model in eval mode, config)`` from a shipped name or a ``.pt`` file (the last
    ``MODEL_CACHE_SIZE`` files used stay loaded; a file rewritten since is read again)."""
    path = model_path(name_or_path)
    return _load_checked(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=MODEL_CACHE_SIZE)
def _load_checked(path_text: str, mtime_ns: int):
    """:func:`load_model` of the file at ``path_text`` as of ``mtime_ns`` (the cache key)."""
    import torch

    from engines.codec.learned_model import build_model

    path = Path(path_text)
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise LearnedCodecError(f"{path.name} is too large for a learned-codec model (at most {MAX_MODEL_BYTES >> 20} MiB)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises many types (pickle, zip, EOF) for damaged or foreign files
        raise LearnedCodecError(f"{path.name} is not a readable learned-codec model file (damaged, or it holds "
                                f"more than tensors and numbers)") from None
    cfg, state = _checked_blob(blob, path.name)
    try:
        model = build_model(cfg["kind"], cfg["N"], cfg["M"])
    except (TypeError, ValueError, OverflowError) as exc:
        raise LearnedCodecError(f"{path.name} is not a usable learned-codec model: {str(exc).splitlines()[0]}") from None
    _check_state(model, state, path.name)
    model.load_state_dict(state)
    model.eval()
    cfg["fingerprint"] = _fingerprint(model)
    return model, cfg


MAX_MODEL_BYTES = 512 << 20


def _checked_blob(blob, name: str) -> tuple[dict, dict]:
    """``(config, state)`` of a loaded model file, or LearnedCodecError saying what is wrong."""
    if not isinstance(blob, dict) or not isinstance(blob.get("config"), dict) or not isinstance(blob.get("state"), dict):
        raise LearnedCodecError(f"{name} is not a learned-codec model (no 'config' and 'state' dictionaries)")
    cfg = dict(blob["config"])
    missing = [key for key in ("kind", "N", "M") if key not in cfg]
    if missing:
        raise LearnedCodecError(f"{name}: its config has no {', '.join(missing)}")
    if not isinstance(cfg["kind"], str) or not all(isinstance(cfg[k], int) and not isinstance(cfg[k], bool)
                                                   for k in ("N", "M")):
        raise LearnedCodecError(f"{name}: its config needs a kind name and whole numbers N and M")
    return cfg, blob["state"]


def _check_state(model, state: dict, name: str) -> None:
    """Every tensor of ``model`` present in ``state`` with its shape, nothing else (no silent random weights)."""
    import torch

    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and (not isinstance(state[k], torch.Tensor)
                                                    or tuple(state[k].shape) != tuple(expected[k].shape))]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} tensors missing" if missing else "", f"{len(unexpected)} unexpected" if unexpected else "",
                 f"{len(wrong)} of the wrong shape (e.g. {wrong[0]})" if wrong else ""]
        raise LearnedCodecError(f"{name} does not fit a {model.kind} N={model.N} M={model.M} model: "
                                f"{', '.join(p for p in parts if p)}")
    bad = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise LearnedCodecError(f"{name}: tensor {bad[0]} holds NaN or infinite values")


def _fingerprint(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


# -- training ---------------------------------------------------------------------------------
#: bundled photos (scikit-image, no download) the shipped model trains on; astronaut and coffee
#: are held out for evaluation (benchmarks/codec_learned.py)
TRAINING_SAMPLES = ("chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle")
HELD_OUT_SAMPLES = ("astronaut", "coffee")


def default_training_images() -> list[np.ndarray]:
    """The bundled training photos as ``(H, W, 3)`` uint8 (see :data:`TRAINING_SAMPLES`)."""
    import skimage.data

    out = []
    for name in TRAINING_SAMPLES:
        img = getattr(skimage.data, name)()
        img = img[0] if isinstance(img, tuple) else img
        out.append(np.ascontiguousarray(np.asarray(img)[..., :3]).astype(np.uint8))
    return out


def _crops(images: list[np.ndarray], patch: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((batch, 3, patch, patch), dtype=np.float32)
    for i in range(batch):
        img = images[int(rng.integers(len(images)))]
        y = int(rng.integers(0, img.shape[0] - patch + 1))
        x = int(rng.integers(0, img.shape[1] - patch + 1))
        crop = img[y : y + patch, x : x + patch]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = crop.transpose(2, 0, 1) / 255.0
    return out


#: a rough bound on the training memory per crop pixel (activations and their gradients, 64 floats)
TRAIN_BYTES_PER_PIXEL = 256


def train_job(images, kind: str = "hyperprior", N: int = 48, M: int = 64, lam: float = 0.013, steps: int = 1000,
              patch: int = 128, batch: int = 8, lr: float = 5e-4, seed: int = 0, threads: int | None = None,
              init: str | None = None, decay_last: float = 0.0, snapshot_every: int = 0):
    """Job: train a learned codec on ``images`` (``(H, W, 3)`` uint8, each at least ``patch`` px);
    yields Progress every step and a Log line every 25 steps (loss, bpp, PSNR); returns
    ``(model, config)``. ``init`` continues from a saved model (its kind, N and M win).
    The last ``decay_last`` fraction of the steps runs at ``lr / 5``; ``snapshot_every > 0``
    yields ``Preview(data={"step", "model"})`` (the live model) that often.
    Cancel by closing the generator.

    Kind ``dct`` (:mod:`engines.codec.learned_dct`) draws one step multiplier ``m`` per crop and
    weighs its distortion by ``lam / m^2`` so one model learns the whole RD curve."""
    import torch

    from engines.codec.learned_model import build_model

    images = [np.ascontiguousarray(im[..., :3]) for im in images if min(im.shape[:2]) >= patch]
    if not images:
        raise ValueError(f"no training image is at least {patch}x{patch} pixels")
    if steps < 1 or batch < 1 or not (0 < lam < 10) or not (0 <= decay_last < 1):
        raise ValueError("steps and batch must be >= 1, lambda in (0, 10) and the decay fraction in [0, 1)")
    if not (0 < lr < 1):  # NaN fails too
        raise ValueError(f"the learning rate must be a number between 0 and 1 (got {lr})")
    from engines.limits import format_bytes, max_decoded_bytes

    need = batch * patch * patch * TRAIN_BYTES_PER_PIXEL
    if need > max_decoded_bytes():  # refused here, not an out-of-memory failure a while into the run
        raise ValueError(f"a batch of {batch} crops of {patch}x{patch} pixels needs about {format_bytes(need)} "
                         f"for training, more than the limit of {format_bytes(max_decoded_bytes())}; "
                         "use a smaller --batch or --patch")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if init:
        import copy

        model = copy.deepcopy(load_model(init)[0])
        kind, N, M = model.kind, model.N, model.M
    else:
        model = build_model(kind, N, M)
    if patch < model.multiple or patch % model.multiple:
        raise ValueError(f"the training crop must be a multiple of {model.multiple} px for a {kind} model (got {patch})")
    main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    opt = torch.optim.Adam(_param_groups(model, lr), lr=lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    start = time.perf_counter()
    history = []
    model.train()
    for step in range(1, steps + 1):
        if decay_last > 0 and step == int(steps * (1 - decay_last)) + 1:
            for group in opt.param_groups:
                group["lr"] /= 5.0
        x = torch.from_numpy(_crops(images, patch, batch, rng))
        # one step (forward, backward, both optimisers) cannot be interrupted and takes about a second on
        # the default crops: it runs on a helper thread so a cancel stops the job at once
        loss, bpp, mse, aux = yield from wait_in_thread(_train_step, model, x, lam, opt, aux_opt, main_params,
                                                        event=Progress(step - 1, steps, f"step {step}/{steps}"))
        psnr = float(10 * math.log10(1.0 / max(mse.item(), 1e-12)))
        history.append({"step": step, "loss": loss.item(), "bpp": bpp.item(), "psnr": psnr})
        yield Progress(step, steps, f"step {step}/{steps}: {bpp.item():.3f} bpp, {psnr:.2f} dB")
        if snapshot_every and step % snapshot_every == 0:
            yield Preview(data={"step": step, "model": model}, label=f"model after {step} steps")
        if step % 25 == 0 or step == steps:
            recent = history[-25:]
            yield Log(
                f"step {step}: loss {np.mean([h['loss'] for h in recent]):.3f}, {np.mean([h['bpp'] for h in recent]):.3f} bpp, "
                f"{np.mean([h['psnr'] for h in recent]):.2f} dB (noisy latents), aux {aux.item():.1f}"
            )
    model.eval()
    config = {"lambda": lam, "steps": steps, "init": str(init) if init else None, "patch": patch, "batch": batch, "lr": lr, "seed": seed,
              "decay_last": decay_last,
              "train_seconds": round(time.perf_counter() - start, 1), "history_tail": history[-5:]}
    return model, config


def _train_step(model, x, lam: float, opt, aux_opt, main_params) -> tuple:
    """One training step on the crops ``x``; returns ``(loss, bpp, mse, aux loss)`` tensors."""
    import torch

    if model.kind == "dct":
        loss, bpp, mse = _dct_loss(model, x, lam)
    else:
        out = model(x)
        npx = x.shape[0] * x.shape[2] * x.shape[3]
        bpp = sum(torch.log2(lk).sum() for lk in out["likelihoods"]) / (-npx)
        mse = torch.mean((out["x_hat"] - x) ** 2)
        loss = lam * 255.0**2 * mse + bpp
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(main_params, 1.0)
    opt.step()
    aux = model.aux_loss()
    aux_opt.zero_grad()
    aux.backward()
    aux_opt.step()
    return loss, bpp, mse, aux


def _param_groups(model, lr: float) -> list[dict]:
    """Adam groups: for the ``dct`` kind the colour and DCT bases move 100x slower than the rest
    (they stay close to their exact inverses) and the log quantisation steps 10x faster."""
    slow = ("color.", "dct.", "idct.", "icolor.")
    params = [(n, p) for n, p in model.named_parameters() if not n.endswith("quantiles")]
    if model.kind != "dct":
        return [{"params": [p for _, p in params]}]
    return [{"params": [p for n, p in params if not n.startswith(slow) and n != "log_step"]},
            {"params": [p for n, p in params if n.startswith(slow)], "lr": lr * 0.01},
            {"params": [model.log_step], "lr": lr * 10}]


def _dct_loss(model, x, lam: float):
    """``dct`` kind: one multiplier per crop, log-uniform in ``MULTIPLIER_RANGE``, and
    ``L = mean(lambda / m^2 * 255^2 * MSE + bpp)``; returns ``(loss, mean bpp, mean MSE)``."""
    import torch

    from engines.codec.learned_dct import MULTIPLIER_RANGE

    lo, hi = MULTIPLIER_RANGE
    m = torch.exp(torch.empty(x.shape[0]).uniform_(math.log(lo), math.log(hi)))
    out = model(x, m)
    bpp = sum(torch.log2(lk).sum((1, 2, 3)) for lk in out["likelihoods"]) / (-x.shape[2] * x.shape[3])
    mse = torch.mean((out["x_hat"] - x) ** 2, (1, 2, 3))
    loss = torch.mean(lam / m**2 * 255.0**2 * mse + bpp)
    return loss, bpp.mean(), mse.mean()


# -- coding -----------------------------------------------------------------------------------
def coding_step(model, quality: float) -> float:
    """Latent quantisation step of ``quality`` for ``model``: :func:`quality_step`, or for the
    ``dct`` kind its global step multiplier (:func:`engines.codec.learned_dct.multiplier_for_quality`)."""
    if model.kind == "dct":
        from engines.codec.learned_dct import multiplier_for_quality

        return multiplier_for_quality(quality)
    return quality_step(quality)


def _to_tensor(image: np.ndarray, multiple: int):
    import torch

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] < 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
        raise LearnedCodecError(f"expected an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    padded = np.pad(img[..., :3], ((0, ph), (0, pw), (0, 0)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))[None].astype(np.float32) / 255.0)


def _to_image(x_hat, h: int, w: int) -> np.ndarray:
    arr = x_hat[0].clamp(0, 1).mul(255.0).round().to(dtype=__import__("torch").uint8).numpy()
    return np.ascontiguousarray(arr.transpose(1, 2, 0)[:h, :w])


def _factorized_tables(eb, step: float):
    """Per channel: offset ``kmin`` and the pmf over ``kmin..kmax`` of ``k = round((v - median)/step)``,
    the support being where the model gives a bin more than 1e-10 (the density itself, not the
    auxiliary quantiles, which a short training leaves unconverged)."""
    import torch

    with torch.no_grad():
        med = eb.medians()
        k = torch.arange(-_Y_RANGE, _Y_RANGE + 1)
        centre = med[:, None] + k[None, :].to(med.dtype) * step
        pmf = eb.interval_probability((centre - step / 2)[:, None, :], (centre + step / 2)[:, None, :])[:, 0, :]
        pmf = pmf.double().numpy()
    kmin, tables = [], []
    for c in range(pmf.shape[0]):
        idx = np.flatnonzero(pmf[c] > 1e-10)
        lo, hi = (int(idx[0]), int(idx[-1])) if idx.size else (_Y_RANGE, _Y_RANGE)
        p = np.maximum(pmf[c, lo : hi + 1], 1e-12)
        tables.append(p / p.sum())
        kmin.append(lo - _Y_RANGE)
    return np.asarray(kmin, dtype=np.int64), med.numpy(), tables


def _factorized_symbols(values: np.ndarray, step: float, kmin: np.ndarray, med: np.ndarray, tables: list) -> np.ndarray:
    """Symbols (index into each channel's table) of ``values`` ``(C, n)``, clamped to the support."""
    k = np.rint((values - med[:, None]) / step).astype(np.int64) - kmin[:, None]
    sizes = np.array([len(t) for t in tables])[:, None]
    return np.clip(k, 0, sizes - 1)


def _code_factorized(coder, eb, v, step: float, encode: bool):
    """Range-code (or decode into) latent ``v`` ``(1, C, h, w)`` channel by channel; returns ``v_hat``."""
    import constriction
    import torch

    kmin, med, tables = _factorized_tables(eb, step)
    c_count = len(tables)
    h, w = v.shape[2], v.shape[3]
    out = np.empty((c_count, h * w), dtype=np.float32)
    symbols = _factorized_symbols(v[0].reshape(c_count, -1).numpy(), step, kmin, med, tables) if encode else None
    for c in range(c_count):
        model = constriction.stream.model.Categorical(tables[c], perfect=False)
        if encode:
            sym = symbols[c]
            coder.encode(sym.astype(np.int32), model)
        else:
            sym = np.asarray(coder.decode(model, h * w), dtype=np.int64)
        out[c] = (sym + kmin[c]) * step + med[c]
    return torch.from_numpy(out.reshape(1, c_count, h, w))


def _gaussian_stds(model, z_hat, step: float) -> np.ndarray:
    import torch

    with torch.no_grad():
        scales = model.h_s(z_hat)[0].double().numpy()
    return _snap_scales(scales) / step


def _snap_scales(scales: np.ndarray) -> np.ndarray:
    """Each scale replaced by the smallest entry of the 64-level table not below it (both coder
    sides then agree even if the floats differ in the last bit)."""
    from engines.codec.learned_model import SCALE_MIN, scale_table

    table = scale_table().numpy()
    return table[np.minimum(np.searchsorted(table, np.maximum(scales, SCALE_MIN)), len(table) - 1)]


def _dct_entropy_params(model, z_hat, m: float) -> tuple[np.ndarray, np.ndarray]:
    """``dct`` kind: ``(mean, snapped std)`` of the coded latent ``y = u/m`` (``(192, h, w)`` float64)."""
    import torch

    with torch.no_grad():
        mu, sigma = model.hyper_synthesis(z_hat, m)
    return mu[0].double().numpy() / m, _snap_scales(sigma[0].double().numpy() / m)


def _dct_reconstruct(model, k: np.ndarray, mu_y: np.ndarray, m: float):
    """``dct`` kind: the decoded image tensor from the symbols ``k`` = round(y - mu) (both sides)."""
    import torch

    u_hat = torch.from_numpy(((k + mu_y) * m).astype(np.float32))[None]
    with torch.no_grad():
        return model.synthesis(u_hat, m)


def _analyse(model, image: np.ndarray):
    """The latent ``y`` of ``image`` (the analysis transform, run without gradients)."""
    import torch

    x = _to_tensor(image, model.multiple)
    with torch.no_grad():
        return model.analysis(x) if model.kind == "dct" else model.g_a(x)


def compress(image: np.ndarray, model_name: str = "dct-default", quality: float = 75.0,
             readouts: bool = False) -> dict:
    """Encode ``image`` with a learned model; returns ``{"data", "decoded", "step", "model"}``
    (``decoded`` is exactly what :func:`decompress` returns) and, with ``readouts``, the
    :func:`latent_readouts` of the same latent under ``"readouts"`` (one analysis pass for both)."""
    import constriction
    import torch

    model, cfg = load_model(model_name)
    step = coding_step(model, quality)
    h, w = np.asarray(image).shape[:2]
    y = _analyse(model, image)
    enc = constriction.stream.queue.RangeEncoder()
    with torch.no_grad():
        if model.kind == "dct":
            z_hat = _code_factorized(enc, model.entropy_z, model.hyper_analysis(y, step), 1.0, True)
            z_words = int(enc.num_words())
            mu_y, std = _dct_entropy_params(model, z_hat, step)
            k = np.clip(np.rint(y[0].double().numpy() / step - mu_y), -_Y_RANGE, _Y_RANGE).astype(np.int32)
            enc.encode(k.ravel(), constriction.stream.model.QuantizedGaussian(-_Y_RANGE, _Y_RANGE), np.zeros(k.size), std.ravel())
        elif model.kind == "hyperprior":
            z = model.h_a(torch.abs(y))
            z_hat = _code_factorized(enc, model.entropy_z, z, 1.0, True)
            z_words = int(enc.num_words())
            std = _gaussian_stds(model, z_hat, step)
            k = np.clip(np.rint(y[0].double().numpy() / step), -_Y_RANGE, _Y_RANGE).astype(np.int32)
            gauss = constriction.stream.model.QuantizedGaussian(-_Y_RANGE, _Y_RANGE)
            enc.encode(k.ravel(), gauss, np.zeros(k.size), std.ravel())
            y_hat = torch.from_numpy((k * step).astype(np.float32))[None]
        else:
            z_words = 0
            y_hat = _code_factorized(enc, model.entropy_y, y, step, True)
        decoded = _to_image(_dct_reconstruct(model, k, mu_y, step) if model.kind == "dct" else model.g_s(y_hat), h, w)
    payload = np.asarray(enc.get_compressed(), dtype="<u4").tobytes()
    header = json.dumps({"model": str(model_name), "kind": model.kind, "N": model.N, "M": model.M, "H": h, "W": w,
                         "quality": float(quality), "z_words": z_words, "fingerprint": cfg["fingerprint"]}).encode()
    crc = zlib.crc32(payload, zlib.crc32(header))
    data = MAGIC + struct.pack(_PREFIX, VERSION, len(header), len(payload), crc) + header + payload
    out = {"data": data, "decoded": decoded, "step": step, "model": str(model_name)}
    if readouts:
        out["readouts"] = _readouts(model, y, step, h * w)
    return out


def decompress(data: bytes, name: str = "the bitstream") -> np.ndarray:
    """Decode an ``.sslc`` bitstream (the model named in its header must be available)."""
    from engines.limits import check_decoded_size

    data = bytes(data)
    fixed = 4 + struct.calcsize(_PREFIX)
    if len(data) < fixed or data[:4] != MAGIC:
        raise LearnedCodecError(f"{name} is not a learned-codec bitstream")
    version, hlen, plen, crc = struct.unpack(_PREFIX, data[4:fixed])
    if version != VERSION:
        raise LearnedCodecError(f"{name}: unsupported version {version}")
    if fixed + hlen + plen != len(data) or plen % 4:
        raise LearnedCodecError(f"{name} is truncated or has trailing bytes ({len(data)} bytes, header says {fixed + hlen + plen})")
    header, payload = data[fixed : fixed + hlen], data[fixed + hlen :]
    if zlib.crc32(payload, zlib.crc32(header)) != crc:
        raise LearnedCodecError(f"{name} is damaged (CRC-32 mismatch)")
    try:
        meta = json.loads(header.decode())
        h, w, quality = int(meta["H"]), int(meta["W"]), float(meta["quality"])
        if not isinstance(meta["model"], str):
            raise TypeError("the model name is not text")
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise LearnedCodecError(f"{name}: corrupt header ({str(exc).splitlines()[0] if str(exc) else 'bad fields'})") from None
    if not (1 <= h <= 65535 and 1 <= w <= 65535 and 1 <= quality <= 100):
        raise LearnedCodecError(f"{name}: bad image size or quality in the header")
    check_decoded_size(h * w * 3 * 4 * 8, f"{name} ({w}×{h})", LearnedCodecError)
    model, cfg = load_model(meta["model"])
    if cfg["fingerprint"] != meta.get("fingerprint"):
        raise LearnedCodecError(f"{name} was written with another version of model {meta['model']!r}")
    try:
        return _decode_payload(model, payload, h, w, coding_step(model, quality))
    except (AssertionError, ValueError, RuntimeError, IndexError) as exc:  # only reachable with a forged checksum
        raise LearnedCodecError(f"{name} is corrupt (the coded data do not match the header)") from exc


def _decode_payload(model, payload: bytes, h: int, w: int, step: float) -> np.ndarray:
    """The image of a checked ``.sslc`` payload."""
    import constriction
    import torch

    mult = model.multiple
    hp, wp = h + (-h) % mult, w + (-w) % mult
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    with torch.no_grad():
        if model.kind == "dct":
            z_hat = _code_factorized(dec, model.entropy_z, torch.zeros(1, model.N, hp // 32, wp // 32), 1.0, False)
            mu_y, std = _dct_entropy_params(model, z_hat, step)
            gauss = constriction.stream.model.QuantizedGaussian(-_Y_RANGE, _Y_RANGE)
            k = np.asarray(dec.decode(gauss, np.zeros(std.size), std.ravel()), dtype=np.float64).reshape(std.shape)
            return _to_image(_dct_reconstruct(model, k, mu_y, step), h, w)
        if model.kind == "hyperprior":
            z_shape = torch.zeros(1, model.N, hp // 64, wp // 64)
            z_hat = _code_factorized(dec, model.entropy_z, z_shape, 1.0, False)
            std = _gaussian_stds(model, z_hat, step)
            gauss = constriction.stream.model.QuantizedGaussian(-_Y_RANGE, _Y_RANGE)
            k = np.asarray(dec.decode(gauss, np.zeros(std.size), std.ravel()), dtype=np.float32).reshape(std.shape)
            y_hat = torch.from_numpy(k * np.float32(step))[None]
        else:
            y_hat = _code_factorized(dec, model.entropy_y, torch.zeros(1, model.M, hp // 16, wp // 16), step, False)
        return _to_image(model.g_s(y_hat), h, w)


# -- readouts ---------------------------------------------------------------------------------
def latent_readouts(image: np.ndarray, model_name: str = "dct-default", quality: float = 75.0) -> dict:
    """What the model does with ``image``: ``bits_map`` ``(h, w)`` (−log2 p of y per latent
    position, summed over channels, at the coding step), ``bits_per_channel``, per-channel
    ``histograms`` of the quantised latents (edges and counts of the 8 costliest channels), and
    the Gaussianization view: mean |correlation| between latent channels (joint statistics)
    next to the mean excess kurtosis of each channel (marginal), for ``y`` and for ``y/sigma``.
    (:func:`compress` with ``readouts=True`` returns the same next to the bitstream.)"""
    model, _ = load_model(model_name)
    step = coding_step(model, quality)
    h, w = np.asarray(image).shape[:2]
    return _readouts(model, _analyse(model, image), step, h * w)


def _readouts(model, y, step: float, pixels: int) -> dict:
    """:func:`latent_readouts` of the latent ``y`` at coding step ``step`` (``pixels`` in the image)."""
    import torch

    with torch.no_grad():
        if model.kind == "dct":  # y is u = m * latent; symbols round(y/m - mu/m)
            med = model.entropy_z.medians()[None, :, None, None]
            z_hat = torch.round(model.hyper_analysis(y, step) - med) + med
            mu, sigma = model.hyper_synthesis(z_hat, step)
            k = torch.round((y - mu) / step)
            lik = model.gaussian.likelihood(k, sigma / step)
            normalised = ((y - mu) / sigma)[0]
        elif model.kind == "hyperprior":
            z_hat = torch.round(model.h_a(torch.abs(y)) - model.entropy_z.medians()[None, :, None, None]) + model.entropy_z.medians()[None, :, None, None]
            scales = model.h_s(z_hat) / step
            k = torch.round(y / step)
            lik = model.gaussian.likelihood(k, scales)
            normalised = (y / torch.clamp(model.h_s(z_hat), min=0.11))[0]
        else:  # exactly the coded symbols and tables
            kmin, med, tables = _factorized_tables(model.entropy_y, step)
            sym = _factorized_symbols(y[0].reshape(model.M, -1).numpy(), step, kmin, med, tables)
            probs = np.stack([tables[c][sym[c]] for c in range(model.M)]).reshape(1, model.M, *y.shape[2:])
            lik = torch.from_numpy(probs)
            k = torch.from_numpy((sym + kmin[:, None]).reshape(1, model.M, *y.shape[2:]).astype(np.float32))
            normalised = y[0]
    bits = (-torch.log2(lik))[0].numpy()
    kq = k[0].numpy()
    per_channel = bits.reshape(bits.shape[0], -1).sum(1)
    order = np.argsort(per_channel)[::-1][:8]
    hists = {}
    for c in order:
        vals = kq[c].ravel()
        edges = np.arange(vals.min() - 0.5, vals.max() + 1.5)
        counts, _ = np.histogram(vals, bins=edges)
        hists[int(c)] = {"edges": edges.tolist(), "counts": counts.tolist()}

    def stats(t: np.ndarray) -> dict:
        flat = t.reshape(t.shape[0], -1).astype(np.float64)
        flat = flat - flat.mean(1, keepdims=True)
        sd = flat.std(1)
        keep = sd > 1e-9
        flat = flat[keep] / sd[keep, None]
        corr = np.corrcoef(flat) if flat.shape[0] > 1 else np.eye(1)
        off = np.abs(corr[~np.eye(corr.shape[0], dtype=bool)])
        kurt = np.mean(flat**4, axis=1) - 3.0
        return {"mean_abs_channel_correlation": float(off.mean()) if off.size else 0.0, "mean_excess_kurtosis": float(kurt.mean())}

    return {
        "bits_map": bits.sum(0),
        "bits_per_channel": per_channel,
        "histograms": hists,
        "y": stats(y[0].numpy()),
        "y_over_sigma": stats(normalised.numpy()),
        "bpp_estimate": float(bits.sum() / pixels),
    }
