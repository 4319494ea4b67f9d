"""Run every benchmark module of this package (``bench/bench_*.py``), one process each.

    python -m bench.run_all            # each with --quick (what `make bench` runs)
    python -m bench.run_all --full     # full-size runs (slow)
    python -m bench.run_all motion     # only the modules whose name contains "motion"
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def bench_modules(selection: list[str]) -> list[str]:
    names = sorted(p.stem for p in Path(__file__).resolve().parent.glob("bench_*.py"))
    return [n for n in names if not selection or any(s in n for s in selection)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the benchmarks.")
    ap.add_argument("--full", action="store_true", help="full-size runs instead of --quick")
    ap.add_argument("only", nargs="*", help="substrings selecting benchmark modules")
    args = ap.parse_args(argv)
    modules = bench_modules(args.only)
    if not modules:
        print(f"no benchmark module matches {args.only}")
        return 1
    failed = []
    for name in modules:
        cmd = [sys.executable, "-m", f"bench.{name}"] + ([] if args.full else ["--quick"])
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        status = subprocess.call(cmd)
        print(f"=== {name}: exit status {status} after {time.perf_counter() - t0:.0f} s", flush=True)
        if status != 0:
            failed.append(name)
    print(f"\n{len(modules) - len(failed)} of {len(modules)} benchmarks ran"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
