"""Paint-to-classify on the phantom: one round of a few brush strokes (three per class on each
of three axial slices, simulated from the phantom's labels on those slices only) recovers the
phantom's bone and vessel labels with IoU ≥ 0.8 on the full volume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.jobs import Progress, run_job
from engines.volume.classify import (
    ClassificationResult,
    ClassSpec,
    Strokes,
    classify,
    classify_job,
    compute_features,
    hessian_eigenvalues,
    load_strokes,
    semantic_rgba,
)
from engines.volume.phantom import LABELS, make_phantom, simulate_strokes

NAMES = [LABELS[i] for i in range(5)]  # class i == phantom label i
SLICES = (40, 64, 90)


@pytest.fixture(scope="module")
def phantom():
    volume, labels = make_phantom(128)
    return volume, labels, compute_features(volume.data)


def _iou(pred, truth):
    return (pred & truth).sum() / max((pred | truth).sum(), 1)


def _strokes(labels, seed=2):
    """What a user paints: 3 short strokes per class on each of 3 slices (labels of those slices only)."""
    strokes = Strokes([ClassSpec(n) for n in NAMES])
    only_slices = np.full_like(labels, 255)
    only_slices[list(SLICES)] = labels[list(SLICES)]  # the simulator sees nothing else
    for index, voxels in simulate_strokes(only_slices, {i: i for i in range(5)}, slices=SLICES, per_slice=3, seed=seed).items():
        strokes.add(index, voxels)
    return strokes


def test_features_shape_and_norms(phantom):
    volume, _, features = phantom
    assert features.factor == 1 and features.full_shape == volume.shape == features.shape
    n = features.similarity_channels
    assert n is not None and n <= features.features.shape[-1]
    sample = features.features[::7, ::7, ::7, :n]
    np.testing.assert_allclose(features.norms[::7, ::7, ::7], np.linalg.norm(sample, axis=-1), rtol=1e-4)
    # z-scored channels (after the intensity bins): mean ~0
    assert np.abs(features.features[..., 12:].mean(axis=(0, 1, 2))).max() < 1e-2


def test_simulated_strokes_stay_inside_their_label_on_the_given_slices():
    _, labels = make_phantom(64)
    strokes = simulate_strokes(labels, {0: 3, 1: 2}, slices=(20, 32), per_slice=2, seed=0)
    for index, value in ((0, 3), (1, 2)):
        v = strokes[index]
        assert set(np.unique(v[:, 0])) <= {20, 32} and len(v) >= 5
        assert np.all(labels[v[:, 0], v[:, 1], v[:, 2]] == value)


def test_forest_recovers_bone_and_vessels_from_one_round_of_strokes(phantom):
    _, labels, features = phantom
    strokes = _strokes(labels)
    result = classify(features, strokes, method="forest")
    assert result.labels.shape == labels.shape and result.probabilities.shape == (5,) + labels.shape
    assert _iou(result.labels == 4, labels == 3) >= 0.8  # bone
    assert _iou(result.labels == 3, labels == 2) >= 0.8  # vessels
    # only ~0.03 % of the voxels were painted, all on three slices
    assert sum(len(v) for v in strokes.voxels.values()) < 0.0004 * labels.size
    assert set(np.concatenate(list(strokes.voxels.values()))[:, 0]) <= set(SLICES)


def test_similarity_recovers_bone_and_vessels_from_the_same_strokes(phantom):
    _, labels, features = phantom
    strokes = _strokes(labels)
    events = []
    result = run_job(classify_job(features, strokes, method="similarity", aggregate="max"), events.append)
    assert any(isinstance(e, Progress) for e in events)
    assert _iou(result.labels == 4, labels == 3) >= 0.8  # bone
    assert _iou(result.labels == 3, labels == 2) >= 0.8  # vessels
    # similarity maps are in [0, 1] and highest inside the painted class
    bone = result.probabilities[3]
    assert bone.min() >= 0 and bone.max() <= 1
    assert bone[labels == 3].mean() > 3 * bone[labels == 1].mean()


def test_paper_similarity_average_finds_bone(phantom):
    _, labels, features = phantom
    result = classify(features, _strokes(labels), method="similarity", aggregate="mean")  # Engel et al.'s rule
    assert _iou(result.labels == 4, labels == 3) >= 0.8
    assert _iou(result.labels == 1, labels == 0) >= 0.8  # air


def test_coarse_to_fine_matches_the_exact_evaluation():
    volume, labels = make_phantom(96)  # 0.9 M voxels: above the coarse-to-fine threshold
    features = compute_features(volume.data)
    strokes = Strokes([ClassSpec(n) for n in NAMES])
    for index, voxels in simulate_strokes(labels, {i: i for i in range(5)}, slices=(30, 48, 68), seed=5).items():
        strokes.add(index, voxels)
    fast = classify(features, strokes, method="forest", coarse_to_fine=True)
    exact = classify(features, strokes, method="forest", coarse_to_fine=False)
    assert 0.05 < fast.info["refined_fraction"] < 0.8 and exact.info["refined_fraction"] == 1.0
    assert (fast.labels != exact.labels).mean() < 1e-3


def test_hessian_eigenvalues_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 3, 3))
    a = a + a.transpose(0, 2, 1)
    a[:5] = np.diag([1.0, -2.0, 0.5])  # repeated / diagonal cases
    a[5:8] = 0.0
    eig = hessian_eigenvalues(a[:, 2, 2], a[:, 1, 1], a[:, 0, 0], a[:, 1, 2], a[:, 0, 2], a[:, 0, 1])
    ref = np.linalg.eigvalsh(a)
    ref = np.take_along_axis(ref, np.argsort(np.abs(ref), axis=-1), axis=-1)
    np.testing.assert_allclose(eig, ref, atol=1e-4)
    hess = compute_features(make_phantom(32)[0].data, hessian_sigmas=(1.0,))
    assert hess.features.shape[-1] == hess.similarity_channels + 5


def test_strokes_json_round_trip_and_errors(tmp_path):
    strokes = Strokes([ClassSpec("bone", (1, 1, 0.8), 0.9), ClassSpec("vessel", (1, 0, 0))])
    strokes.add(0, [[1, 2, 3], [4, 5, 6]])
    strokes.add(1, [[7, 8, 9]])
    path = tmp_path / "s.json"
    path.write_text(json.dumps(strokes.to_dict()))
    back = load_strokes(path)
    assert [c.name for c in back.classes] == ["bone", "vessel"] and back.classes[0].opacity == 0.9
    np.testing.assert_array_equal(back.voxels[0], [[1, 2, 3], [4, 5, 6]])
    by_name = Strokes.from_dict({"classes": ["a", "b"], "strokes": [{"class": "b", "voxels": [[0, 0, 0]]}]})
    assert by_name.annotated_classes() == [1]
    with pytest.raises(ValueError, match="unknown class"):
        Strokes.from_dict({"classes": ["a"], "strokes": [{"class": 3, "voxels": [[0, 0, 0]]}]})
    with pytest.raises(ValueError):
        load_strokes(tmp_path / "missing.json")


def test_classify_rejects_bad_strokes(phantom):
    _, _, features = phantom
    with pytest.raises(ValueError, match="paint"):
        classify(features, Strokes([ClassSpec("a")]))
    outside = Strokes([ClassSpec("a"), ClassSpec("b")])
    outside.add(0, [[500, 0, 0]])
    with pytest.raises(ValueError, match="outside"):
        classify(features, outside)


def test_semantic_rgba_uses_class_colours():
    labels = np.array([[[0, 1, 2]]], dtype=np.uint8)
    probs = np.zeros((2, 1, 1, 3), np.float32)
    probs[0, 0, 0, 1] = 0.5
    probs[1, 0, 0, 2] = 1.0
    result = ClassificationResult(probs, labels, "similarity")
    rgba = semantic_rgba(result, [ClassSpec("a", (1, 0, 0), 0.8), ClassSpec("b", (0, 0, 1), 1.0, visible=False)])
    np.testing.assert_allclose(rgba[0, 0, 0], 0)
    np.testing.assert_allclose(rgba[0, 0, 1], [1, 0, 0, 0.4])
    np.testing.assert_allclose(rgba[0, 0, 2], 0)  # hidden class


@pytest.mark.parametrize("coarse", [True, False])
def test_update_reuses_unchanged_classes_and_leaves_their_scores(coarse):
    """After one more stroke of one class, the update scores that class only (the others come
    from the last result's cache) and gives exactly what a fresh classification gives."""
    volume, labels = make_phantom(48)
    features = compute_features(volume.data)
    strokes = Strokes([ClassSpec(n) for n in NAMES])
    for index, voxels in simulate_strokes(labels, {i: i for i in range(5)}, slices=(15, 24, 34), radius=0, seed=4).items():
        strokes.add(index, voxels)
    kwargs = dict(method="similarity", aggregate="max", coarse_to_fine=coarse)
    first = classify(features, strokes, **kwargs)
    more = strokes.copy()
    more.add(2, simulate_strokes(labels, {2: 2}, slices=(20,), radius=0, seed=8)[2])
    update = classify(features, more, previous=first, **kwargs)
    fresh = classify(features, more, **kwargs)
    assert update.info["reused_classes"] == [0, 1, 3, 4] and fresh.info["reused_classes"] == []
    np.testing.assert_allclose(update.probabilities, fresh.probabilities, atol=1e-6)
    np.testing.assert_array_equal(update.labels, fresh.labels)
    for i in (0, 1, 3, 4):  # a stroke of class 2 does not move the other classes' scores
        np.testing.assert_allclose(update.probabilities[i], first.probabilities[i], atol=1e-6)
    assert not np.allclose(update.probabilities[2], first.probabilities[2])
    # another method or other features: no reuse
    assert classify(features, more, previous=first, method="similarity", aggregate="mean").info["reused_classes"] == []


def test_uncertainty_points_at_the_errors(phantom):
    volume, labels, features = phantom
    result = classify(features, _strokes(labels), method="forest")
    u = result.uncertainty
    assert u.shape == labels.shape and u.dtype == np.float32 and 0.0 <= u.min() and u.max() <= 1.0
    wrong = result.labels != labels.astype(np.int64) + 1
    top = u >= np.quantile(u, 0.95)
    assert wrong[top].mean() > 5 * wrong.mean()  # the 5 % most uncertain voxels hold the errors


def test_organs_phantom_is_a_hard_but_fair_case():
    from scipy import ndimage

    from engines.volume.phantom import ORGAN_LABELS, make_organs_phantom

    volume, labels = make_organs_phantom(64)
    again, _ = make_organs_phantom(64)
    np.testing.assert_array_equal(volume.data, again.data)
    counts = np.bincount(labels.ravel(), minlength=4)
    assert set(ORGAN_LABELS) == {0, 1, 2, 3} and np.all(counts > 100)
    touching = ndimage.binary_dilation(labels == 1) & (labels == 2)
    assert touching.sum() > 50  # the organs share a surface
    a, b = (np.median(volume.data[ndimage.binary_erosion(labels == k, iterations=2)]) for k in (1, 2))
    assert abs(a - b) < 25  # similar intensities (noise σ = 15 HU)
    assert ndimage.label(labels == 3)[1] == 1  # one connected thin tube


def test_learned_features_from_a_local_torchscript_file(tmp_path):
    """A user's own network (here a tiny 3-D conv net saved as TorchScript) adds its feature
    maps to the similarity channels; broken files give one line."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool3d(2))
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 1, 8, 8, 8)), str(tmp_path / "net.pt"))
    volume, labels = make_phantom(32)
    plain = compute_features(volume.data)
    learned = compute_features(volume.data, extractor=tmp_path / "net.pt")
    assert learned.features.shape[-1] == plain.features.shape[-1] + 4
    assert learned.similarity_channels == plain.similarity_channels + 4
    n = plain.similarity_channels
    np.testing.assert_array_equal(learned.features[..., :n], plain.features[..., :n])
    # the added channels are the network's maps (pooled by 2, resized back), z-scored
    norm = np.clip((volume.data - np.percentile(volume.data, 0.1)) /
                   (np.percentile(volume.data, 99.9) - np.percentile(volume.data, 0.1)), 0, 1).astype(np.float32)
    with torch.no_grad():
        maps = torch.nn.functional.interpolate(net(torch.from_numpy(norm)[None, None]), size=norm.shape, mode="trilinear")[0]
    expected = maps[1].numpy()
    expected = (expected - expected.mean()) / expected.std() / 3.0
    np.testing.assert_allclose(learned.features[..., n + 1], expected, atol=1e-3)
    strokes = Strokes([ClassSpec(n) for n in NAMES])
    for index, voxels in simulate_strokes(labels, {i: i for i in range(5)}, slices=(10, 16, 22), radius=0, seed=1).items():
        strokes.add(index, voxels)
    assert classify(learned, strokes, method="forest").labels.shape == labels.shape
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    for bad, match in ((tmp_path / "bad.pt", "not a TorchScript"), (tmp_path / "none.pt", "not found")):
        with pytest.raises(ValueError, match=match) as info:
            compute_features(volume.data, extractor=bad)
        assert "\n" not in str(info.value)


def test_cli_classify_with_a_bad_feature_model_is_one_line(tmp_path, capsys):
    from studio.cli import main as cli_main

    strokes = Strokes([ClassSpec("a"), ClassSpec("b")], {0: np.array([[4, 4, 4]]), 1: np.array([[10, 10, 10]])})
    (tmp_path / "s.json").write_text(json.dumps(strokes.to_dict()))
    (tmp_path / "m.pt").write_bytes(b"junk")
    args = ["volume", "classify", "phantom:16", "--strokes", str(tmp_path / "s.json"), "--out", str(tmp_path / "l.nii.gz")]
    assert cli_main(args + ["--feature-model", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "m.pt" in err and "\n" not in err and not (tmp_path / "l.nii.gz").exists()


def _one_piece_rgba(result, classes):
    """The class colours as computed before the slabs: one boolean mask per class over the whole volume."""
    out = np.zeros(result.labels.shape + (4,), dtype=np.float32)
    for i, spec in enumerate(classes):
        mask = result.labels == i + 1
        if spec.visible and spec.opacity > 0 and mask.any():
            out[mask, :3] = np.asarray(spec.color, dtype=np.float32)
            out[mask, 3] = spec.opacity * result.probabilities[i][mask] ** 1.0
    return out


@pytest.mark.parametrize("method", ["forest", "similarity"])
def test_full_resolution_passes_in_slabs_give_the_one_piece_result(method, monkeypatch):
    """Labels, uncertainty and class colours are computed slab by slab (a cancellation point after
    each slab); a 64³ phantom with 32³ features in slabs of 5 planes (the last one partial) gives
    exactly the one-piece result, and the labels / uncertainty of an independent numpy evaluation."""
    from engines.jobs import CancelToken, JobCancelled
    from engines.volume import classify as engine
    from engines.volume.classify import semantic_rgba_job

    volume, labels = make_phantom(64)
    features = compute_features(volume.data, factor=2)
    strokes = Strokes([ClassSpec(n, (0.1 * i, 0.5, 1.0 - 0.2 * i), 0.3 + 0.1 * i, visible=i != 2) for i, n in enumerate(NAMES)])
    for index, voxels in simulate_strokes(labels, {i: i for i in range(4)}, slices=(20, 32, 44), seed=3).items():
        strokes.add(index, voxels)  # class 4 unpainted: probability 0 everywhere
    monkeypatch.setattr(engine, "SLAB_VOXELS", 1 << 62)
    whole = classify(features, strokes, method=method)
    whole_rgba = semantic_rgba(whole, strokes.classes)
    monkeypatch.setattr(engine, "SLAB_VOXELS", 64 * 64 * 5)
    events = []
    sliced = run_job(classify_job(features, strokes, method=method), events.append)
    rgba_events = []
    sliced_rgba = run_job(semantic_rgba_job(sliced, strokes.classes), rgba_events.append)
    assert sum(isinstance(e, Progress) and e.message == "labels" for e in events) == 13 == len(rgba_events)
    np.testing.assert_array_equal(sliced.probabilities, whole.probabilities)
    np.testing.assert_array_equal(sliced.labels, whole.labels)
    np.testing.assert_array_equal(sliced.uncertainty, whole.uncertainty)
    np.testing.assert_array_equal(sliced_rgba, whole_rgba)
    np.testing.assert_array_equal(sliced_rgba, _one_piece_rgba(sliced, strokes.classes))
    probs = sliced.probabilities
    assert len(np.unique(sliced.labels)) >= 4 and not sliced_rgba[sliced.labels == 3].any()  # class 2 hidden
    np.testing.assert_array_equal(sliced.labels, np.where(probs.max(0) > 0, probs.argmax(0) + 1, 0))
    scores = probs[:4].astype(np.float64)
    total = scores.sum(0)
    q = np.sort(scores / np.maximum(total, 1e-6), axis=0)
    np.testing.assert_allclose(sliced.uncertainty, np.where(total > 1e-6, 1.0 - (q[-1] - q[-2]), 1.0), atol=2e-6)
    token = CancelToken()  # a cancel during the labels stops the job at the next slab
    seen = []

    def cancel_in_labels(event):
        seen.append(event)
        if isinstance(event, Progress) and event.message == "labels":
            token.cancel()

    with pytest.raises(JobCancelled):
        run_job(classify_job(features, strokes, method=method), cancel_in_labels, cancel=token)
    assert [getattr(e, "message", "") for e in seen].count("labels") == 1
