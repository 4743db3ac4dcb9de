"""Seeded corruption fuzzing of every loader (used by tests/test_fuzz_loaders.py and
benchmarks/fuzz_loaders.py).

``targets`` builds one small VALID sample per loader and lists the corruptions that apply to it;
``worker`` runs cases of one loader in a subprocess under a memory cap and reports each; ``runner``
drives workers, enforces the per-case timeout and restarts a worker after a hang or crash.
"""
