"""Paint-to-classify: per-voxel multiscale features + user strokes → class probability volumes.

After Engel, Sick & Ropinski (arXiv 2309.01408), with scikit-image's multiscale features in
place of DINO features (offline). Pipeline:

1. :func:`compute_features` (once per volume, a job; ~2 s at 128³): multiscale intensity /
   gradient / Laplacian features (the terms of scikit-image's ``multiscale_basic_features``),
   the raw intensity, the intensity encoded as soft bins so that cosine similarity
   distinguishes intensities, optionally Hessian eigenvalues. ``(z', y', x', F)`` float32,
   z-scored channels. Callers cache it: an update after a stroke only re-runs step 3.
2. Strokes: ``{class index: (n, 3) voxel indices (z, y, x)}`` at full resolution.
3. :func:`classify` with ``method="similarity"``: cosine similarity of every feature voxel to
   each annotated voxel, ``where(sim ≥ threshold, sim, 0) ** power``, averaged over a class's
   annotations (threshold 0.1, power 2.5 as in the paper); or ``method="forest"``: a random
   forest (scikit-learn) trained on the annotated voxels, ``predict_proba`` everywhere. Both
   are evaluated coarse-to-fine (every second voxel, then exactly where the label is
   uncertain) and the class scores lightly smoothed, ~1 s per update at 128³.
4. Probabilities are upsampled (trilinear) to the full grid; ``labels`` = 1 + argmax class
   where the best score > ``min_score``, else 0 (unclassified). :func:`semantic_rgba` turns them into an
   RGBA volume through per-class colour and opacity.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.jobs import Log, Progress, wait_in_thread

__all__ = [
    "METHODS",
    "ClassSpec",
    "ClassificationResult",
    "FeatureVolume",
    "Strokes",
    "classify",
    "classify_job",
    "compute_features",
    "feature_factor",
    "features_job",
    "hessian_eigenvalues",
    "load_strokes",
    "semantic_rgba",
    "semantic_rgba_job",
]

METHODS = ("similarity", "forest")


@dataclass
class FeatureVolume:
    """``features`` (z', y', x', F) float32 (z-scored, weighted channels; the random forest's input);
    ``factor`` the stride from the full grid ``full_shape`` (Z, Y, X); ``norms`` (z', y', x') the
    L2 norm of each feature vector (cosine similarity divides by it)."""

    features: np.ndarray
    factor: int
    full_shape: tuple
    norms: np.ndarray | None = None
    similarity_channels: int | None = None

    def __post_init__(self) -> None:
        if self.norms is None:
            f = self.features[..., :self.similarity_channels or self.features.shape[-1]]
            self.norms = np.sqrt(np.einsum("...f,...f->...", f, f)).astype(np.float32)

    @property
    def shape(self) -> tuple:
        """The feature grid (z', y', x')."""
        return tuple(self.features.shape[:3])

    def lookup(self, voxels: np.ndarray) -> np.ndarray:
        """Feature vectors ``(n, F)`` at full-resolution voxel indices ``(n, 3)`` (z, y, x) (nearest)."""
        idx = np.clip(np.rint(np.asarray(voxels, dtype=np.float64) / self.factor).astype(int), 0,
                      np.array(self.features.shape[:3]) - 1)
        return self.features[idx[:, 0], idx[:, 1], idx[:, 2]]


@dataclass
class ClassSpec:
    """A class: name, colour (r, g, b in [0, 1]), opacity, visibility."""

    name: str
    color: tuple = (1.0, 1.0, 1.0)
    opacity: float = 1.0
    visible: bool = True


def disc_voxels(centre, axis: int, radius: int, shape) -> np.ndarray:
    """The voxels (n, 3) int64 (z, y, x) of a disc of ``radius`` voxels around ``centre`` in the slice
    plane of ``axis`` (the paint brush), those inside a volume of ``shape``."""
    free = [a for a in range(3) if a != axis]
    du, dv = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disc = (du**2 + dv**2) <= radius * radius
    pts = np.repeat(np.asarray(centre, dtype=np.int64)[None], disc.sum(), axis=0)
    pts[:, free[0]] += du[disc]
    pts[:, free[1]] += dv[disc]
    return pts[np.all((pts >= 0) & (pts < np.array(shape)), axis=1)]


def unique_voxels(voxels, shape) -> np.ndarray:
    """The rows of ``voxels`` (n, 3) (z, y, x), inside a volume of ``shape``, each once, sorted as
    ``np.unique(voxels, axis=0)`` sorts them, through linear indices (a 1-D sort: ~10× faster)."""
    voxels = np.asarray(voxels, dtype=np.int64).reshape(-1, 3)
    linear = np.unique(np.ravel_multi_index(voxels.T, tuple(shape)))
    return np.stack(np.unravel_index(linear, tuple(shape)), 1).astype(np.int64)


@dataclass
class Strokes:
    """Classes and the voxels painted for each (``voxels[i]`` is an (n, 3) int array for class i)."""

    classes: list = field(default_factory=list)
    voxels: dict = field(default_factory=dict)

    def add(self, class_index: int, voxels) -> None:
        """Append painted voxels (n, 3) (z, y, x) to a class."""
        voxels = np.asarray(voxels, dtype=np.int64).reshape(-1, 3)
        old = self.voxels.get(class_index)
        self.voxels[class_index] = voxels if old is None else np.concatenate([old, voxels])

    def copy(self) -> Strokes:
        """An independent copy (classes shared, voxel arrays copied)."""
        return Strokes(list(self.classes), {i: v.copy() for i, v in self.voxels.items()})

    def annotated_classes(self) -> list[int]:
        """Indices of classes that have at least one painted voxel."""
        return [i for i in range(len(self.classes)) if i in self.voxels and len(self.voxels[i])]

    def to_dict(self) -> dict:
        """JSON-able: ``{"classes": [...], "strokes": [{"class": i, "voxels": [[z, y, x], ...]}]}``."""
        return {
            "classes": [{"name": c.name, "color": list(c.color), "opacity": c.opacity, "visible": c.visible} for c in self.classes],
            "strokes": [{"class": i, "voxels": v.tolist()} for i, v in sorted(self.voxels.items()) if len(v)],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Strokes:
        """Inverse of :meth:`to_dict`; ``class`` may be an index or a class name. ValueError
        (one line) for anything else than that layout."""
        if not isinstance(data, dict) or not isinstance(data.get("classes"), list) \
                or not isinstance(data.get("strokes"), list):
            raise ValueError("strokes JSON needs 'classes' and 'strokes' lists")
        classes = [_class_spec(item) for item in data["classes"]]
        names = [c.name for c in classes]
        strokes = cls(classes)
        for stroke in data["strokes"]:
            if not isinstance(stroke, dict):
                raise ValueError("each stroke must be an object with 'class' and 'voxels'")
            key = stroke.get("class")
            index = names.index(key) if isinstance(key, str) and key in names else key
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(classes):
                raise ValueError(f"stroke refers to unknown class {str(key)[:40]!r}")
            try:
                voxels = np.asarray(stroke.get("voxels", []), dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                raise ValueError("stroke voxels must be a list of [z, y, x] triples") from None
            if voxels.size == 0:
                continue
            if voxels.ndim != 2 or voxels.shape[1] != 3 or not np.all(np.abs(voxels) < 2**31):
                raise ValueError("stroke voxels must be a list of [z, y, x] triples")
            strokes.add(index, np.rint(voxels).astype(np.int64))
        return strokes


def _class_spec(item) -> ClassSpec:
    """One class of a strokes file: a name, or ``{"name", "color", "opacity", "visible"}``."""
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ValueError("each class must be a name or an object with a 'name'")
    color, opacity = item.get("color", (1.0, 1.0, 1.0)), item.get("opacity", 1.0)
    try:
        color = tuple(float(c) for c in color)
        opacity = float(opacity)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"class {item['name'][:40]!r}: color must be 3 numbers and opacity a number") from None
    if len(color) != 3 or not all(math.isfinite(c) for c in (*color, opacity)):
        raise ValueError(f"class {item['name'][:40]!r}: color must be 3 finite numbers and opacity a finite number")
    return ClassSpec(item["name"], color, opacity, bool(item.get("visible", True)))


MAX_STROKES_BYTES = 64 << 20


def load_strokes(path: str | os.PathLike) -> Strokes:
    """Read a strokes JSON file (see :meth:`Strokes.to_dict`); ValueError with one line naming
    the file when it is missing, not a regular file, too large or not a strokes file."""
    path = Path(path)
    try:
        if not path.exists():
            raise ValueError(f"strokes file not found: {path}")
        if not path.is_file():
            raise ValueError(f"{path.name} is not a regular file")
        if path.stat().st_size > MAX_STROKES_BYTES:
            raise ValueError(f"{path.name} is too large for a strokes file (at most {MAX_STROKES_BYTES >> 20} MiB)")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path.name}: {exc.strerror or 'read error'}") from None
    except UnicodeDecodeError:  # a binary file: the decoder's byte offsets mean nothing to the user
        raise ValueError(f"{path.name} is not a strokes file (JSON text expected)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise ValueError(f"{path.name} is not a strokes file (nested too deeply)") from None
    try:
        return Strokes.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None


@dataclass
class ClassificationResult:
    """``probabilities`` (C, Z, Y, X) float32 in [0, 1] (0 for classes without strokes);
    ``labels`` (Z, Y, X) uint8: 0 unclassified, i + 1 for class i; ``uncertainty`` (Z, Y, X)
    float32 in [0, 1]: 1 − (q₁ − q₂) of the scores normalised to sum 1 (1 where no class
    scores, or two classes tie) - where another stroke would help most."""

    probabilities: np.ndarray
    labels: np.ndarray
    method: str
    info: dict = field(default_factory=dict)
    uncertainty: np.ndarray | None = None


def feature_factor(shape: Sequence[int], target_voxels: int = 300_000) -> int:
    """Stride so the feature grid has about ``target_voxels`` voxels (1 for small volumes)."""
    return max(1, math.ceil((math.prod(shape) / target_voxels) ** (1.0 / 3.0) - 1e-9))


def hessian_eigenvalues(hxx, hyy, hzz, hxy, hxz, hyz) -> np.ndarray:
    """Eigenvalues of symmetric 3×3 matrices given by their six entries (arrays of one shape),
    closed form (trigonometric method, Smith 1961); returns ``shape + (3,)`` float32 sorted by
    magnitude, ``|λ1| ≤ |λ2| ≤ |λ3|`` (Frangi et al.'s order)."""
    a11, a22, a33 = (np.asarray(v, dtype=np.float64) for v in (hxx, hyy, hzz))
    a12, a13, a23 = (np.asarray(v, dtype=np.float64) for v in (hxy, hxz, hyz))
    q = (a11 + a22 + a33) / 3.0
    b11, b22, b33 = a11 - q, a22 - q, a33 - q
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    p = np.sqrt((b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * p1) / 6.0)
    safe = np.where(p > 1e-12, p, 1.0)
    det = (b11 * (b22 * b33 - a23 * a23) - a12 * (a12 * b33 - a23 * a13) + a13 * (a12 * a23 - b22 * a13))
    r = np.clip(det / (2.0 * safe ** 3), -1.0, 1.0)
    phi = np.arccos(r) / 3.0
    e1 = q + 2.0 * p * np.cos(phi)
    e3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    e2 = 3.0 * q - e1 - e3
    eig = np.stack([e1, e2, e3], axis=-1).astype(np.float32)
    order = np.argsort(np.abs(eig), axis=-1)
    return np.take_along_axis(eig, order, axis=-1)


def features_job(data: np.ndarray, *, factor: int | None = None, sigmas: Sequence[float] = (1.0, 2.0, 4.0),
                 hessian_sigmas: Sequence[float] = (), intensity_bins: int = 12,
                 target_voxels: int = 2_200_000, context_weight: float = 1.0,
                 structure_weight: float = 1.0, bin_sigma: float = 0.0, raw_weight: float = 1.0,
                 extractor: str | os.PathLike | None = None, extractor_weight: float = 1.0) -> Iterator:
    """Job generator computing a :class:`FeatureVolume` of a ``(Z, Y, X)`` volume.

    Features per voxel (at stride ``factor``; default: full resolution up to ~2.2 M voxels),
    intensities min-max normalised over the 0.1–99.9 % range first:

    - the intensity (smoothed with σ = ``bin_sigma``; 0: none) encoded as ``intensity_bins``
      Gaussian soft bins (so that cosine similarity compares intensities);
    - the unsmoothed intensity (weight ``raw_weight``): it places borders where the partial-volume
      value crosses the middle between two tissues, which decides the IoU of thin vessels;
    - for each σ in ``sigmas`` (voxels): smoothed intensity, gradient magnitude and
      scale-normalised Laplacian σ²ΔG_σ*v (the intensity / edge / blob terms of scikit-image's
      ``multiscale_basic_features``);
    - for each σ in ``hessian_sigmas``: the scale-normalised Hessian eigenvalues λ1, λ2, λ3
      (sorted by magnitude), a bright-tube measure ``max(0, −λ2)·(1 − |λ1|/|λ2|)`` (high inside
      vessels: two strongly negative eigenvalues, one small; cf. Frangi's vesselness) and a
      plate/edge measure ``|λ3| − |λ2|`` (high on the boundary of large structures, where a
      vessel-like intensity occurs on bone and organ surfaces).

    - optionally learned features: ``extractor`` names a local TorchScript file (a network the
      user trained or exported; nothing is downloaded) mapping a ``(1, 1, z', y', x')`` float32
      volume in [0, 1] to ``(1, C, …)`` feature maps, C ≤ 256, resized to the grid if needed;
      its channels join the similarity channels (weight ``extractor_weight``).

    Every channel except the intensity bins is z-scored over the volume and weighted
    (``context_weight`` for the multiscale terms, ``structure_weight`` for the Hessian terms).
    The Hessian terms are off by default (``hessian_sigmas=()``): on the phantom they did not
    improve the forest and, being noisy, hurt the cosine similarity, which therefore never uses
    them (``FeatureVolume.similarity_channels``). Vectors are stored un-normalised with their
    L2 norms (the similarity divides by them; the forest uses the raw channels).
    """
    from scipy import ndimage

    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"features need a 3-D volume, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("the volume contains NaN or infinite values")
    if factor is not None and not 0 <= factor <= max(1, min(data.shape) // 3):
        raise ValueError(f"the feature factor must be 0 (automatic) or a stride from 1 to "
                         f"{max(1, min(data.shape) // 3)} for a {'x'.join(map(str, data.shape))} volume (got {factor})")
    factor = factor or feature_factor(data.shape, target_voxels)
    small = np.ascontiguousarray(data[::factor, ::factor, ::factor])
    lo, hi = np.percentile(small, [0.1, 99.9])
    norm = np.clip((small - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)
    total = len(sigmas) + len(hessian_sigmas) + 2
    n_feat = intensity_bins + 1 + 3 * len(sigmas) + 5 * len(hessian_sigmas)
    out = np.empty(small.shape + (n_feat,), dtype=np.float32)
    yield Progress(0, total, f"features at 1/{factor} resolution")
    base = ndimage.gaussian_filter(norm, bin_sigma, mode="nearest", truncate=3.0) if bin_sigma > 0 else norm
    width = 1.0 / max(intensity_bins - 1, 1)
    for b in range(intensity_bins):
        d = (base - b * width) / width
        np.exp(-0.5 * d * d, out=d)
        out[..., b] = d
    yield Progress(1, total, "intensity bins")

    def put(index: int, channel: np.ndarray, weight: float) -> None:
        mean, std = float(channel.mean()), float(channel.std())
        out[..., index] = (channel - mean) * (weight / 3.0 / (std if std > 1e-6 else 1.0))

    put(intensity_bins, norm, raw_weight)
    k = intensity_bins + 1
    smoothed = {}
    step = 1
    for sigma in sigmas:
        smooth = ndimage.gaussian_filter(norm, float(sigma), mode="nearest", truncate=3.0)
        smoothed[float(sigma)] = smooth
        grads = np.gradient(smooth)
        put(k, smooth, context_weight)
        put(k + 1, np.sqrt(sum(g * g for g in grads)), context_weight)
        put(k + 2, sum(np.gradient(g, axis=a) for a, g in enumerate(grads)) * float(sigma) ** 2, context_weight)
        k += 3
        step += 1
        yield Progress(step, total, f"features σ={sigma:g}")
    for sigma in hessian_sigmas:
        smooth = smoothed.get(float(sigma))
        if smooth is None:
            smooth = ndimage.gaussian_filter(norm, float(sigma), mode="nearest", truncate=3.0)
        gz, gy, gx = np.gradient(smooth)
        s2 = float(sigma) ** 2
        hzz, hzy, hzx = (h * s2 for h in np.gradient(gz))
        hyy, hyx = (np.gradient(gy, axis=a) * s2 for a in (1, 2))
        hxx = np.gradient(gx, axis=2) * s2
        del gz, gy, gx
        eig = hessian_eigenvalues(hzz, hyy, hxx, hzy, hzx, hyx)
        del hzz, hzy, hzx, hyy, hyx, hxx
        a1, a2, a3 = np.abs(eig[..., 0]), np.abs(eig[..., 1]), np.abs(eig[..., 2])
        tube = np.maximum(-eig[..., 1], 0.0) * (1.0 - a1 / np.maximum(a2, 1e-6))
        for j in range(3):
            put(k + j, eig[..., j], structure_weight)
        put(k + 3, tube, structure_weight)
        put(k + 4, a3 - a2, structure_weight)
        k += 5
        step += 1
        del eig, a1, a2, a3, tube
        yield Progress(step, total, f"Hessian σ={sigma:g}")
    n_sim = intensity_bins + 1 + 3 * len(sigmas)
    if extractor is not None:
        yield Progress(total, total, f"learned features from {Path(extractor).name}")
        learned = _learned_features(extractor, norm)
        for c in range(learned.shape[-1]):
            channel = learned[..., c]
            mean, std = float(channel.mean()), float(channel.std())
            learned[..., c] = (channel - mean) * (extractor_weight / 3.0 / (std if std > 1e-6 else 1.0))
        out = np.concatenate([out[..., :n_sim], learned, out[..., n_sim:]], axis=-1)
        n_sim += learned.shape[-1]
    yield Progress(total, total, "features ready")
    return FeatureVolume(out, factor, tuple(data.shape), similarity_channels=n_sim)


def _learned_features(path: str | os.PathLike, norm: np.ndarray) -> np.ndarray:
    """Run a local TorchScript feature extractor on ``norm`` (z', y', x') → (z', y', x', C) float32."""
    import torch
    import torch.nn.functional as F

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"feature extractor not found: {path}")
    try:
        model = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for files that are not TorchScript
        text = str(exc).strip().splitlines()
        reason = text[0] if text else type(exc).__name__
        if "PytorchStreamReader" in reason:  # torch's zip reader internals: not the user's business
            reason = "not a TorchScript (zip) archive"
        raise ValueError(f"{path.name} is not a TorchScript feature extractor: {reason}") from exc
    with torch.no_grad():
        try:
            maps = model(torch.from_numpy(np.ascontiguousarray(norm))[None, None])
        except Exception as exc:  # noqa: BLE001 - whatever the user's network raises
            text = str(exc).strip().splitlines()
            raise ValueError(f"{path.name} failed on a {norm.shape} volume: {text[0] if text else type(exc).__name__}") from exc
        if not isinstance(maps, torch.Tensor) or maps.ndim != 5 or maps.shape[0] != 1 or not 1 <= maps.shape[1] <= 256:
            shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
            raise ValueError(f"{path.name} must return (1, C ≤ 256, z, y, x) feature maps, got {shape}")
        if tuple(maps.shape[2:]) != norm.shape:
            maps = F.interpolate(maps.float(), size=norm.shape, mode="trilinear", align_corners=False)
        if not torch.isfinite(maps).all():
            raise ValueError(f"{path.name} produced NaN or infinite features")
        return np.ascontiguousarray(maps[0].float().permute(1, 2, 3, 0).numpy())


def compute_features(data: np.ndarray, **kwargs) -> FeatureVolume:
    """Synchronous :func:`features_job`."""
    from engines.jobs import run_job

    return run_job(features_job(data, **kwargs))


def _similarity(flat: np.ndarray, inv_norms: np.ndarray, samples: np.ndarray, threshold: float, power: float,
                aggregate: str = "mean") -> np.ndarray:
    """Mean (or max) over annotations of ``where(cos ≥ threshold, cos, 0) ** power``; ``flat`` (N, F)
    feature rows, ``inv_norms`` (N,) their inverse L2 norms, ``samples`` (k, F) annotated features."""
    import torch

    norms = np.linalg.norm(samples, axis=1, keepdims=True)
    samples = samples / np.where(norms > 0, norms, 1.0)
    feats = torch.from_numpy(flat)
    inv = torch.from_numpy(inv_norms)
    ann = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    out = torch.empty(feats.shape[0])
    chunk = max(1, 4_000_000 // max(len(ann), 1))
    for start in range(0, feats.shape[0], chunk):
        sim = (feats[start:start + chunk] @ ann.T).mul_(inv[start:start + chunk, None])
        if aggregate == "max":  # threshold and power are monotonic: apply them to the maximum only
            sim = sim.max(dim=1, keepdim=True).values
        sim.masked_fill_(sim < threshold, 0.0)
        if power == 2.5:  # s² √s is much faster than pow on CPU
            sim = sim * sim * torch.sqrt(sim)
        elif power != 1.0:
            sim.pow_(power)
        out[start:start + chunk] = sim.mean(dim=1) if aggregate == "mean" else sim[:, 0]
    return out.numpy()


def _upsample2(coarse, shape: tuple):
    """Trilinear upsampling of a (C, m0, m1, m2) tensor sampled at even indices of ``shape``
    (coarse index i ↔ fine index 2i) to (C, *shape)."""
    import torch.nn.functional as F

    target = tuple(2 * m - 1 for m in coarse.shape[1:])
    up = F.interpolate(coarse[None], size=target, mode="trilinear", align_corners=True)[0]
    pad = []
    for n, t in zip(reversed(shape), reversed(target)):
        pad += [0, n - t]
    if any(pad):
        up = F.pad(up[None], pad, mode="replicate")[0]
    return up


def _uncertain(scores, margin: float) -> np.ndarray:
    """Voxels of a (C, z, y, x) score tensor whose label differs within its 3×3×3 neighbourhood or
    whose two best classes are within ``margin`` × the best score (bool (z, y, x))."""
    import torch
    from scipy import ndimage

    if scores.shape[0] < 2:
        return np.zeros(tuple(scores.shape[1:]), dtype=bool)
    top, order = torch.topk(scores, 2, dim=0)
    labels = order[0].to(torch.uint8).numpy()
    close = ((top[0] - top[1]) < margin * top[0]).numpy()
    edge = ndimage.maximum_filter(labels, size=3) != ndimage.minimum_filter(labels, size=3)
    return edge | close


def classify_job(
    features: FeatureVolume,
    strokes: Strokes,
    *,
    method: str = "similarity",
    threshold: float = 0.1,
    power: float = 2.5,
    max_samples: int = 32,
    n_trees: int = 32,
    seed: int = 0,
    aggregate: str = "mean",
    min_score: float = 0.0,
    coarse_to_fine: bool | None = None,
    margin: float | None = None,
    smooth: float = 0.6,
    previous: ClassificationResult | None = None,
) -> Iterator:
    """Job generator: strokes + features → :class:`ClassificationResult` at full resolution.

    ``method="similarity"``: per class, cosine similarity of every feature voxel to up to
    ``max_samples`` annotated voxels, ``where(sim ≥ threshold, sim, 0) ** power``, averaged
    (``aggregate="mean"``, Engel et al.) or maximised over the annotations. ``method="forest"``:
    a random forest of ``n_trees`` trained on up to ``4 × max_samples`` annotated voxels per class.

    ``coarse_to_fine`` (default: on for feature grids over 500 k voxels) evaluates the classifier
    on every second feature voxel, interpolates, and re-evaluates exactly only where the
    coarse label changes within a 3-voxel neighbourhood or the two best scores are within
    ``margin`` × the best (default 0.35 for the forest's probabilities, 0.15 for similarities;
    plus a one-voxel dilation) - typically a fifth of the volume, the same
    labels at a fraction of the time. Structures thinner than ~2 feature voxels that fall between
    the coarse samples may be missed; pass ``False`` for the exact evaluation everywhere.

    ``smooth``: σ (feature voxels) of a Gaussian applied to each class's score volume before the
    arg-max - a light spatial regularisation that removes isolated mislabelled voxels on
    structure borders (0 turns it off).

    ``previous``: the last result on the same features (similarity only): classes whose stroke
    samples did not change reuse its cached scores, so an update after one stroke scores one
    class. Each class's sample subset depends on its own strokes only, so a stroke of one class
    leaves the other classes' scores exactly as they were.
    """
    import torch
    import torch.nn.functional as F

    if aggregate not in ("mean", "max"):
        raise ValueError("aggregate must be 'mean' (Engel et al.) or 'max'")
    if method not in METHODS:
        raise ValueError(f"unknown classification method {method!r}; use {', '.join(METHODS)}")
    n_classes = len(strokes.classes)
    annotated = strokes.annotated_classes()
    if n_classes == 0 or not annotated:
        raise ValueError("paint at least one stroke before classifying")
    full = features.full_shape
    for i in annotated:
        v = strokes.voxels[i]
        if np.any(v < 0) or np.any(v >= np.array(full)):
            raise ValueError(f"class {strokes.classes[i].name!r} has stroke voxels outside the volume {full}")
    if method == "forest" and len(annotated) < 2:
        raise ValueError("the random forest needs strokes of at least two classes")
    feats = features.features
    grid = feats.shape[:3]
    n_sim = features.similarity_channels or feats.shape[-1]
    samples = {}
    for i in annotated:
        s = features.lookup(strokes.voxels[i])
        limit = max_samples if method == "similarity" else 4 * max_samples
        if len(s) > limit:  # a subset that depends on this class's strokes only (stable for the others)
            s = s[np.random.default_rng([seed, i, len(s)]).choice(len(s), limit, replace=False)]
        samples[i] = s
    key = (id(features), method, aggregate, float(threshold), float(power), int(max_samples))
    cache = (previous.info.get("cache") if previous is not None else None) or {}
    if cache.get("key") != key or method != "similarity":
        cache = {}
    signature = {i: hash(samples[i].tobytes()) for i in annotated}
    reuse = {i for i in annotated if cache.get("signature", {}).get(i) == signature[i]}
    if method == "forest":
        def train():
            """The fitted forest (scikit-learn's first import, ~1 s cold, included)."""
            from sklearn.ensemble import RandomForestClassifier

            model = RandomForestClassifier(n_estimators=n_trees, random_state=seed, n_jobs=1, class_weight="balanced")
            return model.fit(np.concatenate([samples[i] for i in annotated]),
                             np.concatenate([np.full(len(samples[i]), i) for i in annotated]))

        # the long calls (import + fit, scoring, upsampling) run on a helper thread: a cancel stops the job at once
        forest = yield from wait_in_thread(train, announce=Progress(0, 3, "training random forest"))

    def score(rows: np.ndarray, norms: np.ndarray, only=None) -> np.ndarray:
        """(C, n) class scores of feature rows (n, F) with their norms (n,) (similarity: the classes in
        ``only``; the forest ignores the norms)."""
        out = np.zeros((n_classes, len(rows)), dtype=np.float32)
        if method == "similarity":
            inv = (1.0 / np.where(norms > 0, norms, 1.0)).astype(np.float32)
            part = np.ascontiguousarray(rows[:, :n_sim])
            for i in (annotated if only is None else only):
                out[i] = _similarity(part, inv, samples[i][:, :n_sim], threshold, power, aggregate)
        else:
            for start in range(0, len(rows), 50_000):  # chunks of ~0.1 s (the forest holds the GIL while it predicts)
                proba = forest.predict_proba(rows[start:start + 50_000])
                out[forest.classes_.astype(int), start:start + 50_000] = proba.T
        return out

    if coarse_to_fine is None:
        coarse_to_fine = math.prod(grid) > 500_000
    if margin is None:
        margin = 0.35 if method == "forest" else 0.15
    step = Progress(1, 3, f"{method}: scoring")
    yield step
    changed = [i for i in annotated if i not in reuse]
    if coarse_to_fine:
        sub = np.ascontiguousarray(feats[::2, ::2, ::2])
        sub_scores = (yield from wait_in_thread(score, sub.reshape(-1, sub.shape[-1]),
                                                features.norms[::2, ::2, ::2].reshape(-1), only=changed,
                                                event=step)).reshape((n_classes,) + sub.shape[:3])
        for i in reuse:  # unchanged strokes: the cached coarse scores
            sub_scores[i] = cache["coarse"][i]
        coarse = torch.from_numpy(sub_scores)

        def fine_voxels_to_redo():
            """Uncertain coarse voxels (label edge or small margin) → the fine voxels they cover (±1),
            and the coarse scores upsampled to the full grid (a helper thread: ~0.1-0.3 s at 192³)."""
            from scipy import ndimage

            redo = _uncertain(coarse[annotated], margin)
            redo = redo.repeat(2, 0).repeat(2, 1).repeat(2, 2)[:grid[0], :grid[1], :grid[2]]
            redo = ndimage.maximum_filter(redo, size=3)
            redo[::2, ::2, ::2] = False  # exact already
            return redo, _upsample2(coarse, grid).numpy()

        redo, small = yield from wait_in_thread(fine_voxels_to_redo, event=step)
        idx = np.flatnonzero(redo)
        step = Progress(2, 3, f"refining {100.0 * len(idx) / redo.size:.0f} % of the voxels")
        yield step
        if method == "similarity":
            # exact scores per class, kept in a cache: unchanged classes only score voxels not refined before
            exact = {i: cache["exact"][i] if i in reuse else np.full(redo.size, np.nan, np.float32) for i in annotated}
            flat_feats, flat_norms = feats.reshape(-1, feats.shape[-1]), features.norms.reshape(-1)
            for i in annotated:
                need = idx[np.isnan(exact[i][idx])]
                if len(need):
                    exact[i][need] = (yield from wait_in_thread(score, flat_feats[need], flat_norms[need],
                                                                only=[i], event=step))[i]
                small[i].reshape(-1)[idx] = exact[i][idx]
            cache = {"key": key, "signature": signature, "coarse": sub_scores, "exact": exact}
        else:
            rows = feats.reshape(-1, feats.shape[-1])[idx]
            small.reshape(n_classes, -1)[:, idx] = yield from wait_in_thread(
                score, rows, features.norms.reshape(-1)[idx], event=step)
        refined = len(idx) / redo.size
    else:
        small = (yield from wait_in_thread(score, feats.reshape(-1, feats.shape[-1]),
                                           features.norms.reshape(-1), only=changed,
                                           event=step)).reshape((n_classes,) + grid)
        for i in reuse:
            small[i] = cache["full"][i]
        if method == "similarity":
            cache = {"key": key, "signature": signature, "full": small.copy()}
        refined = 1.0
    if smooth > 0:
        def smooth_scores() -> None:
            from scipy import ndimage

            for i in annotated:
                ndimage.gaussian_filter(small[i], float(smooth), mode="nearest", truncate=3.0, output=small[i])

        yield from wait_in_thread(smooth_scores, announce=Progress(2, 3, "smoothing the class scores"))
    step = Progress(2, 3, "upsampling")
    yield step
    tensor = torch.from_numpy(small)[None]
    if tuple(small.shape[1:]) != tuple(full):
        tensor = yield from wait_in_thread(F.interpolate, tensor, size=tuple(full), mode="trilinear", align_corners=False,
                                           event=step)
    probs_t = tensor[0].clamp_(0.0, 1.0)
    labels, uncertainty = yield from _labels_job(probs_t, annotated, min_score, Progress(2, 3, "labels"))
    yield Log(f"classified {len(annotated)} classes with {method} ({len(reuse)} reused from the last update)")
    return ClassificationResult(probs_t.numpy(), labels, method,
                                {"factor": features.factor, "classes": [c.name for c in strokes.classes],
                                 "refined_fraction": refined, "reused_classes": sorted(reuse), "cache": cache or None},
                                uncertainty=uncertainty)


SLAB_VOXELS = 1 << 19
"""Voxels per slab of the full-resolution passes (labels, uncertainty, RGBA): ~20-60 ms each at
192³, a cancellation point between two slabs (these passes took 0.25-0.6 s each in one piece)."""


def _slabs(shape: Sequence[int]) -> Iterator[slice]:
    """Consecutive z ranges of a (Z, Y, X) grid, each about :data:`SLAB_VOXELS` voxels (≥ 1 plane)."""
    planes = max(1, SLAB_VOXELS // max(1, int(shape[1]) * int(shape[2])))
    for z in range(0, int(shape[0]), planes):
        yield slice(z, min(z + planes, int(shape[0])))


def _labels_job(probs, annotated, min_score: float, event: Progress) -> Iterator:
    """Job step: ``(labels, uncertainty)`` of a (C, Z, Y, X) probability tensor, slab by slab
    (yielding ``event`` after each): labels 1 + arg-max where the best score > ``min_score``
    (else 0), uncertainty as :func:`_uncertainty`. Per-voxel operations: the slabs give exactly
    the whole-volume result."""
    import torch

    shape = tuple(probs.shape[1:])
    labels = np.empty(shape, dtype=np.uint8)
    uncertainty = np.empty(shape, dtype=np.float32)
    for zs in _slabs(shape):
        part = probs[:, zs]
        best, arg = part.max(dim=0)
        labels[zs] = torch.where(best > max(min_score, 0.0), arg + 1, 0).to(torch.uint8).numpy()
        uncertainty[zs] = _uncertainty(part, annotated)
        yield event
    return labels, uncertainty


def _uncertainty(probs, annotated) -> np.ndarray:
    """1 − (q₁ − q₂) with q the annotated classes' scores normalised to sum 1 per voxel."""
    import torch

    scores = probs[annotated] if len(annotated) > 1 else torch.cat([probs[annotated], torch.zeros_like(probs[:1])])
    total = scores.sum(dim=0)
    q = scores / total.clamp_min(1e-6)
    top = torch.topk(q, 2, dim=0).values
    out = 1.0 - (top[0] - top[1])
    return torch.where(total > 1e-6, out, torch.ones_like(out)).numpy().astype(np.float32)


def classify(features: FeatureVolume, strokes: Strokes, **kwargs) -> ClassificationResult:
    """Synchronous :func:`classify_job`."""
    from engines.jobs import run_job

    return run_job(classify_job(features, strokes, **kwargs))


def semantic_rgba(result: ClassificationResult, classes: Sequence[ClassSpec], *, sharpness: float = 1.0) -> np.ndarray:
    """RGBA volume ``(Z, Y, X, 4)`` float32: each voxel takes its label's class colour, with
    opacity = class opacity × (class probability ** sharpness); hidden classes and unlabelled
    voxels are transparent. Synchronous :func:`semantic_rgba_job`."""
    from engines.jobs import run_job

    return run_job(semantic_rgba_job(result, classes, sharpness=sharpness))


def semantic_rgba_job(result: ClassificationResult, classes: Sequence[ClassSpec], *,
                      sharpness: float = 1.0) -> Iterator:
    """Job generator: :func:`semantic_rgba` slab by slab (a Progress after each slab of
    :data:`SLAB_VOXELS` voxels, so a cancel stops it between two slabs)."""
    labels = result.labels
    out = np.zeros(labels.shape + (4,), dtype=np.float32)
    shown = [(i, spec) for i, spec in enumerate(classes) if spec.visible and spec.opacity > 0]
    slabs = list(_slabs(labels.shape))
    for done, zs in enumerate(slabs):
        part, target = labels[zs], out[zs]
        for i, spec in shown:
            mask = part == i + 1
            if not mask.any():
                continue
            target[mask, :3] = np.asarray(spec.color, dtype=np.float32)
            target[mask, 3] = spec.opacity * result.probabilities[i][zs][mask] ** sharpness
        yield Progress(done + 1, len(slabs), "class colours")
    return out
