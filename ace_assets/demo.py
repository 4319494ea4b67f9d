"""``make demo``: a synthetic project -> every asset for every line -> a summary table.

    python -m ace_assets.demo --out demo_project [--frames 1000] [--size 200]

Runs on the persistent Dagster instance under ``DAGSTER_HOME`` (set by the Makefile), so
``make ui`` afterwards shows every materialisation with its metadata and previews.
"""
import argparse
import logging
import os
import sys
import time
from pathlib import Path

from ace_neuro.synthetic.project import write_demo_project

from .runner import get_instance, materialize_lines

STAGE_COLUMNS = [("raw_movie", "ingest"), ("cropped_movie", "crop"), ("dff_movie", "dff"),
                 ("motion_corrected_movie", "motion"), ("cnmfe_estimates", "cnmfe"),
                 ("accepted_components", "eval"), ("calcium_events", "events"), ("calcium_phase", "phase"),
                 ("spectrograms", "spectro")]


def _fmt_table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    line = "  ".join(c.ljust(widths[c]) for c in columns)
    out = [line, "  ".join("-" * widths[c] for c in columns)]
    for r in rows:
        out.append("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))
    return "\n".join(out)


def summarise(runs, demo, storage_root: Path) -> str:
    rows = []
    for run in runs:
        raw = run.metadata.get("raw_movie", {})
        shape = raw.get("shape") or ["?", "?", "?"]
        row = {
            "line": run.line_num,
            "format": raw.get("format", demo.formats.get(run.line_num, "?")),
            "frames": shape[0],
            "size": f"{shape[1]}x{shape[2]}",
            "fps": raw.get("frame_rate_hz", "?"),
            "dropped": raw.get("dropped_frames", "?"),
            "status": "ok" if run.success else "FAILED",
            "total_s": f"{run.seconds:.1f}",
        }
        acc = run.metadata.get("accepted_components", {})
        if acc:
            row["neurons found/true"] = f"{acc.get('n_accepted', '?')}/{acc.get('n_true_neurons', '?')}"
            if "detection_f1" in acc:
                row["F1"] = f"{acc['detection_f1']:.2f}"
        ev = run.metadata.get("calcium_events", {})
        if ev:
            row["events"] = ev.get("n_events", ev.get("rows", "?"))
        for asset, short in STAGE_COLUMNS:
            if asset in run.step_seconds:
                row[f"{short}_s"] = f"{run.step_seconds[asset]:.1f}"
        rows.append(row)
    cols: list[str] = []
    for r in rows:
        cols.extend(c for c in r if c not in cols)
    lines = [_fmt_table(rows, cols), "", f"outputs: {storage_root}/<asset>/<line>.zarr|.parquet"]
    for run in runs:
        if not run.success:
            lines.append(f"line {run.line_num} failed: {run.error}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_project", help="folder for the synthetic project and outputs")
    ap.add_argument("--frames", type=int, default=None, help="frames per recording (default: the demo's)")
    ap.add_argument("--size", type=int, default=None, help="frame height and width in pixels")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out).resolve()
    t0 = time.perf_counter()
    kwargs = {}
    if args.frames:
        kwargs["n_frames"] = args.frames
    if args.size:
        kwargs["height"] = kwargs["width"] = args.size
    print(f"writing a synthetic project under {out} ...", flush=True)
    demo = write_demo_project(out, seed=args.seed, **kwargs)
    storage_root = out / "storage"
    instance = get_instance()
    print(f"materialising every asset for lines {sorted(demo.formats)} "
          f"(Dagster instance: {os.environ.get('DAGSTER_HOME', 'temporary')}) ...", flush=True)
    runs = materialize_lines(sorted(demo.formats), project_path=str(demo.project_path),
                             data_path=str(demo.data_path), storage_root=str(storage_root), instance=instance,
                             run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    print()
    print(summarise(runs, demo, storage_root))
    print(f"\ndone in {time.perf_counter() - t0:.1f} s. `make ui` shows these runs in the Dagster UI.")
    return 0 if all(r.success for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
