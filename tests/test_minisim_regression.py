"""Regression on an independent simulator's recording, through the lab's front end.

``tests/data/minisim_small`` (``make minisim-fixture`` regenerates it) is a minisim 1.0.3 recording
- Miniscope V4 optics and 8-bit sensor, CA1 region, 128 x 128 px, 400 frames at 20 fps, mild brain
motion (3 µm), seed 2024 - written as a UCLA V4 DAQ session, with the lab's two CSVs (line 1: gSig =
soma radius; line 2: the same with ``use_suggested_params = TRUE``) and minisim's ground truth of the
detectable units (``truth.npz``: observed footprints, traces, spikes, focus, blur, shifts).

Line 2 runs through ``MiniscopePipeline().run(..., headless=True)`` on a copy of the fixture and is
scored with this package's own energy-mask IoU matching (``truth_match``, independent of minisim).
The thresholds sit a little below what the engine reaches now; raise them as it improves.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from ace_neuro.pipelines.miniscope import MiniscopePipeline
from ace_neuro.stages.cnmfe.scoring import match_footprints
from ace_neuro.stages.cnmfe.truth_match import (match_by_energy_iou, matched_trace_r, offset_aligned_rmse,
                                                shift_footprints, trajectory_offset)
from ace_neuro.storage import open_movie, read_bundle, read_table

FIXTURE = Path(__file__).parent / "data" / "minisim_small"
SUGGESTED_LINE = 2

# Measured with the native engine (line 2: CSV gSig 3, suggested 5; gSig_filt 3, suggested 5):
# 21 accepted, 20 of the 43 detectable units matched: F1 0.625, precision 0.952, recall 0.465,
# mean IoU 0.69; median trace r 0.986; rigid motion RMSE 0.94 px - still worse than not
# correcting (0.62 px): on this 128 x 128 field a frame holds too little structure for its shift.
# Every accepted component overlaps a detectable unit with cosine >= MIN_COSINE: what we report is
# real even where its shape misses IoU 0.5.
# (When the test was written, before the robust shift fit, the footprint skirts and the
# two-neuron split: F1 0.563, precision 0.857, recall 0.419, trace r 0.977, RMSE 1.41 px.)
MIN_F1 = 0.60
MIN_PRECISION = 0.90
MIN_RECALL = 0.44
MIN_COSINE = 0.75
MIN_TRACE_R = 0.98
MAX_MOTION_RMSE_PX = 1.1


def _csc(arrays, prefix: str = "A") -> sp.csc_matrix:
    return sp.csc_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
                         shape=tuple(arrays[f"{prefix}_shape"]))


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Run line 2 on a copy of the fixture; (match, trace r, motion RMSE, zero-shift RMSE, best cosines).

    The last is, for each accepted component, its largest footprint cosine with a detectable unit."""
    root = tmp_path_factory.mktemp("minisim")
    shutil.copytree(FIXTURE, root / "data")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ACE_STORAGE_ROOT", "ACE_PROJECT_PATH", "ACE_DATA_PATH"):
            mp.delenv(name, raising=False)
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        result = MiniscopePipeline().run(line_num=SUGGESTED_LINE, project_path=root / "data" / "project",
                                         data_path=root / "data", storage_root=root / "storage", headless=True)
    with np.load(root / "data" / "truth.npz", allow_pickle=False) as z:
        truth = {k: z[k] for k in z.files}
    estimates = read_bundle(result.outputs["cnmfe_estimates"])
    accepted = read_table(result.outputs["accepted_components"]).sort_values("component_id")["accepted"].to_numpy()
    rigid = np.asarray(open_movie(result.outputs["motion_corrected_movie"]).extras["rigid_shifts"][:], float)
    match = match_by_energy_iou(estimates.A[:, np.flatnonzero(accepted)], _csc(truth),
                                dims=tuple(truth["shape"][1:]), shift=trajectory_offset(rigid, truth["shifts"]))
    trace_r = float(np.nanmedian(matched_trace_r(estimates.C[accepted], truth["C"], match)))
    return (match, trace_r, offset_aligned_rmse(rigid, truth["shifts"]),
            offset_aligned_rmse(np.zeros_like(truth["shifts"]), truth["shifts"]),
            match_footprints(shift_footprints(estimates.A[:, np.flatnonzero(accepted)], tuple(truth["shape"][1:]),
                                              *match.shift), _csc(truth)).similarity_matrix.max(axis=1))


def test_fixture_is_a_v4_daq_session():
    from ace_neuro.readers import open_recording
    from ace_neuro.readers.ucla_daq import UclaDaqReader

    reader = open_recording(FIXTURE / "session")
    assert isinstance(reader, UclaDaqReader)
    assert (reader.info.n_frames, reader.info.height, reader.info.width) == (400, 128, 128)
    assert reader.info.frame_rate == pytest.approx(20.0, rel=1e-3) and reader.info.n_dropped == 0


def test_detection_against_minisim_truth(scored):
    match, *_ = scored
    assert match.n_true == 43
    assert match.f1 >= MIN_F1, match.summary()
    assert match.precision >= MIN_PRECISION, match.summary()
    assert match.recall >= MIN_RECALL, match.summary()


def test_every_accepted_component_is_a_real_unit(scored):
    *_, best_cosine = scored
    assert best_cosine.min() >= MIN_COSINE, np.round(np.sort(best_cosine)[:5], 2)


def test_traces_of_matched_components(scored):
    _, trace_r, *_ = scored
    assert trace_r >= MIN_TRACE_R


def test_rigid_motion_against_minisim_truth(scored):
    _, _, rmse, *_ = scored
    assert rmse <= MAX_MOTION_RMSE_PX


@pytest.mark.xfail(strict=True, reason="the rigid estimate on this small field is noisier than the motion "
                                       "itself (0.94 vs 0.62 px); remove this mark when it passes")
def test_motion_correction_beats_no_correction(scored):
    _, _, rmse, no_correction, _ = scored
    assert rmse < no_correction


# --------------------------------------------------------------------------- the scorer itself
def _blobs(centres, shape=(40, 50), sigma=2.0):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.stack([np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma ** 2)) for y, x in centres])


def test_energy_masks_hold_the_fraction_with_the_fewest_pixels():
    from ace_neuro.stages.cnmfe.truth_match import energy_masks

    a = _blobs([(20, 25)])
    mask = energy_masks(a, 0.9).toarray()[:, 0]
    flat = a[0].ravel()
    assert flat[mask].sum() >= 0.9 * flat.sum() > flat[mask].sum() - flat[mask].min()


def test_matching_is_one_to_one_and_uses_the_trajectory_offset():
    true = _blobs([(10, 10), (10, 30), (28, 20)])
    found = _blobs([(13, 8), (13, 28), (13, 28)])  # drawn 3 px down, 2 px left; a duplicate; one missed
    template_place = np.array([3.0, -2.0])
    true_shifts = np.random.default_rng(0).normal(0, 1, (50, 2))
    found_shifts = true_shifts - template_place  # content vs a template that sits at (3, -2)
    shift = trajectory_offset(found_shifts, true_shifts)
    assert shift == (-3, 2)
    m = match_by_energy_iou(found, true, shift=shift)
    assert (m.n_found, m.n_true, m.n_matched) == (3, 3, 2) and m.mean_iou == pytest.approx(1.0)
    assert sorted(m.true.tolist()) == [0, 1]
    assert match_by_energy_iou(found, true).n_matched == 0  # without the offset IoU < 0.5
    assert offset_aligned_rmse(found_shifts, true_shifts) == pytest.approx(0.0, abs=1e-12)
