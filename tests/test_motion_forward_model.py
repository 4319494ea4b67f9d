"""Motion correction on the shared synthetic forward model (ace_neuro.synthetic).

The recordings have 1-photon background, vessels, neurons, bleaching, Poisson-Gaussian noise and
known rigid or non-rigid motion. ``gSig_filt = (3, 3)`` (CaImAn's 1-photon demo value) matches
the size of the synthetic cells and vessels. The non-rigid test uses a recording with enough
structure (neurons, vessels, neuropil) to register everywhere: the displacement of a
featureless region cannot be measured by any method.
"""
from __future__ import annotations

import numpy as np
import pytest

from ace_neuro.params import MotionParams
from ace_neuro.stages.motion import correct_motion, correct_motion_in_memory, make_patch_grid

import ace_neuro.synthetic.model as synthetic  # noqa: E402  (a broken import must fail, not skip)

from test_motion import content_field, field_rmse  # noqa: E402  (tests/ is on sys.path under pytest)

RIGID = MotionParams(pw_rigid=False, max_shifts=(8, 8), gSig_filt=(3, 3))
PW = MotionParams(pw_rigid=True, max_shifts=(8, 8), gSig_filt=(3, 3), max_deviation_rigid=3)


@pytest.mark.parametrize("seed", [0, 1])
def test_rigid_shifts_recovered_on_forward_model(seed):
    cfg = synthetic.SyntheticConfig(height=200, width=200, n_frames=300, motion="rigid", max_shift_px=7.0,
                                    seed=seed)
    movie, truth = synthetic.simulate_movie(cfg)
    _, res = correct_motion_in_memory(movie, RIGID)
    err = res.rigid_shifts - truth.shifts
    offset = err.mean(axis=0)  # template position: the median frame position of the sample
    rmse = float(np.sqrt(((err - offset) ** 2).sum(axis=1).mean()))
    assert rmse <= 0.1, rmse
    assert np.abs(err - offset).max() < 0.4
    assert np.median(res.residual_shift) < 0.1
    assert np.median(res.corr_after) > np.median(res.corr_before)


def test_piecewise_rigid_beats_rigid_on_nonrigid_forward_model():
    cfg = synthetic.SyntheticConfig(height=200, width=200, n_frames=300, motion="nonrigid", n_neurons=100,
                                    n_vessels=8, neuropil_fraction=0.3, seed=0)
    movie, truth = synthetic.simulate_movie(cfg)
    target = np.stack([content_field(synthetic.displacement_at(truth, t)) for t in range(cfg.n_frames)])
    _, pw = correct_motion_in_memory(movie, PW)
    _, rigid = correct_motion_in_memory(movie, RIGID)
    c = make_patch_grid(movie.shape[1:], PW).centers
    hull = (slice(int(c[0, 0, 0]), int(c[-1, -1, 0]) + 1), slice(int(c[0, 0, 1]), int(c[-1, -1, 1]) + 1))
    interior = (slice(8, -8), slice(8, -8))
    assert field_rmse(pw, target, hull) <= 0.3
    assert field_rmse(pw, target, interior) < 0.85 * field_rmse(rigid, target, interior)


def test_streams_the_lazy_synthetic_movie():
    cfg = synthetic.SyntheticConfig(height=96, width=96, n_frames=90, motion="rigid", n_neurons=15, seed=4)
    truth = synthetic.simulate_ground_truth(cfg)
    lazy = synthetic.SyntheticFrames(truth)
    stream = correct_motion(lazy, RIGID, frame_rate=cfg.frame_rate, block_frames=32, n_template_frames=40)
    blocks = list(stream.blocks)
    assert [len(b) for b in blocks] == [32, 32, 26]
    shifts = stream.extras()["rigid_shifts"]
    err = shifts - truth.shifts
    assert np.abs(err - np.median(err, axis=0)).max() < 0.5
