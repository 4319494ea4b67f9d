"""``make demo``: a synthetic project -> every asset for every line -> a summary table.

    python -m ace_assets.demo --out demo_project [--frames 1000] [--size 200] [--storage-root s3://bucket/root]

Runs on the persistent Dagster instance under ``DAGSTER_HOME`` (set by the Makefile), so
``make ui`` afterwards shows every materialisation with its metadata and previews.
"""
import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from ace_neuro import storage
from ace_neuro.project import save_crop_coords
from ace_neuro.stages.cnmfe.scoring import score_against_truth
from ace_neuro.synthetic import crop_ground_truth, load_ground_truth, select_frames
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


#: the demo draws a crop on this line (as a person would in the crop window) so the crop stage
#: really crops somewhere; the other lines show the headless "no crop_coords" pass-through
CROPPED_LINE = 96


def score_line(demo, line: int, storage_root: Path) -> dict:
    """Neurons found vs the synthetic ground truth (accepted components only)."""
    truth = load_ground_truth(demo.ground_truth[line])
    dropped = demo.dropped_frames.get(line, ())
    if dropped:
        truth = select_frames(truth, np.setdiff1d(np.arange(truth.traces.shape[1]), dropped))
    cropped = storage.open_movie(storage.join(storage_root, "cropped_movie", f"{line}.zarr"))
    box = cropped.attrs.get("crop_box")
    if box:
        truth = crop_ground_truth(truth, (box[0], box[1]), (box[2], box[3]))
    est = storage.read_bundle(storage.join(storage_root, "cnmfe_estimates", f"{line}.zarr"))
    acc = storage.read_table(storage.join(storage_root, "accepted_components", f"{line}.parquet"))
    s = score_against_truth(est, truth, accepted=acc["accepted"].to_numpy()).summary()
    return {"found": int(acc["accepted"].sum()), "true": s["n_detectable"], "f1": s["f1"],
            "trace_r": s["trace_r"], "footprint_corr": s["footprint_corr"]}


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
        if "accepted_components" in run.metadata:
            sc = score_line(demo, run.line_num, storage_root)
            row["neurons found/true"] = f"{sc['found']}/{sc['true']}"
            row["F1"] = f"{sc['f1']:.2f}"
            row["trace r"] = f"{sc['trace_r']:.2f}" if np.isfinite(sc["trace_r"]) else "-"
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
    lines = [_fmt_table(rows, cols), "",
             "neurons found/true: accepted components vs ground-truth neurons detectable at the line's min_pnr; "
             "F1 and median trace r from optimal matching of footprints.",
             f"outputs: {storage_root}/<asset>/<line>.zarr|.parquet"]
    for run in runs:
        if not run.success:
            lines.append(f"line {run.line_num} failed: {run.error}")
    return "\n".join(lines)


def run_notes(instance, runs) -> list[tuple[int, str]]:
    """Each run's warnings, once per line (the run's log holds them with their step)."""
    out = []
    for run in runs:
        seen = set()
        for entry in instance.all_logs(run.run_id):
            message = (entry.user_message or "").strip().removeprefix(f"line {run.line_num}: ")
            if entry.level >= logging.WARNING and message and not entry.dagster_event and message not in seen:
                seen.add(message)
                out.append((run.line_num, message))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_project", help="folder for the synthetic project and outputs")
    ap.add_argument("--frames", type=int, default=None, help="frames per recording (default: the demo's)")
    ap.add_argument("--size", type=int, default=None, help="frame height and width in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--storage-root", default=None,
                    help="where outputs go: a folder or an fsspec URL such as s3://bucket/root (default <out>/storage)")
    args = ap.parse_args(argv)
    # each warning is printed once, per line, after the runs (below): not twice while they run
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out).resolve()
    t0 = time.perf_counter()
    kwargs = {}
    if args.frames:
        kwargs["n_frames"] = args.frames
    if args.size:
        kwargs["height"] = kwargs["width"] = args.size
    print(f"writing a synthetic project under {out} ...", flush=True)
    demo = write_demo_project(out, seed=args.seed, **kwargs)
    size = args.size or 200
    margin = max(2, size // 20)
    save_crop_coords(demo.project_path, CROPPED_LINE, (margin, size - margin, size - margin, margin))
    storage_root = out / "storage"
    if args.storage_root:
        storage_root = storage.as_location(args.storage_root)
        if isinstance(storage_root, Path):
            storage_root = storage_root.resolve()
    instance = get_instance()
    print(f"materialising every asset for lines {sorted(demo.formats)} "
          f"(Dagster instance: {os.environ.get('DAGSTER_HOME', 'temporary')}) ...", flush=True)
    runs = materialize_lines(sorted(demo.formats), project_path=str(demo.project_path),
                             data_path=str(demo.data_path), storage_root=str(storage_root), instance=instance,
                             run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    print()
    print(summarise(runs, demo, storage_root))
    notes = run_notes(instance, runs)
    if notes:
        print("\nwhat the runs noted (also in each run's log in the UI):")
        print("\n".join(f"  line {line}: {message}" for line, message in notes))
    print(f"\ndone in {time.perf_counter() - t0:.1f} s. `make ui` shows these runs in the Dagster UI.")
    return 0 if all(r.success for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
