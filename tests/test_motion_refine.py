"""Robust refinement of rigid shifts: firing neurons do not pull the estimate."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from ace_neuro.stages.motion.filters import HighPass
from ace_neuro.stages.motion.refine import RobustShiftRefiner
from ace_neuro.stages.motion.registration import RigidRegistrar
from ace_neuro.stages.motion.warp import sample_rigid_window, warp_rigid

SHAPE = (128, 128)
MAX_SHIFTS = (8, 8)


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    tissue = gaussian_filter(rng.normal(size=SHAPE), 3.0) * 40 + 100
    return tissue.astype(np.float32)


def _displaced(img, shift):
    """``observed(y, x) = img(y - dy, x - dx)`` (the motion module's convention)."""
    return warp_rigid(img, (-shift[0], -shift[1]))


def _blob(cy, cx, amp, sigma=4.0):
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    return (amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))).astype(np.float32)


def _refiner_and_peak(template_raw):
    hp = HighPass(SHAPE, (5, 5))
    template = hp(template_raw)
    margins = tuple(m + 1 + e for m, e in zip(MAX_SHIFTS, hp.edge))
    return hp, template, RobustShiftRefiner(template, margins), RigidRegistrar(template, MAX_SHIFTS, hp)


def test_transient_does_not_pull_the_shift():
    scene = _scene()
    hp, _, refiner, peak = _refiner_and_peak(scene)
    rng = np.random.default_rng(1)
    err_peak, err_refined = [], []
    for _ in range(12):
        true = rng.uniform(-3, 3, 2)
        # a neuron firing strongly at a random place, as the frame sees it
        blob = _blob(*rng.uniform(35, 93, 2), amp=60.0)
        frame = _displaced(scene, true) + blob + rng.normal(0, 2.0, SHAPE).astype(np.float32)
        spectrum = hp.spectrum(frame)
        first = peak.shift(spectrum)
        refined = refiner(hp.from_spectrum(spectrum), first)
        err_peak.append(np.hypot(*(first - true)))
        err_refined.append(np.hypot(*(refined - true)))
    assert np.mean(err_refined) < 0.05
    assert np.mean(err_refined) < 0.5 * np.mean(err_peak)


def test_exact_shift_is_a_fixed_point_and_bad_starts_converge():
    scene = _scene(3)
    hp, _, refiner, _ = _refiner_and_peak(scene)
    true = np.array([1.3, -2.6])
    frame_hp = hp(_displaced(scene, true))
    np.testing.assert_allclose(refiner(frame_hp, true), true, atol=0.02)
    np.testing.assert_allclose(refiner(frame_hp, true + [0.4, -0.4]), true, atol=0.02)


def test_flat_template_keeps_the_starting_shift():
    flat = np.zeros(SHAPE, np.float32)
    refiner = RobustShiftRefiner(flat, (10, 10))
    np.testing.assert_array_equal(refiner(np.ones(SHAPE, np.float32), (0.5, -1.0)), [0.5, -1.0])


def test_window_sampling_matches_the_full_warp_and_refuses_to_leave_the_frame():
    img = _scene(5)
    full = warp_rigid(img, (1.25, -0.5))
    win = sample_rigid_window(img, (1.25, -0.5), 10, 12, 100, 90)
    np.testing.assert_allclose(win, full[10:110, 12:102], atol=1e-4)
    with pytest.raises(ValueError, match="leaves the frame"):
        sample_rigid_window(img, (4.0, 0.0), 120, 0, 8, 10)


def test_frame_too_small_for_its_margins_keeps_the_peak():
    template = _scene(7)[:40, :48]
    refiner = RobustShiftRefiner(template, (26, 26))
    assert not refiner.enabled
    np.testing.assert_array_equal(refiner(template, (0.25, 0.5)), [0.25, 0.5])
