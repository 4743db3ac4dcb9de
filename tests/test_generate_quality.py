"""The shipped digits model's measured quality: an independent classifier (an SVC trained on the
real scikit-learn digits, never on generated images) must label at least 90 % of 200 samples
(20 per class, 10 sampler steps) as the class that was asked for."""

import numpy as np

from engines.generation.api import GenerationParams, generate_job
from engines.generation.digits_data import DigitClassifier, digits_32
from engines.jobs import run_job


def test_classifier_is_independent_and_accurate_on_real_digits():
    images, labels = digits_32()
    train = np.arange(len(labels)) % 2 == 0
    clf = DigitClassifier(train_index=np.where(train)[0])
    # held-out real digits (32x32, as the model sees them) are classified correctly
    assert (clf.predict(images[~train]) == labels[~train]).mean() > 0.97


def test_shipped_model_class_accuracy():
    clf = DigitClassifier()
    correct, total = 0, 0
    for digit in range(10):
        params = GenerationParams(model="digits-flow", class_label=digit, steps=10, seed=1000 + 100 * digit,
                                  batch=20)
        result = run_job(generate_job(params))
        assert result.params["sampler"] == "flow_euler"
        grey = result.images[:, :, :, 0].astype(np.float64) / 255.0
        correct += int((clf.predict(grey) == digit).sum())
        total += len(grey)
    accuracy = correct / total
    print(f"class accuracy of 200 samples: {accuracy:.3f}")
    assert total == 200 and accuracy >= 0.90
