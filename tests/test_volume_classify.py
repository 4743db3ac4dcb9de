"""Paint-to-classify on the phantom: a few strokes on three slices (plus two rounds of
corrective strokes, as a user would add after looking at the result) recover the phantom's
bone and vessel labels with IoU ≥ 0.8."""

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
    load_strokes,
    semantic_rgba,
)
from engines.volume.phantom import LABELS, make_phantom

NAMES = [LABELS[i] for i in range(5)]  # class i == phantom label i
SLICES = (40, 64, 90)


@pytest.fixture(scope="module")
def phantom():
    volume, labels = make_phantom(128)
    return volume, labels, compute_features(volume.data)


def _iou(pred, truth):
    return (pred & truth).sum() / max((pred | truth).sum(), 1)


def _initial_strokes(labels, rng, per_slice=10):
    strokes = Strokes([ClassSpec(n) for n in NAMES])
    for label in range(5):
        for z in SLICES:
            idx = np.argwhere(labels[z] == label)
            pick = idx[rng.choice(len(idx), min(per_slice, len(idx)), replace=False)]
            strokes.add(label, np.c_[np.full(len(pick), z), pick])
    return strokes


def _corrections(strokes, labels, result, rng, per_slice=5):
    for label in range(5):
        for z in SLICES:
            idx = np.argwhere((labels[z] == label) & (result.labels[z] != label + 1))
            if len(idx):
                pick = idx[rng.choice(len(idx), min(per_slice, len(idx)), replace=False)]
                strokes.add(label, np.c_[np.full(len(pick), z), pick])


def test_features_shape_and_unit_norm(phantom):
    volume, _, features = phantom
    assert features.factor == 1 and features.full_shape == volume.shape
    norms = np.linalg.norm(features.features[::7, ::7, ::7], axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)


def test_forest_recovers_bone_and_vessels(phantom):
    _, labels, features = phantom
    rng = np.random.default_rng(1)
    strokes = _initial_strokes(labels, rng)
    for _ in range(2):
        result = classify(features, strokes, method="forest")
        _corrections(strokes, labels, result, rng)
    result = classify(features, strokes, method="forest")
    assert result.labels.shape == labels.shape and result.probabilities.shape == (5,) + labels.shape
    assert _iou(result.labels == 4, labels == 3) >= 0.8  # bone
    assert _iou(result.labels == 3, labels == 2) >= 0.8  # vessels
    # only 0.01 % of the voxels were painted
    assert sum(len(v) for v in strokes.voxels.values()) < 0.0002 * labels.size


def test_similarity_finds_bone_from_a_few_strokes(phantom):
    _, labels, features = phantom
    strokes = _initial_strokes(labels, np.random.default_rng(1))
    events = []
    result = run_job(classify_job(features, strokes, method="similarity"), events.append)
    assert any(isinstance(e, Progress) for e in events)
    assert _iou(result.labels == 4, labels == 3) >= 0.8
    assert _iou(result.labels == 1, labels == 0) >= 0.8  # air
    # similarity maps are in [0, 1] and highest inside the painted class
    bone = result.probabilities[3]
    assert bone.min() >= 0 and bone.max() <= 1
    assert bone[labels == 3].mean() > 5 * bone[labels == 1].mean()


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
