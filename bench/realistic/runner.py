"""The realistic benchmark's runner (project side): generate, write, run the lab's CLI, score, report.

    python -m bench.realistic                  # the default subset
    python -m bench.realistic --all            # every recording of the catalogue
    python -m bench.realistic --only NAME      # one recording (repeat --only for more)
    python -m bench.realistic --engines native,caiman   # both engines on the same recordings

``--engines`` runs each line once per engine (the CLI's ``--set engine=NAME``; ``caiman`` needs
``ACE_CAIMAN_PYTHON`` or ``--caiman-python``) and ends with a side-by-side table. Peak memory is
the whole process tree's (the CLI and every process it starts, e.g. the CaImAn runner and its
worker pool).

For each recording: the generator (``.venv-minisim/bin/python -m bench.realistic.generate``)
makes or reuses the cached movie and truth; the movie is written as a UCLA V4 DAQ session; a
project with two lines is written - line 1 (``A``) as a lab first writes it (``gSig`` = soma
radius in pixels) and line 2 (``B``) the same with ``use_suggested_params = TRUE``; for each
line the lab's CLI runs headless in a child process (wall time and its own peak memory); the
stored outputs (``cnmfe_estimates``, ``accepted_components``, the motion shifts) are exported to
an ``.npz`` and scored by ``bench.realistic.score_minisim`` under minisim's venv, and again by
this project's own :func:`ace_neuro.stages.cnmfe.truth_match.match_by_energy_iou` as a cross-check
(the two must match the same number of pairs). One table is printed and written to
``<out>/realistic.json`` and ``<out>/realistic.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ace_neuro.stages.cnmfe.truth_match import match_by_energy_iou, trajectory_offset
from ace_neuro.storage import open_movie, read_bundle, read_table
from bench.common import ChildRun, run_child

from .catalogue import Recording, select
from .session import Line, lab_parameter_row, soma_gsig_px, write_daq_session, write_project

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO / "bench" / "results" / "minisim_cache"
DEFAULT_OUT = REPO / "bench" / "results" / "realistic"
DEFAULT_MINISIM_PYTHON = REPO / ".venv-minisim" / "bin" / "python"
#: CSV variant -> (line number, use_suggested_params)
VARIANTS = {"A": (1, False), "B": (2, True)}


@dataclass(frozen=True)
class Row:
    """One line of the report: one recording run with one CSV variant.

    Attributes
    ----------
    recording, variant : str
        Catalogue name; ``A`` (gSig = soma radius) or ``B`` (``use_suggested_params``).
    engine : str
        ``native`` or ``caiman`` (the CLI's ``--set engine=...``).
    gsig_csv, gsig_used : int
        ``gSig`` in the CSV and as CNMF-E used it.
    n_detectable, n_found, n_matched : int
        minisim's detectable units, accepted components, true positives (minisim's score).
    f1, precision, recall : float
    in_focus_recall : float or None
        Recall over the detectable units minisim flags in focus (``n_in_focus`` of them).
    blur_bins : tuple of (label, n, recall)
        Recall by observed blur (minisim's ``observed_sigma_px``).
    mean_iou, trace_r : float or None
        Mean energy-mask IoU and median trace Pearson r of the matched pairs.
    motion_rmse, no_correction_rmse, patch_rmse : float or None
        Offset-aligned RMSE (px) of the rigid shifts, of zero shifts, and of the patch shifts,
        vs minisim's motion; None without motion.
    wall_s, cpu_s, peak_mib : float
        The CLI child's wall time, CPU time (with its worker processes) and peak memory of its whole
        process tree (grandchildren included; see :func:`bench.common.run_child`).
    motion_s, cnmfe_s : float
        Seconds of ``motion_corrected_movie`` and ``cnmfe_estimates`` (the CLI's "done in" lines).
    n_frames : int
        Frames of the recording (for frames/s).
    ours_n_matched : int
        True positives by :func:`~ace_neuro.stages.cnmfe.truth_match.match_by_energy_iou`.
    agrees : bool
        Our scorer matched as many pairs as minisim's, with the same footprint offset.
    error : str
        Empty, or why the row has no scores.
    """

    recording: str
    variant: str
    gsig_csv: int
    engine: str = "native"
    gsig_used: int = 0
    n_detectable: int = 0
    n_found: int = 0
    n_matched: int = 0
    f1: float = float("nan")
    precision: float = float("nan")
    recall: float = float("nan")
    in_focus_recall: float | None = None
    n_in_focus: int = 0
    blur_bins: tuple = ()
    mean_iou: float | None = None
    trace_r: float | None = None
    motion_rmse: float | None = None
    no_correction_rmse: float | None = None
    patch_rmse: float | None = None
    wall_s: float = float("nan")
    cpu_s: float = float("nan")
    peak_mib: float = float("nan")
    motion_s: float = float("nan")
    cnmfe_s: float = float("nan")
    n_frames: int = 0
    ours_n_matched: int = -1
    agrees: bool = False
    error: str = ""


# --------------------------------------------------------------------------- generation
def ensure_generated(recordings: list[Recording], cache: Path, minisim_python: Path) -> dict[str, Path]:
    """Cache folder of each recording, generated by minisim's venv when missing."""
    cmd = [str(minisim_python), "-m", "bench.realistic.generate", "--cache", str(cache)]
    for rec in recordings:
        cmd += ["--recording", rec.to_json()]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if line.startswith("generated") or proc.returncode:
            print("  " + line, flush=True)
    if proc.returncode:
        raise SystemExit(f"the generator failed (exit status {proc.returncode})")
    folders = {}
    for line in proc.stdout.splitlines():
        item = json.loads(line)
        folders[item["name"]] = Path(item["dir"]) if Path(item["dir"]).is_absolute() else REPO / item["dir"]
    return folders


# --------------------------------------------------------------------------- one line
def prepare_project(rec: Recording, cache_dir: Path, work: Path) -> tuple[Path, Path]:
    """(project path, data path): the DAQ session (cached beside the movie) and the two CSV lines."""
    data = cache_dir / "daq"
    write_daq_session(cache_dir / "movie.avi", data / "session", fps=rec.fps, seed=rec.seed)
    lines = [Line(n, "session", lab_parameter_row(rec, n, suggested=sug), comment=f"{rec.name} variant {v}")
             for v, (n, sug) in VARIANTS.items()]
    return write_project(work / "project", lines), data


def run_pipeline(project: Path, data: Path, storage: Path, line_num: int, engine: str = "native",
                 code: Path | None = None) -> ChildRun:
    """The lab's CLI, headless, in a child process with a temporary Dagster instance; with ``code``
    (a checkout of another revision) the child runs in that folder, and since a child's working
    folder comes first on its ``sys.path``, ahead of the editable install, it imports that
    revision's ``ace_neuro``."""
    if storage.exists():
        shutil.rmtree(storage)
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "ACE_STORAGE_ROOT")}
    extra = [] if engine == "native" else ["--set", f"engine={engine}"]
    return run_child(["-m", "ace_neuro.pipelines.miniscope", "--line-num", str(line_num), "--project-path",
                      str(project.resolve()), "--data-path", str(data.resolve()), "--storage-root",
                      str(storage.resolve()), "--headless", *extra], env=env, cwd=code)


def stage_seconds(cli_log: str) -> dict[str, float]:
    """Stage -> seconds, from the CLI's "line N: <stage> done in S s" lines."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"line \d+: (\w+) done in ([\d.]+) s", cli_log)}


def export_estimate(storage: Path, line_num: int, out: Path) -> dict:
    """Accepted components and motion shifts of one run, to ``out`` (.npz); returns the arrays.

    ``estimate_shifts`` = ``-rigid_shifts``: ace_neuro stores content displacements, minisim's
    ``Estimate.shifts`` is the correction. ``rigid_shifts`` is stored as well, unchanged.
    """
    result = read_bundle(storage / "cnmfe_estimates" / f"{line_num}.zarr")
    table = read_table(storage / "accepted_components" / f"{line_num}.parquet")
    keep = table.sort_values("component_id")["accepted"].to_numpy(bool)
    A = sp.csc_matrix(result.A)[:, np.flatnonzero(keep)]
    arrays = {"A_data": A.data.astype(np.float32), "A_indices": A.indices.astype(np.int64),
              "A_indptr": A.indptr.astype(np.int64), "A_shape": np.asarray(A.shape, np.int64),
              "dims": np.asarray(result.dims, np.int64), "C": result.C[keep].astype(np.float32),
              "S": result.S[keep].astype(np.float32), "gSig": np.asarray(result.params.get("gSig", (0, 0)))}
    extras = open_movie(storage / "motion_corrected_movie" / f"{line_num}.zarr").extras
    if "rigid_shifts" in extras:
        rigid = np.asarray(extras["rigid_shifts"][:], np.float64)
        arrays.update(rigid_shifts=rigid, estimate_shifts=-rigid)
    if "patch_shifts" in extras:
        arrays["estimate_patch_shifts"] = -np.asarray(extras["patch_shifts"][:], np.float64)
    np.savez_compressed(out, **arrays)
    return arrays


def score_with_minisim(cache_dir: Path, estimate: Path, out: Path, minisim_python: Path) -> dict:
    """``bench.realistic.score_minisim`` under minisim's venv; its JSON."""
    proc = subprocess.run([str(minisim_python), "-m", "bench.realistic.score_minisim", "--truth-dir", str(cache_dir),
                           "--estimate", str(estimate), "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"minisim scorer failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.read_text())


def load_truth(cache_dir: Path) -> dict:
    """truth.npz: footprints as CSC plus the other arrays."""
    with np.load(cache_dir / "truth.npz", allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["A"] = sp.csc_matrix((out["A_data"], out["A_indices"], out["A_indptr"]), shape=tuple(out["A_shape"]))
    return out


def score_ourselves(truth: dict, est: dict):
    """Our energy-mask IoU matching, with the footprint offset read off the trajectories."""
    A = sp.csc_matrix((est["A_data"], est["A_indices"], est["A_indptr"]), shape=tuple(est["A_shape"]))
    shift = (0, 0)
    if "shifts" in truth and "rigid_shifts" in est:
        shift = trajectory_offset(est["rigid_shifts"], truth["shifts"])
    return match_by_energy_iou(A, truth["A"], dims=tuple(int(d) for d in truth["shape"][1:]), shift=shift)


def run_line(rec: Recording, variant: str, cache_dir: Path, project: Path, data: Path, work: Path,
             minisim_python: Path, *, keep_storage: bool = False, engine: str = "native",
             code: Path | None = None) -> Row:
    """Run, export and score one CSV variant of one recording with one engine (its storage root is
    deleted after the export unless ``keep_storage``: the movies of a 608 x 608 x 12,000 run take
    tens of GB); ``code``: run another revision's checkout (:func:`run_pipeline`)."""
    line_num, _ = VARIANTS[variant]
    base = Row(recording=rec.name, variant=variant, gsig_csv=soma_gsig_px(rec), engine=engine)
    tag = (variant if engine == "native" else f"{variant}_{engine}") + ("" if code is None else "_against")
    storage = work / f"storage_{tag}"
    child = run_pipeline(project, data, storage, line_num, engine, code)
    steps = stage_seconds(child.stderr)
    base = dataclasses.replace(base, wall_s=child.seconds, cpu_s=child.cpu_seconds, peak_mib=child.peak_tree_mib,
                               motion_s=steps.get("motion_corrected_movie", float("nan")),
                               cnmfe_s=steps.get("cnmfe_estimates", float("nan")), n_frames=rec_frames(rec))
    if child.returncode:
        tail = (child.stderr.strip() or child.stdout.strip()).splitlines()[-1:] or ["?"]
        return dataclasses.replace(base, error=f"CLI exit {child.returncode}: {tail[0][:200]}")
    est_path = work / f"estimate_{tag}.npz"
    est = export_estimate(storage, line_num, est_path)
    if not keep_storage:
        shutil.rmtree(storage)
    try:
        ms = score_with_minisim(cache_dir, est_path, work / f"minisim_score_{tag}.json", minisim_python)
    except RuntimeError as exc:
        return dataclasses.replace(base, error=str(exc)[:200])
    ours = score_ourselves(load_truth(cache_dir), est)
    rep = ms["report"]
    return dataclasses.replace(
        base, gsig_used=int(np.asarray(est["gSig"]).ravel()[0]), n_detectable=rep["n_true"], n_found=rep["n_est"],
        n_matched=rep["n_matched"], f1=rep["f1"], precision=rep["precision"], recall=rep["recall"],
        in_focus_recall=ms["in_focus_recall"], n_in_focus=ms["n_in_focus"],
        blur_bins=tuple((b["bin"], b["n"], b["recall"]) for b in ms["blur_bins"]),
        mean_iou=ms["mean_iou_matched"], trace_r=ms["trace_r_matched_median"], motion_rmse=ms["rigid_rmse"],
        no_correction_rmse=ms["no_correction_rmse"], patch_rmse=ms["patch_rmse"], ours_n_matched=ours.n_matched,
        agrees=(ours.n_matched == rep["n_matched"] == ms["n_matched_hungarian"]
                and list(ours.shift) == list(rep["footprint_shift"])))


# --------------------------------------------------------------------------- report
def _num(v, fmt: str = ".2f") -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)


TABLE_COLUMNS = ("recording", "CSV", "engine", "gSig", "det", "found", "F1", "prec", "rec", "in-focus rec",
                 "blur<3", "blur 3-5", "blur 5-7", "blur>=7", "IoU", "trace r", "motion RMSE", "no-corr RMSE",
                 "patch RMSE", "wall s", "CPU s", "motion fps", "CNMF-E fps", "peak MiB", "ours=minisim")


def rec_frames(rec: Recording) -> int:
    return int(round(rec.duration_s * rec.fps))


def _fps(frames: int, seconds: float) -> str:
    return _num(frames / seconds if seconds and seconds == seconds and seconds > 0 else float("nan"), ".0f")


def table_cells(row: Row) -> list[str]:
    """The cells of one table row (recall by blur as ``recall (n)``)."""
    if row.error:
        return [row.recording, row.variant, row.engine, str(row.gsig_csv), row.error] + [""] * (len(TABLE_COLUMNS) - 5)
    blur = [f"{_num(r)} ({n})" for _, n, r in row.blur_bins]
    gsig = f"{row.gsig_csv}" if row.gsig_used == row.gsig_csv else f"{row.gsig_csv}->{row.gsig_used}"
    return [row.recording, row.variant, row.engine, gsig, str(row.n_detectable), str(row.n_found), _num(row.f1),
            _num(row.precision), _num(row.recall), f"{_num(row.in_focus_recall)} ({row.n_in_focus})", *blur,
            _num(row.mean_iou), _num(row.trace_r, ".3f"), _num(row.motion_rmse), _num(row.no_correction_rmse),
            _num(row.patch_rmse), _num(row.wall_s, ".0f"), _num(row.cpu_s, ".0f"),
            _fps(row.n_frames, row.motion_s), _fps(row.n_frames, row.cnmfe_s), _num(row.peak_mib, ".0f"),
            "yes" if row.agrees else f"NO ({row.ours_n_matched} vs {row.n_matched})"]


def format_table(rows: list[Row], *, markdown: bool) -> str:
    """The report as aligned text or as a markdown table."""
    cells = [list(TABLE_COLUMNS)] + [table_cells(r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join([lines[0], "|" + "---|" * len(TABLE_COLUMNS)] + lines[1:])
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_COLUMNS))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))) for c in cells)


SIDE_BY_SIDE = (("F1", "f1", ".2f"), ("trace r", "trace_r", ".3f"), ("motion RMSE", "motion_rmse", ".2f"),
                ("wall s", "wall_s", ".0f"), ("peak MiB", "peak_mib", ".0f"))


def side_by_side(rows: list[Row], engines: list[str], *, markdown: bool) -> str:
    """One row per recording and CSV variant, each figure once per engine (``ours / caiman ...``)."""
    keys = list(dict.fromkeys((r.recording, r.variant) for r in rows))
    by = {(r.recording, r.variant, r.engine): r for r in rows}
    head = ["recording", "CSV"] + [f"{label} {e}" for label, _, _ in SIDE_BY_SIDE for e in engines]
    cells = [head]
    for rec, var in keys:
        line = [rec, var]
        for _, attr, fmt in SIDE_BY_SIDE:
            for e in engines:
                r = by.get((rec, var, e))
                line.append("-" if r is None else ("error" if r.error else _num(getattr(r, attr), fmt)))
        cells.append(line)
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join([lines[0], "|" + "---|" * len(head)] + lines[1:])
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))) for c in cells)


def write_report(rows: list[Row], recordings: list[Recording], out: Path, header: str) -> None:
    """``realistic.json`` (rows, catalogue entries, versions) and ``realistic.md`` (the table) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"header": header, "recordings": [dataclasses.asdict(r) for r in recordings],
               "rows": [dataclasses.asdict(r) for r in rows]}
    (out / "realistic.json").write_text(json.dumps(payload, indent=2, default=float))
    engines = list(dict.fromkeys(r.engine for r in rows))
    text = f"{header}\n\n{format_table(rows, markdown=True)}\n"
    if len(engines) > 1:
        text += f"\nSide by side:\n\n{side_by_side(rows, engines, markdown=True)}\n"
    (out / "realistic.md").write_text(text)


#: the figures compared with the baseline, and how much worse each may get before it is flagged
BASELINE_FIGURES = {"wall_s": ("wall s", "time", 0.20), "cpu_s": ("CPU s", "time", 0.20),
                    "peak_mib": ("peak MiB", "time", 0.20), "f1": ("F1", "score", 0.01),
                    "trace_r": ("trace r", "score", 0.01), "motion_rmse": ("motion RMSE", "error", 0.01)}
DEFAULT_BASELINE = Path(__file__).resolve().parent / "baseline.json"


def baseline_entries(rows: list[Row]) -> list[dict]:
    """The figures a baseline keeps, one entry per native row that ran."""
    return [{"recording": r.recording, "variant": r.variant, **{k: getattr(r, k) for k in BASELINE_FIGURES}}
            for r in rows if not r.error and r.engine == "native"]


def save_baseline(rows: list[Row], path: Path, header: str) -> None:
    """Write the rows' figures as the baseline later runs are compared with."""
    path.write_text(json.dumps({"header": header, "commit": _commit(), "rows": baseline_entries(rows)}, indent=1,
                               default=float) + "\n")


def compare_with_baseline(rows: list[Row], path: Path) -> list[str]:
    """:func:`compare_rows` against the figures recorded in ``path`` (another run, perhaps another machine)."""
    if not path.exists():
        return [f"no baseline at {path} (--save-baseline writes one)"]
    base = json.loads(path.read_text())
    return compare_rows(rows, base["rows"], f"against the baseline of {base.get('commit', '?')} ({path.name}):")


def compare_rows(rows: list[Row], baseline: list[dict], title: str) -> list[str]:
    """One line per row found in ``baseline`` (:func:`baseline_entries`): each figure now against
    then, worse ones flagged."""
    then = {(e["recording"], e["variant"]): e for e in baseline}
    out = [title]
    for r in rows:
        old = then.get((r.recording, r.variant))
        if old is None or r.error or r.engine != "native":  # the baseline holds the native engine
            continue
        cells, worse = [], []
        for key, (label, kind, tolerance) in BASELINE_FIGURES.items():
            now, was = getattr(r, key), old.get(key)
            if now is None or was is None or now != now or was != was:
                continue
            if kind == "time":
                change = (now - was) / was if was else 0.0
                cells.append(f"{label} {now:.0f} ({was:.0f}, {100 * change:+.0f} %)")
                bad = change > tolerance
            else:
                change = now - was
                cells.append(f"{label} {now:.3f} ({was:.3f}, {change:+.3f})")
                bad = (change < -tolerance) if kind == "score" else (change > tolerance)
            if bad:
                worse.append(label)
        flag = f"  WORSE: {', '.join(worse)}" if worse else ""
        out.append(f"  {r.recording} {r.variant}: " + "; ".join(cells) + flag)
    return out


def checkout_revision(rev: str, folder: Path) -> Path:
    """A detached git worktree of ``rev`` under ``folder`` (made once per commit); its path."""
    proc = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(f"--against {rev!r}: not a commit of this repository ({proc.stderr.strip()})")
    sha = proc.stdout.strip()
    tree = folder / sha[:12]
    if not (tree / "ace_neuro").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", "--force", str(tree), sha], cwd=REPO, check=True,
                       capture_output=True)
    return tree


def remove_checkout(tree: Path) -> None:
    """Undo :func:`checkout_revision`."""
    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)


def _commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def minisim_version(minisim_python: Path) -> str:
    """The minisim version installed in its venv."""
    code = "import importlib.metadata as m; print(m.version('minisim'))"
    return subprocess.run([str(minisim_python), "-c", code], capture_output=True, text=True).stdout.strip()


def run_lines(recordings, folders: dict, args, engines: list[str], against: Path | None) -> tuple[list, list]:
    """Every line of every recording with each engine and, right after, with the code of ``against``."""
    rows, against_rows = [], []
    for rec in recordings:
        work = args.out / "work" / rec.name
        project, data = prepare_project(rec, folders[rec.name], work)
        for variant in args.variants:
            for engine in engines:
                row = run_line(rec, variant, folders[rec.name], project, data, work, args.minisim_python,
                               keep_storage=args.keep_storage, engine=engine)
                rows.append(row)
                print("  " + "  ".join(table_cells(row)), flush=True)
            if against is not None:
                row = run_line(rec, variant, folders[rec.name], project, data, work, args.minisim_python,
                               keep_storage=args.keep_storage, code=against)
                against_rows.append(row)
                print(f"  {args.against}: " + "  ".join(table_cells(row)), flush=True)
    return rows, against_rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="every recording (default: the default subset)")
    ap.add_argument("--only", action="append", metavar="NAME", help="only this recording (repeatable)")
    ap.add_argument("--variants", default="AB", help="CSV variants to run: A, B or AB (default AB)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="generator cache folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report and working folder")
    ap.add_argument("--minisim-python", type=Path, default=DEFAULT_MINISIM_PYTHON)
    ap.add_argument("--keep-storage", action="store_true", help="keep each run's stored outputs (large)")
    ap.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="figures to compare with")
    ap.add_argument("--save-baseline", action="store_true", help="write this run's figures as the baseline")
    ap.add_argument("--against", metavar="REV", default=None,
                    help="also run the native engine of git revision REV on every line, alternating with this "
                         "code, and compare the two in the same run (same machine, same load)")
    ap.add_argument("--engines", default="native",
                    help="comma-separated engines to run on the same recordings: native, caiman (default native)")
    ap.add_argument("--caiman-python", type=Path, default=None,
                    help="CaImAn's interpreter for engine caiman (default: $ACE_CAIMAN_PYTHON)")
    args = ap.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ("native", "caiman")]
    if unknown or not engines:
        raise SystemExit(f"--engines {args.engines!r}: expected a comma-separated list of native, caiman")
    if args.caiman_python is not None:
        os.environ["ACE_CAIMAN_PYTHON"] = str(args.caiman_python)
    if "caiman" in engines and not os.environ.get("ACE_CAIMAN_PYTHON"):
        raise SystemExit("--engines caiman needs CaImAn's Python: set ACE_CAIMAN_PYTHON or pass --caiman-python")
    recordings = select(args.only, everything=args.all)
    if not args.minisim_python.exists():
        raise SystemExit(f"{args.minisim_python} not found: run `make bench-realistic` (it creates .venv-minisim)")
    version = minisim_version(args.minisim_python)
    header = (f"Realistic benchmark: ace_neuro's CLI on minisim {version} recordings, scored with "
              f"minisim.testing.score (90%-energy IoU >= 0.5, detectable units); {os.cpu_count()} CPUs")
    print(header, flush=True)
    t0 = time.perf_counter()
    folders = ensure_generated(recordings, args.cache, args.minisim_python)
    print(f"  recordings ready in {time.perf_counter() - t0:.0f} s", flush=True)
    against = None if args.against is None else checkout_revision(args.against, args.out / "against")
    try:
        rows, against_rows = run_lines(recordings, folders, args, engines, against)
    finally:  # a killed or failed run leaves no worktree registered in this repository
        if against is not None:
            remove_checkout(against)
    print("\n" + format_table(rows, markdown=False))
    if len(engines) > 1:
        print("\nside by side (peak MiB: the whole process tree):\n" + side_by_side(rows, engines, markdown=False))
    comparison = compare_with_baseline(rows, args.baseline)
    if against is not None:
        print(f"\nrevision {args.against} ({against.name}), run alternately with this code:\n"
              + format_table(against_rows, markdown=False))
        comparison += compare_rows(rows, baseline_entries(against_rows),
                                   f"against revision {args.against} in this run (same machine, same load):")
    print("\n" + "\n".join(comparison))
    write_report(rows, recordings, args.out, header)
    if args.save_baseline:
        save_baseline(rows, args.baseline, header)
        print(f"baseline written to {args.baseline}")
    print(f"\nminisim {version}; total {time.perf_counter() - t0:.0f} s; report in {args.out}/realistic.md")
    return 0 if all(r.agrees and not r.error for r in rows) else 1
