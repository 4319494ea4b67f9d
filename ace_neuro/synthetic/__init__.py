"""Synthetic 1-photon miniscope recordings with exact ground truth, and raw-format writers.

``model`` holds the forward model (:func:`simulate_ground_truth`, :func:`render_frames`,
:func:`simulate_movie`); ``formats`` writes complete raw session folders in the three
formats the readers understand; ``project`` writes a whole demo project.
"""
from ace_neuro.synthetic.model import (
    GroundTruth,
    SyntheticConfig,
    SyntheticConfigError,
    SyntheticFrames,
    cnmfe_filter_kernel,
    cnmfe_pnr,
    crop_ground_truth,
    displacement_at,
    iter_rendered_blocks,
    load_ground_truth,
    observed_traces,
    render_frames,
    render_scene,
    save_ground_truth,
    select_frames,
    simulate_ground_truth,
    simulate_movie,
)

__all__ = [
    "GroundTruth", "SyntheticConfig", "SyntheticConfigError", "SyntheticFrames", "cnmfe_filter_kernel",
    "cnmfe_pnr", "crop_ground_truth", "displacement_at",
    "iter_rendered_blocks", "load_ground_truth", "observed_traces", "render_frames", "render_scene",
    "save_ground_truth", "select_frames", "simulate_ground_truth", "simulate_movie",
]
