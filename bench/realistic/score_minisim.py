"""Score an exported estimate with minisim's own metrics (run by ``.venv-minisim/bin/python``).

    .venv-minisim/bin/python -m bench.realistic.score_minisim --truth-dir CACHE_DIR --estimate EST.npz --out S.json

The truth is minisim's ``GroundTruth`` as the generator saved it (``truth.zarr``). The estimate
(written by the project-side runner) holds the accepted components' footprints ``A_*`` (CSC,
pixels x K, pixel ``y * W + x``, raw-frame coordinates), ``C``, ``S`` and, when motion was
corrected, ``estimate_shifts``: the *correction* trajectory minisim's ``Estimate.shifts``
expects, i.e. minus ace_neuro's ``rigid_shifts`` (content displacements), and
``estimate_patch_shifts`` (T, ny, nx, 2) likewise negated.

Headline numbers are ``minisim.testing.score`` with its defaults: footprints binarised to their
90 %-energy masks, Hungarian matching on IoU, true positives at IoU >= 0.5, against the
detectable units, a global footprint offset read off the motion trajectories (or estimated from
the footprints when the recording has no motion). The breakdowns (in-focus recall, recall by
observed blur, mean IoU and median trace r of the matched pairs) come from
``minisim.hungarian_match`` with the same offset, ``trace_pearson`` and ``shift_rmse``.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from minisim.metrics import hungarian_match, shift_rmse, trace_pearson
from minisim.recording import Recording as MinisimRecording
from minisim.testing import Estimate, score

#: Edges (px) of the observed-blur bins: [0, 3), [3, 5), [5, 7), [7, inf).
BLUR_EDGES = (0.0, 3.0, 5.0, 7.0, np.inf)
MATCH_THRESHOLD = 0.5


def load_estimate(path: Path, frame_shape: tuple[int, int]) -> dict:
    """The exported estimate: dense (K, H, W) footprints and the optional arrays."""
    with np.load(path, allow_pickle=False) as z:
        A = sp.csc_matrix((z["A_data"], z["A_indices"], z["A_indptr"]), shape=tuple(z["A_shape"]))
        out = {"A": A.toarray().T.reshape(A.shape[1], *frame_shape), "C": z["C"], "S": z["S"]}
        for name in ("estimate_shifts", "estimate_patch_shifts"):
            out[name] = z[name] if name in z.files else None
    return out


def blur_bins(blur_px: np.ndarray, matched: np.ndarray) -> list[dict]:
    """Recall of detectable units per observed-blur bin (see :data:`BLUR_EDGES`)."""
    rows = []
    for lo, hi in zip(BLUR_EDGES[:-1], BLUR_EDGES[1:]):
        inside = (blur_px >= lo) & (blur_px < hi)
        n = int(inside.sum())
        label = f"<{hi:g}" if lo == 0 else (f">={lo:g}" if np.isinf(hi) else f"{lo:g}-{hi:g}")
        rows.append({"bin": label, "n": n, "n_matched": int(matched[inside].sum()),
                     "recall": float(matched[inside].mean()) if n else float("nan")})
    return rows


def motion_scores(est: dict, shifts_true: np.ndarray | None) -> dict:
    """Rigid and patch RMSE (offset-aligned, px) and the no-correction baseline; None without motion."""
    if shifts_true is None:
        return {"rigid_rmse": None, "no_correction_rmse": None, "patch_rmse": None}
    out = {"no_correction_rmse": shift_rmse(np.zeros_like(shifts_true), shifts_true, correction=True, align=True),
           "rigid_rmse": None, "patch_rmse": None}
    if est["estimate_shifts"] is not None:
        out["rigid_rmse"] = shift_rmse(est["estimate_shifts"], shifts_true, correction=True, align=True)
    patches = est["estimate_patch_shifts"]
    if patches is not None:
        n_patches = int(np.prod(patches.shape[1:3]))
        out["patch_rmse"] = shift_rmse(patches.reshape(-1, 2), np.repeat(shifts_true, n_patches, axis=0),
                                       correction=True, align=True)
    return out


def score_estimate(truth_dir: Path, estimate_path: Path) -> dict:
    """Everything the runner's table takes from minisim, as plain values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = MinisimRecording.load(truth_dir / "truth.zarr").ground_truth
    est = load_estimate(estimate_path, tuple(gt.fov_shape))
    report = score(Estimate(A=est["A"], C=est["C"], S=est["S"], shifts=est["estimate_shifts"]), gt)
    det = gt.detectable_subset()
    match = hungarian_match(est["A"], det.A_observed, metric="iou", shift=report.footprint_shift)
    pairs = match.matched_pairs(MATCH_THRESHOLD)
    matched = np.zeros(det.n_units, bool)
    matched[[j for _, j in pairs]] = True
    in_focus = np.asarray(det.in_focus, bool)
    r = trace_pearson(est["C"], det.C, pairs) if pairs else np.zeros(0)
    return {
        "minisim_version": importlib.metadata.version("minisim"),
        "report": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(report).items()},
        "n_matched_hungarian": len(pairs),
        "pairs": [[int(i), int(j)] for i, j in pairs],
        "mean_iou_matched": float(np.mean([match.similarity_matrix[i, j] for i, j in pairs])) if pairs else None,
        "trace_r_matched_median": float(np.nanmedian(r)) if r.size else None,
        "n_in_focus": int(in_focus.sum()),
        "in_focus_recall": float(matched[in_focus].mean()) if in_focus.any() else None,
        "blur_bins": blur_bins(np.asarray(det.observed_sigma_px, float), matched),
        **motion_scores(est, None if gt.shifts is None else np.asarray(gt.shifts, float)),
    }


def _plain(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth-dir", required=True, type=Path, help="a generator cache folder (truth.zarr)")
    ap.add_argument("--estimate", required=True, type=Path, help="the runner's exported estimate (.npz)")
    ap.add_argument("--out", required=True, type=Path, help="JSON file to write")
    args = ap.parse_args(argv)
    result = score_estimate(args.truth_dir, args.estimate)
    args.out.write_text(json.dumps(result, indent=2, default=_plain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
