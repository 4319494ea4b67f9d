"""Project side: a generated minisim recording as the lab would hold it (runs in the project's .venv).

* :func:`write_daq_session` - the cached ``movie.avi`` re-written as a UCLA Miniscope V4 DAQ session
  (``Miniscope/0.avi, 1.avi, ...`` of 1,000 FFV1 frames, ``timeStamps.csv``, ``metaData.json``) with
  :func:`ace_neuro.synthetic.formats.write_ucla_v4_frames`, streaming.
* :func:`lab_parameter_row` - the row a lab first writes in ``analysis_parameters.csv``: ``gSig`` =
  the soma radius in pixels, ``gSiz = 4 gSig + 1``, the usual thresholds, ``max_shifts`` sized to the
  motion; ``suggested=True`` is the same row with ``use_suggested_params = TRUE``.
* :func:`write_project` - ``experiments.csv`` and ``analysis_parameters.csv`` for a set of lines.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from ace_neuro.readers.base import VideoChunk, decode_chunk, probe_video
from ace_neuro.synthetic.formats import write_ucla_v4_frames
from ace_neuro.synthetic.project import EXPERIMENT_COLUMNS, PARAMETER_COLUMNS

from .catalogue import Recording

FRAMES_PER_FILE = 1000
SUBJECT = "minisim"
PARAMETER_COLUMNS_WITH_SUGGESTION = (*PARAMETER_COLUMNS, "use_suggested_params")


@dataclass(frozen=True)
class Line:
    """One row of the project's two CSVs.

    Attributes
    ----------
    line_num : int
    session_relpath : str
        ``calcium imaging directory`` (relative to the data path).
    parameters : dict of str -> str
        The ``analysis_parameters.csv`` cells (as text).
    comment : str
    """

    line_num: int
    session_relpath: str
    parameters: dict
    comment: str = ""


def movie_blocks(movie_path: Path, block_frames: int = 200) -> tuple[int, Iterator[np.ndarray]]:
    """``(n_frames, uint8 (B, H, W) blocks)`` of the generator's lossless movie."""
    n_frames, _, _ = probe_video(Path(movie_path))
    return n_frames, decode_chunk(VideoChunk(Path(movie_path), n_frames, 0), block_frames=block_frames)


def write_daq_session(movie_path: Path, session_dir: Path, *, fps: float, seed: int) -> Path:
    """Write the movie as a V4 DAQ session folder (nominal frame times ``i / fps``).

    Does nothing when ``session_dir`` already holds a session (the folder is renamed into place
    only once complete).
    """
    session_dir = Path(session_dir)
    if (session_dir / "Miniscope" / "timeStamps.csv").is_file():
        return session_dir
    n_frames, blocks = movie_blocks(movie_path)
    return write_ucla_v4_frames(session_dir, blocks, np.arange(n_frames) / float(fps), frame_rate=fps,
                                frames_per_file=FRAMES_PER_FILE, codec="FFV1", seed=seed)


def soma_gsig_px(rec: Recording) -> int:
    """The lab's first ``gSig``: the soma radius in pixels, rounded."""
    return max(1, int(round(rec.soma_radius_um / rec.pixel_size_um)))


def _pair(value) -> str:
    return f"({value}, {value})"


def lab_parameter_row(rec: Recording, line_num: int, *, suggested: bool) -> dict[str, str]:
    """The ``analysis_parameters.csv`` row of one line (cells as the lab writes them).

    ``max_shifts`` is the motion clamp in pixels rounded up, plus 3 (5 without motion);
    ``gSig_filt`` (the motion high-pass) is ``gSig``; the spectrogram window fits the recording.
    """
    g = soma_gsig_px(rec)
    max_shift = max(5, int(math.ceil(rec.max_shift_px)) + 3)
    window = max(2.0, float(math.floor(min(30.0, rec.duration_s / 4))))
    return {
        "line number": str(line_num), "id": SUBJECT, "crop_coords": "", "detrend_method": "", "df_over_f": "FALSE",
        "apply_motion_correction": "TRUE", "pw_rigid": "TRUE", "max_shifts": _pair(max_shift),
        "gSig_filt": _pair(g), "strides": "(48, 48)", "overlaps": "(24, 24)", "max_deviation_rigid": "3",
        "border_nan": "copy", "gSig": _pair(g), "gSiz": _pair(4 * g + 1), "min_corr": "0.8", "min_pnr": "10",
        "ring_size_factor": "1.4", "p": "1", "decay_time": "0.5", "merge_thr": "0.7", "min_SNR": "2.5",
        "rval_thr": "0.85", "derivative_for_estimates": "first", "event_height": "5",
        "filter_miniscope_data": "TRUE", "n": "2", "cut": "(0.1, 1.5)", "ftype": "butter", "btype": "bandpass",
        "window_length": f"{window:g}", "window_step": f"{max(0.5, window / 10):g}", "freq_lims": "(0, 15)",
        "time_bandwidth": "2", "use_suggested_params": "TRUE" if suggested else "FALSE",
    }


def write_project(project_dir: Path, lines: Sequence[Line]) -> Path:
    """Write ``experiments.csv`` and ``analysis_parameters.csv`` (one row per line) into ``project_dir``."""
    project_dir = Path(project_dir)
    project_dir.mkdir(parents=True, exist_ok=True)
    experiments = [{"line number": str(ln.line_num), "id": SUBJECT, "date (YYMMDD)": "260101",
                    "calcium imaging directory": ln.session_relpath, "comments": ln.comment} for ln in lines]
    pd.DataFrame(experiments, columns=list(EXPERIMENT_COLUMNS)).fillna("").to_csv(
        project_dir / "experiments.csv", index=False)
    pd.DataFrame([ln.parameters for ln in lines], columns=list(PARAMETER_COLUMNS_WITH_SUGGESTION)).fillna("").to_csv(
        project_dir / "analysis_parameters.csv", index=False)
    return project_dir
