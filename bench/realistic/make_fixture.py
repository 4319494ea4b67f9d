"""Minisim side of ``make minisim-fixture`` (run by ``.venv-minisim/bin/python``).

    .venv-minisim/bin/python -m bench.realistic.make_fixture --out DIR

Generates :data:`bench.realistic.catalogue.FIXTURE` with the benchmark's generator, checks that the
streamed movie and ground truth equal ``minisim.simulate``'s (the recording is small enough to hold
whole), and copies ``movie.avi``, ``truth.npz`` and ``recording.json`` into ``DIR``. The project
side (``python -m bench.realistic.fixture_session``) then writes the V4 DAQ folder and the CSVs.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench.realistic.catalogue import FIXTURE
from bench.realistic.generate import build_spec, generate, verify_against_simulate

FILES = ("movie.avi", "truth.npz", "recording.json")


def make_fixture(out: Path) -> Path:
    """Generate, verify and copy the fixture's files into ``out``."""
    with tempfile.TemporaryDirectory() as cache:
        folder = generate(FIXTURE, Path(cache))
        problems = verify_against_simulate(build_spec(FIXTURE), folder)
        if problems:
            raise SystemExit("the streamed recording differs from minisim.simulate: " + "; ".join(problems))
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copy2(folder / name, out / name)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for movie.avi, truth.npz, recording.json")
    args = ap.parse_args(argv)
    print(f"fixture written to {make_fixture(args.out)} (streamed truth == minisim.simulate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
