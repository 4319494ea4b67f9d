"""Project side of ``make minisim-fixture``: the fixture as a lab project (runs in the project's .venv).

    python -m bench.realistic.fixture_session --src DIR --dest tests/data/minisim_small

``DIR`` is what ``bench.realistic.make_fixture`` wrote. ``dest`` receives::

    session/Miniscope/0.avi, timeStamps.csv, metaData.json   the V4 DAQ session (FFV1)
    session/metaData.json, notes.csv
    project/experiments.csv, analysis_parameters.csv          line 1: gSig = soma radius;
                                                              line 2: the same + use_suggested_params
    truth.npz                                                 the generator's ground truth

The data path of the project is ``dest`` itself.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .catalogue import Recording
from .session import Line, lab_parameter_row, write_daq_session, write_project

SESSION = "session"


def write_fixture(src: Path, dest: Path) -> Path:
    """Replace ``dest`` with the fixture's session, project and truth."""
    rec = Recording.from_json((src / "recording.json").read_text())
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    write_daq_session(src / "movie.avi", dest / SESSION, fps=rec.fps, seed=rec.seed)
    lines = [Line(1, SESSION, lab_parameter_row(rec, 1, suggested=False), comment=f"{rec.name}: gSig = soma"),
             Line(2, SESSION, lab_parameter_row(rec, 2, suggested=True), comment=f"{rec.name}: suggested")]
    write_project(dest / "project", lines)
    shutil.copy2(src / "truth.npz", dest / "truth.npz")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", required=True, type=Path, help="make_fixture's output folder")
    ap.add_argument("--dest", required=True, type=Path, help="tests/data/minisim_small")
    args = ap.parse_args(argv)
    dest = write_fixture(args.src, args.dest)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"wrote {dest} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
