"""Fuzz every loader with seeded corruptions of a valid sample (tests/fuzz/).

Each case must end in the accepted result or the loader's one clear error type (one line, no
exception class name) within the per-case timeout and under a 4 GiB address-space cap: never
another exception type, a hang or a crash. Cases run in a worker subprocess per loader that
the parent restarts after a hang or crash. ``benchmarks/fuzz_loaders.py --cases 1000`` runs the
full set; here each loader gets 50 cases (same seed, so a failure here reproduces there).
"""

import pytest

from tests.fuzz.runner import describe_failures, fuzz_loader, fuzz_loaders
from tests.fuzz.targets import FAMILIES, TARGETS

CASES = 50


@pytest.mark.parametrize("family", list(FAMILIES))
def test_corrupt_files_end_accepted_or_in_one_clear_error(family, tmp_path):
    for summary in fuzz_loaders(FAMILIES[family], CASES, seed=0, root=tmp_path):
        loader = summary.loader
        assert summary.cases == CASES
        assert summary.ok, f"{loader}: {summary.unexpected} unexpected, {summary.hangs} hangs, " \
                           f"{summary.crashes} crashes\n{describe_failures(summary)}"
        # the corruptions do reach the loader's checks (a target without an error type, e.g. sniffing, never raises)
        assert summary.clear > 0 or not TARGETS[loader].errors(), loader
        assert summary.max_seconds < 10, loader


@pytest.mark.parametrize("kind,outcome", [
    ("typeerror", "unexpected"), ("unclear", "unexpected"), ("memory", "unexpected"),
    ("hang", "hang"), ("abort", "crash"), ("clean", "clear"),
])
def test_harness_catches_every_kind_of_failure(kind, outcome, tmp_path):
    summary = fuzz_loader(f"selftest-{kind}", 2, seed=0, root=tmp_path, timeout=1.5)
    outcomes = [r["outcome"] for r in summary.failures] or ["clear"] * summary.clear
    assert summary.cases == 2 and outcomes == [outcome, outcome]  # the worker is restarted after a hang or crash
    if kind == "abort":
        assert "SIGABRT" in summary.failures[0]["what"]
    if kind == "memory":
        assert summary.failures[0]["type"] == "MemoryError"
