"""Component evaluation: which CNMF-E components are accepted, and why.

Each component gets

* ``snr`` - from its trace alone. The raw trace ``C + YrA`` minus its baseline,
  in units of its noise ``sn``, is turned into per-frame tail probabilities
  under Gaussian noise; the least probable window of ``N = ceil(decay_time *
  frame_rate)`` consecutive frames (a transient lasts about that long) gives
  the SNR as the z-score with the same average log-probability (CaImAn's
  "event exceptionality" expressed as an SNR). Pure noise scores about 1-1.4,
  a single transient peaking at 5 noise units (decay 0.4 s at 30 fps) 3-4.
* ``r_value`` - the spatial correlation between the footprint and the movie
  during the component's active frames: up to 5 peaks of its denoised trace
  (above 30% of its maximum, 10 frames apart), frames ``[peak - 3, peak + 10]``;
  the background-subtracted movie ``Y - B`` is averaged over those frames and
  correlated with the footprint over its support. One streaming pass.

``accepted = snr >= min_SNR and r_value >= rval_thr``. A manual curation
(components rejected or restored by a person, :func:`load_curation` /
:func:`save_curation`, one JSON file per session) is applied on top and
survives re-running: it is stored outside the computed table.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import log_ndtr, ndtri_exp

from ..errors import ParameterError, ProjectError, RawDataError
from ..params import EvaluationParams
from .cnmfe.merge import core_supports, footprint_centroids
from .cnmfe.result import CnmfeResult
from .cnmfe.stream import FrameSource, auto_block_frames, validate_frames
from .cnmfe.update import pixel_region, spatial_products

log = logging.getLogger(__name__)

__all__ = [
    "EvaluationError", "Curation", "component_snr", "component_rvalues", "active_frames",
    "accepted_components", "apply_curation", "load_curation", "save_curation", "curation_from_dict",
    "curation_to_dict", "curation_version", "CurationFileError", "COLUMNS",
]

COLUMNS = ("component_id", "centroid_y", "centroid_x", "area_px", "snr", "r_value", "accepted", "reason")
N_PEAKS = 5
PEAK_BEFORE = 3
PEAK_AFTER = 10
PEAK_FRACTION = 0.3
SOLO_MIN_FRACTION = 0.25  # share of active frames that must stay when overlapping neighbours are left out
CENTROID_TOLERANCE_PX = 3.0


class EvaluationError(RawDataError):
    """Evaluation inputs that do not fit together, or an unreadable curation file."""


class EvaluationParameterError(ParameterError, EvaluationError):
    """A parameter value this stage cannot use; ``parameter`` names it."""


class CurationFileError(ProjectError, EvaluationError):
    """A line's curation file (the review window's choices) that cannot be used as it is."""


# --------------------------------------------------------------------------- SNR
def component_snr(result: CnmfeResult, *, decay_time: float, frame_rate: float | None = None) -> np.ndarray:
    """Event-exceptionality SNR of every component's raw trace, shape (K,).

    Parameters
    ----------
    result : CnmfeResult
    decay_time : float
        Indicator decay time in seconds (sets the window of ``ceil(decay_time * frame_rate)`` frames).
    frame_rate : float, optional
        Frames per second (default: the result's).
    """
    fr = float(result.frame_rate if frame_rate is None else frame_rate)
    if not decay_time > 0 or not fr > 0:
        raise EvaluationParameterError(f"decay_time ({decay_time}) and frame_rate ({fr}) must be positive", parameter='decay_time')
    K, T = result.C.shape
    if K == 0:
        return np.zeros(0)
    N = max(1, min(T, int(math.ceil(decay_time * fr))))
    sn = np.where(np.asarray(result.sn) > 0, result.sn, 1.0)
    raw = (result.C.astype(np.float64) + result.YrA) - np.asarray(result.baseline)[:, None]
    z = raw / sn[:, None]
    logp = log_ndtr(-z)  # log P(noise >= observed), per frame
    cs = np.cumsum(logp, axis=1)
    window = cs[:, N - 1:] - np.concatenate([np.zeros((K, 1)), cs[:, :-N]], axis=1)
    fitness = window.min(axis=1) / N
    return -ndtri_exp(np.minimum(fitness, -1e-12))


# --------------------------------------------------------------------------- r-values
def active_frames(C: np.ndarray, *, n_peaks: int = N_PEAKS, before: int = PEAK_BEFORE,
                  after: int = PEAK_AFTER, fraction: float = PEAK_FRACTION) -> list[np.ndarray]:
    """Frames around the largest peaks of each denoised trace (sorted frame indices per component)."""
    out = []
    K, T = C.shape
    for c in np.asarray(C, dtype=np.float64):
        m = c.max() if T else 0.0
        if m <= 0:
            out.append(np.zeros(0, int))
            continue
        interior = np.zeros(T, bool)
        if T >= 3:
            interior[1:-1] = (c[1:-1] >= c[:-2]) & (c[1:-1] > c[2:])
        interior[0] = T > 1 and c[0] > c[1]
        interior[-1] = T > 1 and c[-1] >= c[-2]
        cand = np.flatnonzero(interior & (c >= fraction * m))
        cand = cand[np.argsort(-c[cand], kind="stable")]
        peaks: list[int] = []
        for p in cand:
            if all(abs(int(p) - q) > after for q in peaks):
                peaks.append(int(p))
            if len(peaks) == n_peaks:
                break
        frames = set()
        for p in peaks:
            frames.update(range(max(0, p - before), min(T, p + after + 1)))
        out.append(np.array(sorted(frames), dtype=int))
    return out


def solo_active_frames(A, active: list[np.ndarray], n_frames: int, *,
                       min_fraction: float = SOLO_MIN_FRACTION,
                       support_fraction: float = 0.1) -> list[np.ndarray]:
    """Each component's active frames without those where an overlapping component is active too.

    When two neurons overlap, the data around one's transient also hold the other's whenever
    both fire; the footprint is then compared with a mixture and looks worse than it is. As
    long as at least ``min_fraction`` of a component's active frames remain (and at least
    one), only the frames where it fires alone are kept; otherwise all of them.

    Parameters
    ----------
    A : sparse matrix, shape (pixels, K)
        Footprints; two overlap where both exceed ``support_fraction`` of their maxima.
    active : list of int arrays
        :func:`active_frames` of every component.
    n_frames : int
    min_fraction, support_fraction : float
    """
    K = len(active)
    if K < 2:
        return list(active)
    support = core_supports(A, support_fraction)
    overlap = (support.T @ support).tocsr()
    masks = np.zeros((K, n_frames), bool)
    for k, fr in enumerate(active):
        masks[k, fr] = True
    out = []
    for k, fr in enumerate(active):
        nbrs = overlap.indices[overlap.indptr[k]:overlap.indptr[k + 1]]
        nbrs = nbrs[nbrs != k]
        if fr.size == 0 or nbrs.size == 0:
            out.append(fr)
            continue
        alone = fr[~masks[nbrs][:, fr].any(axis=0)]
        out.append(alone if alone.size >= max(1, min_fraction * fr.size) else fr)
    return out


def component_rvalues(frames, result: CnmfeResult, *, block_frames: int | None = None,
                      support_fraction: float = 0.1) -> np.ndarray:
    """Spatial r-value of each component (one streaming pass), shape (K,); NaN if never active.

    Parameters
    ----------
    frames : array-like, shape (T, H, W)
        The movie CNMF-E was run on.
    result : CnmfeResult
    block_frames : int
    support_fraction : float
        Pixels where the footprint exceeds this fraction of its maximum form the support.
    """
    T, H, W = validate_frames(frames)
    block_frames = auto_block_frames((H, W)) if block_frames is None else int(block_frames)
    if (H, W) != tuple(result.dims) or T != result.n_frames:
        raise EvaluationError(f"movie is {T} frames of {H}x{W} but the CNMF-E result has {result.n_frames} "
                              f"frames of {result.dims[0]}x{result.dims[1]}: pass the movie CNMF-E was run on")
    K = result.n_components
    if K == 0:
        return np.zeros(0)
    A = result.A.tocsc()
    act = solo_active_frames(A, active_frames(result.C), T, support_fraction=support_fraction)
    act_mask = np.zeros((K, T), bool)
    for k, fr in enumerate(act):
        act_mask[k, fr] = True
    supports = []
    for k in range(K):
        rows = A.indices[A.indptr[k]:A.indptr[k + 1]]
        vals = A.data[A.indptr[k]:A.indptr[k + 1]]
        keep = vals >= support_fraction * vals.max() if vals.size else np.zeros(0, bool)
        order = np.argsort(rows[keep], kind="stable")  # the order of a region's mask pixels
        supports.append((rows[keep][order], vals[keep][order]))
    regions = [pixel_region(rows, result.dims) for rows, _ in supports]
    boxes = spatial_products(FrameSource(frames, block_frames=block_frames), A, result.C, result.ring_model(),
                             result.dims, regions, weights=act_mask)
    sums = [box[r.mask] for box, r in zip(boxes, regions)]
    out = np.full(K, np.nan)
    for k in range(K):
        if len(act[k]) == 0 or len(supports[k][0]) < 2:
            continue
        a = supports[k][1].astype(np.float64)
        y = sums[k] / len(act[k])
        a = a - a.mean()
        y = y - y.mean()
        den = math.sqrt(float(a @ a) * float(y @ y))
        out[k] = float(a @ y) / den if den > 0 else 0.0
    return out


# --------------------------------------------------------------------------- curation
@dataclass(frozen=True)
class Curation:
    """A person's decisions for one session, applied on top of the automatic evaluation.

    Attributes
    ----------
    rejected, restored : tuple of int
        Component ids rejected despite passing / accepted despite failing.
    note : str
    updated : str
        ISO 8601 time of the last change (UTC).
    centroids : dict
        ``{id: (y, x)}`` where each curated component was, so decisions follow
        their component if a re-run renumbers components (matched within 3 px).
    """

    rejected: tuple[int, ...] = ()
    restored: tuple[int, ...] = ()
    note: str = ""
    updated: str = ""
    centroids: dict = field(default_factory=dict)

    def __post_init__(self):
        both = set(self.rejected) & set(self.restored)
        if both:
            raise CurationFileError(f"components {sorted(both)} are both rejected and restored in the curation; "
                                  f"keep each id in one list")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_curation(path: str | os.PathLike) -> Curation:
    """Read a curation JSON file; a missing file is an empty curation.

    Raises
    ------
    CurationFileError
        If the file is not valid JSON of the expected shape (names the file and the field).
    """
    p = Path(path)
    if not p.exists():
        return Curation()
    try:
        d = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CurationFileError(f"curation file {p} is not readable JSON ({e}); fix or delete it", file=p) from None
    return curation_from_dict(d, source=f"curation file {p}")


def curation_from_dict(d, *, source: str = "curation") -> Curation:
    """A :class:`Curation` from its JSON form (a curation file, or a stored snapshot of one)."""
    if not isinstance(d, dict):
        raise CurationFileError(f"{source}: expected a JSON object with 'rejected' and 'restored' lists")

    def ids(name):
        v = d.get(name, [])
        if not isinstance(v, (list, tuple)) or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v):
            raise CurationFileError(f"{source}: '{name}' must be a list of component ids (whole numbers >= 0)")
        return tuple(sorted(set(v)))

    cents = d.get("centroids", {}) or {}
    if not isinstance(cents, dict):
        raise CurationFileError(f"{source}: 'centroids' must be an object id -> [y, x]")
    try:
        cents = {int(k): (float(v[0]), float(v[1])) for k, v in cents.items()}
    except (TypeError, ValueError, IndexError):
        raise CurationFileError(f"{source}: 'centroids' must map ids to [y, x] pairs") from None
    return Curation(rejected=ids("rejected"), restored=ids("restored"), note=str(d.get("note", "") or ""),
                    updated=str(d.get("updated", "") or ""), centroids=cents)


def curation_version(curation: Curation) -> str:
    """Short hash of a curation's decisions (not of when it was saved): equal decisions, equal version."""
    decisions = {k: v for k, v in curation_to_dict(curation).items() if k != "updated"}
    return hashlib.sha256(json.dumps(decisions, sort_keys=True).encode()).hexdigest()[:16]


def curation_to_dict(curation: Curation) -> dict:
    """The JSON form of a curation (what :func:`save_curation` writes, without touching ``updated``)."""
    return {"rejected": sorted(int(i) for i in curation.rejected),
            "restored": sorted(int(i) for i in curation.restored),
            "note": curation.note, "updated": curation.updated,
            "centroids": {str(k): [round(v[0], 2), round(v[1], 2)] for k, v in sorted(curation.centroids.items())}}


def save_curation(path: str | os.PathLike, curation: Curation, *, table: pd.DataFrame | None = None) -> Path:
    """Write a curation atomically (temporary file in the same folder, then rename).

    ``updated`` is set to now. When ``table`` (the evaluation table) is given,
    the centroids of the curated components are stored with it.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cents = dict(curation.centroids)
    if table is not None and len(table):
        by_id = table.set_index("component_id")
        for i in (*curation.rejected, *curation.restored):
            if i in by_id.index:
                cents[int(i)] = (float(by_id.at[i, "centroid_y"]), float(by_id.at[i, "centroid_x"]))
    payload = curation_to_dict(dataclasses.replace(curation, updated=_now(), centroids=cents))
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def _resolve(ids: Sequence[int], curation: Curation, table: pd.DataFrame) -> list[int]:
    """Map curated ids to current component ids, following stored centroids."""
    out = []
    cy = table["centroid_y"].to_numpy()
    cx = table["centroid_x"].to_numpy()
    cid = table["component_id"].to_numpy()
    for i in ids:
        c = curation.centroids.get(int(i))
        if c is None:
            if i in set(cid.tolist()):
                out.append(int(i))
            else:
                log.warning("curation names component %d, which does not exist; ignored", i)
            continue
        d = np.hypot(cy - c[0], cx - c[1])
        if len(d) and np.nanmin(d) <= CENTROID_TOLERANCE_PX:
            j = int(cid[int(np.nanargmin(d))])
            if j != i:
                log.info("curated component %d now has id %d (same place)", i, j)
            out.append(j)
        else:
            log.warning("curated component %d (at y=%.1f, x=%.1f) has no counterpart in this result; ignored",
                        i, c[0], c[1])
    return out


def apply_curation(table: pd.DataFrame, curation: Curation) -> pd.DataFrame:
    """Return a copy of the evaluation table with the manual decisions applied."""
    out = table.copy()
    if not len(out):
        return out
    for ids, accepted, reason in ((curation.rejected, False, "manual: rejected"),
                                  (curation.restored, True, "manual: restored")):
        for j in _resolve(ids, curation, out):
            row = out.index[out["component_id"] == j]
            out.loc[row, "accepted"] = accepted
            auto = out.loc[row, "reason"].iloc[0]
            out.loc[row, "reason"] = reason + (f" (automatic: {auto})" if auto and auto != "passed" else "")
    return out


# --------------------------------------------------------------------------- table
def accepted_components(frames, result: CnmfeResult, params: EvaluationParams | None = None, *,
                        decay_time: float | None = None, curation: Curation | None = None,
                        block_frames: int | None = None) -> pd.DataFrame:
    """Evaluate every component and decide which are accepted.

    Parameters
    ----------
    frames : array-like, shape (T, H, W)
        The movie CNMF-E was run on (streamed once for the r-values).
    result : CnmfeResult
    params : EvaluationParams, optional
        ``min_SNR`` and ``rval_thr``.
    decay_time : float, optional
        Seconds; default: the value CNMF-E used (``result.params['decay_time']``, else 0.4).
    curation : Curation, optional
        Manual decisions applied on top.
    block_frames : int, optional
        Frames per block read (default: about 64 MiB of float32 frames).

    Returns
    -------
    pandas.DataFrame
        One row per component, columns ``component_id, centroid_y, centroid_x,
        area_px, snr, r_value, accepted, reason``.
    """
    params = EvaluationParams() if params is None else params
    if decay_time is None:
        decay_time = float(dict(result.params).get("decay_time", 0.4))
    snr = component_snr(result, decay_time=decay_time)
    rval = component_rvalues(frames, result, block_frames=block_frames)
    cen = footprint_centroids(result.A, result.dims) if result.n_components else np.zeros((0, 2))
    area = np.diff(result.A.tocsc().indptr) if result.n_components else np.zeros(0, int)
    accepted, reasons = [], []
    for s, r in zip(snr, rval):
        why = []
        if not s >= params.min_SNR:
            why.append(f"snr {s:.2f} < min_SNR {params.min_SNR:g}")
        if not np.isfinite(r):
            why.append("no active frames for an r-value")
        elif r < params.rval_thr:
            why.append(f"r_value {r:.2f} < rval_thr {params.rval_thr:g}")
        accepted.append(not why)
        reasons.append("; ".join(why) if why else "passed")
    table = pd.DataFrame({
        "component_id": np.arange(result.n_components, dtype=np.int64),
        "centroid_y": cen[:, 0].astype(float), "centroid_x": cen[:, 1].astype(float),
        "area_px": np.asarray(area, dtype=np.int64), "snr": snr.astype(float), "r_value": rval.astype(float),
        "accepted": np.array(accepted, dtype=bool), "reason": pd.Series(reasons, dtype=object),
    }, columns=list(COLUMNS))
    if curation is not None:
        table = apply_curation(table, curation)
    return table
