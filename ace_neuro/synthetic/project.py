"""A complete synthetic lab project: CSV files, raw sessions in the three formats, ground truth.

:func:`write_demo_project` writes::

    <out>/project/experiments.csv            the lab's wide layout, with its habits (a documentation
                                             row, Windows paths, NA cells, empty trailing rows)
    <out>/project/analysis_parameters.csv    one row per line, cells as text ("(3, 3)", TRUE, None)
    <out>/data/<subject>/<date>/<session>/   one raw session folder per line
    <out>/ground_truth/<line>.npz            the truth of each line (:func:`load_ground_truth`)

The parameters written are ones the synthetic data are analysable with: ``gSig`` matches
the somas, ``max_shifts`` bounds the simulated motion, ``pw_rigid`` is on where the motion
is non-rigid, and the spectrogram window fits in the recording.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ace_neuro.errors import ParameterError
from ace_neuro.synthetic.formats import write_onix_session, write_ucla_v3_legacy_session, write_ucla_v4_session
from ace_neuro.synthetic.model import (
    GroundTruth,
    SyntheticConfig,
    SyntheticConfigError,
    load_ground_truth,
    save_ground_truth,
    simulate_ground_truth,
)

log = logging.getLogger(__name__)

#: The four kinds of session the demo mixes, in the order they are assigned to lines.
DEMO_FORMATS = ("ucla_v4_ffv1", "ucla_v4_grey_dropped", "ucla_v3_legacy", "onix")
#: Default demo: line number -> kind of session.
DEMO_LINES: Mapping[int, str] = {96: "ucla_v4_ffv1", 97: "ucla_v4_grey_dropped", 98: "ucla_v3_legacy", 99: "onix"}

EXPERIMENT_COLUMNS = ("line number", "id", "date (YYMMDD)", "calcium imaging directory", "Box Calcium Folder ID",
                      "ephys directory", "rat weight (kg)", "species", "sex", "age (days)", "systemic drug",
                      "comments")
PARAMETER_COLUMNS = ("line number", "id", "crop_coords", "detrend_method", "df_over_f", "apply_motion_correction",
                     "pw_rigid", "max_shifts", "gSig_filt", "strides", "overlaps", "max_deviation_rigid",
                     "border_nan", "gSig", "gSiz", "min_corr", "min_pnr", "ring_size_factor", "p", "decay_time",
                     "merge_thr", "min_SNR", "rval_thr", "derivative_for_estimates", "event_height",
                     "filter_miniscope_data", "n", "cut", "ftype", "btype", "window_length", "window_step",
                     "freq_lims", "time_bandwidth")

# Per kind: how the session is recorded and simulated.
_RECIPES: dict[str, dict[str, Any]] = {
    "ucla_v4_ffv1": {"writer": "ucla_v4", "codec": "FFV1", "frame_rate": 30.0, "motion": "rigid",
                     "subject": "R230706B", "date": "230901", "leaf": "calcium", "windows": True},
    "ucla_v4_grey_dropped": {"writer": "ucla_v4", "codec": "GREY", "frame_rate": 29.97, "motion": "rigid",
                             "subject": "R230706B", "date": "230902", "leaf": "calcium", "drops": True},
    "ucla_v3_legacy": {"writer": "ucla_v3_legacy", "codec": "GREY", "frame_rate": 20.0, "motion": "none",
                       "subject": "R221115A", "date": "221120", "leaf": "miniscope"},
    "onix": {"writer": "onix", "codec": "FFV1", "frame_rate": 30.0, "motion": "nonrigid",
             "subject": "R230801C", "date": "230915", "leaf": "onix"},
}


class DemoProjectError(ParameterError):
    """An option of :func:`write_demo_project` that cannot be honoured."""


@dataclass(frozen=True)
class DemoProject:
    """What :func:`write_demo_project` wrote.

    Attributes
    ----------
    project_path : Path
        Folder with ``experiments.csv`` and ``analysis_parameters.csv``.
    data_path : Path
        Root of the raw sessions (the ``calcium imaging directory`` cells are relative to it).
    ground_truth : mapping int -> Path
        ``.npz`` truth file of each line.
    formats : mapping int -> str
        Kind of session of each line (one of :data:`DEMO_FORMATS`).
    session_dirs : mapping int -> Path
        Raw session folder of each line.
    configs : mapping int -> SyntheticConfig
        The simulation settings of each line.
    dropped_frames : mapping int -> tuple of int
        Truth frame indices left out of each line's video and timestamps.
    """

    project_path: Path
    data_path: Path
    ground_truth: Mapping[int, Path]
    formats: Mapping[int, str]
    session_dirs: Mapping[int, Path]
    configs: Mapping[int, SyntheticConfig]
    dropped_frames: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def ground_truth_paths(self) -> Mapping[int, Path]:
        return self.ground_truth

    @property
    def experiments_csv(self) -> Path:
        return self.project_path / "experiments.csv"

    @property
    def parameters_csv(self) -> Path:
        return self.project_path / "analysis_parameters.csv"

    def truth(self, line_num: int) -> GroundTruth:
        """Load the ground truth of one line."""
        if line_num not in self.ground_truth:
            raise DemoProjectError(f"line {line_num} is not in this demo project (lines {sorted(self.ground_truth)})")
        return load_ground_truth(self.ground_truth[line_num])


def _line_kinds(lines: Sequence[int] | Mapping[int, str]) -> dict[int, str]:
    if isinstance(lines, Mapping):
        kinds = dict(lines)
    else:
        kinds = {ln: DEMO_FORMATS[i % len(DEMO_FORMATS)] for i, ln in enumerate(lines)}
    if not kinds:
        raise DemoProjectError("lines is empty: give at least one line number")
    for ln, kind in kinds.items():
        if isinstance(ln, bool) or not isinstance(ln, int) or ln < 0:
            raise DemoProjectError(f"line number {ln!r}: give whole numbers >= 0")
        if kind not in _RECIPES:
            raise DemoProjectError(f"line {ln}: unknown session kind {kind!r}; give one of {DEMO_FORMATS}")
    return kinds


def _session_relpath(line_num: int, recipe: Mapping[str, Any], repeat: int) -> tuple[str, Path]:
    """(text written in experiments.csv, folder relative to the data path)."""
    leaf = recipe["leaf"] + (f"_{line_num}" if repeat else "")
    parts = (recipe["subject"], recipe["date"], leaf)
    text = "\\".join(parts) if recipe.get("windows") else "/".join(parts)
    return text, Path(*parts)


def _config_for(kind: str, line_num: int, *, seed: int, height: int, width: int, n_frames: int,
                n_neurons: int | None, overrides: Mapping[str, Any]) -> SyntheticConfig:
    recipe = _RECIPES[kind]
    if n_neurons is None:
        n_neurons = max(1, int(round(40 * height * width / 200.0 ** 2)))
    max_shift = min(4.0, min(height, width) / 16.0)
    values = dict(height=height, width=width, n_frames=n_frames, frame_rate=recipe["frame_rate"],
                  n_neurons=n_neurons, motion=recipe["motion"], max_shift_px=max_shift,
                  nonrigid_amplitude_px=min(1.5, max_shift / 2), seed=seed * 1000 + line_num)
    values.update(overrides)
    return SyntheticConfig(**values)


def _fmt_pair(p) -> str:
    return f"({p[0]}, {p[1]})"


def _parameter_row(line_num: int, kind: str, cfg: SyntheticConfig, subject: str,
                   crop: tuple[int, int, int, int] | None) -> dict[str, str]:
    motion_bound = int(math.ceil(cfg.max_shift_px + (cfg.nonrigid_amplitude_px if cfg.motion == "nonrigid" else 0)))
    max_shifts = motion_bound + 3
    window = max(2.0, float(math.floor(min(30.0, cfg.duration_s / 4))))
    row = {
        "line number": str(line_num), "id": subject,
        "crop_coords": "" if crop is None else "(" + ", ".join(str(int(c)) for c in crop) + ")",
        "detrend_method": {"ucla_v4_grey_dropped": "median", "onix": "None"}.get(kind, ""),
        "df_over_f": "FALSE",
        "apply_motion_correction": "FALSE" if cfg.motion == "none" else "TRUE",
        "pw_rigid": "TRUE" if cfg.motion == "nonrigid" else "FALSE",
        "max_shifts": _fmt_pair((max_shifts, max_shifts)),
        "gSig_filt": "(3, 3)", "strides": "(48, 48)", "overlaps": "(24, 24)",
        "max_deviation_rigid": str(int(math.ceil(cfg.nonrigid_amplitude_px)) + 2),
        "border_nan": "copy",
        "gSig": "(3, 3)", "gSiz": "(13, 13)", "min_corr": "0.8", "min_pnr": "10", "ring_size_factor": "1.4",
        "p": str(cfg.ar_order), "decay_time": f"{cfg.decay_time:g}", "merge_thr": "0.7",
        "min_SNR": "2.5", "rval_thr": "0.85",
        "derivative_for_estimates": "first", "event_height": "5",
        "filter_miniscope_data": "TRUE", "n": "2", "cut": "(0.1, 1.5)", "ftype": "butter", "btype": "bandpass",
        "window_length": f"{window:g}", "window_step": f"{max(0.5, window / 10):g}",
        "freq_lims": "(0, 15)", "time_bandwidth": "2",
    }
    if kind == "ucla_v3_legacy":
        row["detrend_method"] = "NA"
    return row


def _csv_text(columns: Sequence[str], rows: Sequence[Mapping[str, str]], trailing_empty: int = 0) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([r.get(c, "") for c in columns])
    for _ in range(trailing_empty):
        w.writerow([""] * len(columns))
    return buf.getvalue()


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, newline="")
    tmp.replace(path)


def write_demo_project(out_dir: str | Path, *, lines: Sequence[int] | Mapping[int, str] = DEMO_LINES,
                       seed: int = 0, height: int = 200, width: int = 200, n_frames: int = 1000,
                       n_neurons: int | None = None, frames_per_file: int = 250,
                       crop_coords: Mapping[int, tuple[int, int, int, int]] | None = None,
                       config_overrides: Mapping[str, Any] | None = None, block_frames: int = 200,
                       overwrite: bool = True) -> DemoProject:
    """Write a synthetic project: CSVs, one raw session per line, and the ground truth.

    Parameters
    ----------
    out_dir : path
        Receives ``project/``, ``data/`` and ``ground_truth/``.
    lines : sequence of int or mapping int -> str
        Line numbers; a sequence cycles through :data:`DEMO_FORMATS`
        (UCLA V4 FFV1, UCLA V4 GREY with dropped frames, legacy V3, ONIX), a mapping
        names each line's kind.
    seed : int
        Base seed; line ``n`` is simulated with seed ``1000 * seed + n``.
    height, width, n_frames : int
        Size of every recording (the benchmark uses 608 x 608 x 10,000; it streams).
    n_neurons : int, optional
        Neurons per recording; default 40 per 200 x 200 pixels.
    frames_per_file : int
        AVI chunk length of the UCLA formats (the real DAQ uses 1000; the demo uses
        fewer so several chunks are read).
    crop_coords : mapping int -> (x0, y0, x1, y1), optional
        ``crop_coords`` cells to write; empty otherwise.
    config_overrides : mapping, optional
        Extra :class:`SyntheticConfig` fields applied to every line.
    block_frames : int
        Frames rendered at a time while writing videos.
    overwrite : bool
        Replace the files and session folders this function writes (only those) if
        they exist; otherwise an existing one is an error.

    Returns
    -------
    DemoProject
    """
    kinds = _line_kinds(lines)
    crop_coords = dict(crop_coords or {})
    unknown = sorted(set(crop_coords) - set(kinds))
    if unknown:
        raise DemoProjectError(f"crop_coords given for lines {unknown} that are not in lines {sorted(kinds)}")
    out_dir = Path(out_dir)
    project_path, data_path, truth_dir = out_dir / "project", out_dir / "data", out_dir / "ground_truth"
    for p in (project_path, data_path, truth_dir):
        p.mkdir(parents=True, exist_ok=True)

    experiments, parameters = [], []
    truths, formats, sessions, configs, drops_by_line = {}, {}, {}, {}, {}
    seen_dirs: set[str] = set()
    for line_num, kind in kinds.items():
        recipe = _RECIPES[kind]
        try:
            cfg = _config_for(kind, line_num, seed=seed, height=height, width=width, n_frames=n_frames,
                              n_neurons=n_neurons, overrides=config_overrides or {})
        except SyntheticConfigError as exc:
            raise DemoProjectError(f"line {line_num} ({kind}): {exc}") from None
        key = f"{recipe['subject']}/{recipe['date']}/{recipe['leaf']}"
        text, rel = _session_relpath(line_num, recipe, repeat=key in seen_dirs)
        seen_dirs.add(key)
        session = data_path / rel
        truth_path = truth_dir / f"{line_num}.npz"
        for existing in (session, truth_path):
            if existing.exists():
                if not overwrite:
                    raise DemoProjectError(f"{existing} exists; pass overwrite=True or choose another out_dir")
                shutil.rmtree(existing) if existing.is_dir() else existing.unlink()

        truth = simulate_ground_truth(cfg)
        drops: tuple[int, ...] = ()
        if recipe.get("drops") and cfg.n_frames >= 20:
            t = cfg.n_frames
            drops = (t // 3, t // 3 + 1, (2 * t) // 3)
        if recipe["writer"] == "ucla_v4":
            write_ucla_v4_session(session, truth, frames_per_file=frames_per_file, codec=recipe["codec"],
                                  drop_frames=drops, block_frames=block_frames)
        elif recipe["writer"] == "ucla_v3_legacy":
            write_ucla_v3_legacy_session(session, truth, frames_per_file=frames_per_file, codec=recipe["codec"],
                                         drop_frames=drops, block_frames=block_frames)
        else:
            write_onix_session(session, truth, codec=recipe["codec"], drop_frames=drops, block_frames=block_frames)
        save_ground_truth(truth, truth_path)
        log.info("demo line %d: %s session at %s", line_num, kind, session)

        experiments.append({
            "line number": str(line_num), "id": recipe["subject"], "date (YYMMDD)": recipe["date"],
            "calcium imaging directory": text,
            "Box Calcium Folder ID": str(210000000000 + line_num) if line_num % 2 == 0 else "NA",
            "ephys directory": "NA" if recipe["writer"] == "onix" else text.replace(recipe["leaf"], "ephys"),
            "rat weight (kg)": f"{0.35 + 0.01 * (line_num % 10):.2f}",
            "species": "Rattus norvegicus", "sex": "M" if line_num % 2 else "F", "age (days)": str(80 + line_num % 7),
            "systemic drug": "None" if line_num % 2 else "saline 1 ml/kg i.p.",
            "comments": f"synthetic {kind} session, {cfg.n_frames} frames at {cfg.frame_rate:g} fps; "
                        f"truth in ground_truth/{line_num}.npz",
        })
        parameters.append(_parameter_row(line_num, kind, cfg, recipe["subject"], crop_coords.get(line_num)))
        truths[line_num], formats[line_num], sessions[line_num] = truth_path, kind, session
        configs[line_num], drops_by_line[line_num] = cfg, drops

    doc_row = {"line number": "line number (int)", "id": "subject id", "date (YYMMDD)": "YYMMDD",
               "calcium imaging directory": "session folder relative to the data path",
               "Box Calcium Folder ID": "Box folder id", "ephys directory": "relative to the data path",
               "rat weight (kg)": "kg", "species": "Latin name", "sex": "M, F, U or O", "age (days)": "days",
               "systemic drug": "drug, dose, route", "comments": "free text"}
    _write_text_atomic(project_path / "experiments.csv",
                       _csv_text(EXPERIMENT_COLUMNS, [doc_row] + experiments, trailing_empty=3))
    _write_text_atomic(project_path / "analysis_parameters.csv",
                       _csv_text(PARAMETER_COLUMNS, parameters, trailing_empty=1))
    return DemoProject(project_path=project_path, data_path=data_path, ground_truth=truths, formats=formats,
                       session_dirs=sessions, configs=configs, dropped_frames=drops_by_line)
