"""Fuzz every loader with seeded corruptions of a valid sample and print the outcome table.

    python benchmarks/fuzz_loaders.py --cases 1000            # all loaders, 1000 cases each
    python benchmarks/fuzz_loaders.py --cases 200 --loaders ply,mhd --seed 3

Each case ends as ``accepted`` (the loader returned) or a ``clear error`` (the loader's one error
type with a one-line message without exception class names); anything else is counted as
``unexpected``, a case without an answer within the timeout as a ``hang`` and a dead worker
(e.g. SIGABRT, SIGSEGV) as a ``crash``. Workers run under an address-space cap (RLIMIT_AS).
Exits 1 when any loader had an unexpected exception, a hang or a crash.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.runner import CASE_TIMEOUT, MEMORY_CAP, describe_failures, format_table, fuzz_loaders
from tests.fuzz.targets import FAMILIES, TARGETS


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases per loader")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loaders", default=",".join(TARGETS), help=f"comma-separated subset of {', '.join(TARGETS)}")
    parser.add_argument("--timeout", type=float, default=CASE_TIMEOUT, help="seconds per case")
    parser.add_argument("--memory-gib", type=float, default=MEMORY_CAP / 2**30, help="address-space cap per worker")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.loaders.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown loader(s) {', '.join(unknown)}")
    summaries = []
    start = time.perf_counter()
    for family, members in FAMILIES.items():  # one worker per family (shared imports)
        chosen = [n for n in members if n in names]
        if not chosen:
            continue
        t0 = time.perf_counter()
        done = fuzz_loaders(chosen, args.cases, args.seed, timeout=args.timeout, memory=int(args.memory_gib * 2**30))
        summaries += done
        print(f"{family} ({', '.join(chosen)}): {sum(s.cases for s in done)} cases in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)
        for summary in done:
            if summary.failures:
                print(describe_failures(summary, 20), file=sys.stderr, flush=True)
    print(format_table(summaries))
    print(f"\n{sum(s.cases for s in summaries)} cases, seed {args.seed}, timeout {args.timeout:.0f} s per case, "
          f"memory cap {args.memory_gib:.1f} GiB, {time.perf_counter() - start:.0f} s in all")
    return 0 if all(s.ok for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
