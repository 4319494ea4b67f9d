"""Generate the realistic benchmark's recordings with minisim (run by ``.venv-minisim/bin/python``).

    .venv-minisim/bin/python -m bench.realistic.generate --cache DIR --recording '<json>' [...]

Imports minisim, never ace_neuro (minisim pins zarr<3; the project needs zarr>=3). For each
catalogue entry (:class:`bench.realistic.catalogue.Recording`, given as JSON) it writes, once,
``<cache>/<name>-<minisim spec cache_key>-v<CACHE_FORMAT>/``::

    movie.avi     the sensor counts, 8-bit grey, lossless FFV1 (minisim.simulate_video)
    truth.npz     ground truth for the project side (no pickle; see below)
    truth.zarr    minisim's own Recording (an empty movie + the full GroundTruth), for its scorer
    spec.json     the minisim Spec; recording.json the catalogue entry
    meta.json     minisim version, counts, generation time and peak memory

and prints one JSON line per recording, ``{"name": ..., "dir": ...}``. A directory that exists is
reused (it is renamed into place only once complete).

How the ground truth is had without the movie in memory
--------------------------------------------------------
``minisim.simulate`` holds the whole float64 movie (a 608 x 608 x 12,000 recording would be 36 GB).
``minisim.simulate_video`` streams it in chunks of frames, and computes on the way every
per-recording quantity the ground truth is made of: it runs the cell-domain steps on a ``Scene``
(footprints, optics blur, traces, spikes, bleaching, focus) and draws the motion trajectory, the
vessel mask, the neuropil and the leakage with the functions the steps themselves call, in the
steps' order, so its output is bit-for-bit ``simulate(spec).observed``. It keeps these in local
variables; :class:`TruthTap` wraps those functions (and ``Scene.zeros``) for the duration of one
``simulate_video`` call and records what they return. Afterwards the tapped ``Scene`` carries the
cells, its ``truth`` is filled with the tapped fields plus the static illumination and vignette
fields (deterministic from the spec: ``minisim.steps.sensor.combined_falloff_field``), and
``minisim.finalize`` - the function ``simulate`` ends with - turns it into the ``GroundTruth``
(detectability included); the Scene has no movie, so none is allocated. Peak memory is
``simulate_video``'s: the dense footprint stack (units x canvas, float32; ~1.4 GB at 608 x 608 in
CA1) plus one chunk of frames. :func:`verify_against_simulate` checks, on a small spec, that the
movie and this truth equal ``simulate(spec)``'s (``make minisim-fixture`` runs it on the fixture).
The taps rely on names inside ``minisim.video`` of minisim 1.0.3 (the version pinned).

Conventions of truth.npz
------------------------
Only the *detectable* units (``GroundTruth.detectable``, minisim's recall denominator) are
stored; ``unit_index`` gives their index in the full population of ``n_units``, and
``detectable`` (n_units,) is minisim's flag for every unit.

* ``A_data, A_indices, A_indptr, A_shape``: ``scipy.sparse.csc_matrix`` (H*W, K) float32 of the
  observed footprints (``GroundTruth.A_observed``: planted footprint blurred by the per-unit
  optics Gaussian, times the optical gain), cropped to the sensor field, pixel index ``y * W + x``
  (the layout of ace_neuro's CNMF-E ``A``); the stored values are minisim's own float32 patches.
* ``C, S``: (K, T) clean calcium trace and per-frame spike count; ``bleaching`` (K, T) the
  fluorophore envelope when the recording has bleaching (the movie shows ``C * bleaching``).
* ``blur_px``: the **observed blur**, defined as minisim's ``observed_sigma_px``: the standard
  deviation, in pixels, of the Gaussian point spread (diffraction + defocus + scatter) the planted
  footprint is convolved with (also stored under that name).
* ``shifts`` (T, 2): only with motion: minisim's ``GroundTruth.shifts``, ``(dy, dx)`` px, the
  displacement of the tissue content in frame t relative to the zero-shift reference frame the
  footprints are drawn in (content at reference pixel p appears at p + shift). A motion
  correction's *correction* is the negation; ace_neuro's ``rigid_shifts`` are content
  displacements vs its template, i.e. the same sign as these up to a constant offset.
* ``depth_um``, ``centers_um`` (z, y, x; y, x from the optical axis), ``in_focus``,
  ``vessel_overlap_fraction`` (with vessels), ``fps``, ``shape`` (T, H, W), ``pixel_size_um``,
  ``soma_radius_um``, ``focal_depth_um``, ``n_units``, ``name``, ``minisim_version``,
  ``spec_cache_key``.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator
from unittest import mock

import numpy as np
import scipy.sparse as sp

import minisim
import minisim.video
from minisim import presets
from minisim.footprint import degrade_footprint
from minisim.recording import Recording as MinisimRecording
from minisim.spec import Bleaching, BrainMotion, Spec
from minisim.steps.sensor import combined_falloff_field

from bench.realistic.catalogue import MOTION_CLAMP_FACTOR, Recording

MINISIM_VERSION = importlib.metadata.version("minisim")
#: Version of what this generator writes; part of the cache folder's name, so a change regenerates.
CACHE_FORMAT = 2
_CHUNK_FRAMES = 64


# --------------------------------------------------------------------------- spec
def build_spec(rec: Recording) -> Spec:
    """The minisim Spec of a catalogue entry (scope x region via ``presets.build_spec``)."""
    scope = getattr(presets, rec.scope)()
    sensor = scope.image_sensor.model_copy(update={"n_px_height": rec.height, "n_px_width": rec.width})
    scope = scope.model_copy(update={"image_sensor": sensor})
    extra: list[Any] = []
    if rec.bleaching:
        extra.append(Bleaching(excitation_intensity=rec.bleach_excitation))
    if rec.motion_um > 0:
        extra.append(BrainMotion(motion_amplitude_um=rec.motion_um,
                                 max_shift_um=MOTION_CLAMP_FACTOR * rec.motion_um))
    return presets.build_spec(scope, getattr(presets, rec.region)(), duration_s=rec.duration_s, fps=rec.fps,
                              seed=rec.seed, extra_steps=extra, include_vasculature=rec.vessels)


# --------------------------------------------------------------------------- streaming + truth
class TruthTap:
    """Records what ``minisim.video``'s streaming loop computes, for :func:`stream_recording`.

    Attributes
    ----------
    scene : minisim.scene.Scene or None
        The scene the cell-domain steps ran on.
    captured : dict
        ``shifts``, ``vasculature_mask``, ``neuropil`` (spatial, temporal, population) and
        ``leakage``, for the steps the recording has.
    """

    _TAPPED = {"brain_motion_shifts": "shifts", "vasculature_mask_field": "vasculature_mask",
               "neuropil_components": "neuropil", "leakage_field": "leakage"}

    def __init__(self) -> None:
        self.scene = None
        self.captured: dict[str, Any] = {}

    def _recording(self, fn: Callable, key: str) -> Callable:
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)
            self.captured[key] = out
            return out
        return wrapper

    def _scene_zeros(self, original: Callable) -> Callable:
        def zeros(*args, **kwargs):
            self.scene = original(*args, **kwargs)
            return self.scene
        return zeros

    @contextlib.contextmanager
    def installed(self) -> Iterator["TruthTap"]:
        """Wrap the functions inside ``minisim.video`` while the block runs."""
        with contextlib.ExitStack() as stack:
            for name, key in self._TAPPED.items():
                stack.enter_context(mock.patch.object(minisim.video, name,
                                                      self._recording(getattr(minisim.video, name), key)))
            scene_cls = minisim.video.Scene
            stack.enter_context(mock.patch.object(minisim.video, "Scene",
                                                  SimpleNamespace(zeros=self._scene_zeros(scene_cls.zeros))))
            yield self

    def fill_scene_truth(self, spec: Spec) -> None:
        """Put the tapped per-effect fields on the scene's truth, as the steps would have."""
        truth = self.scene.truth
        truth.shifts = self.captured.get("shifts")
        truth.vasculature_mask = self.captured.get("vasculature_mask")
        truth.leakage = self.captured.get("leakage")
        if "neuropil" in self.captured:
            truth.neuropil_spatial, truth.neuropil_temporal, truth.neuropil_population = self.captured["neuropil"]
        acq = spec.acquisition
        by_kind = {s.kind: s for s in spec.steps}
        truth.illumination = combined_falloff_field(acq, by_kind.get("illumination_profile"), None)
        truth.vignette = combined_falloff_field(acq, None, by_kind.get("vignette"))


def stream_recording(spec: Spec, movie_path: Path) -> MinisimRecording:
    """Stream ``spec``'s movie to an FFV1 AVI and return its minisim Recording (empty movie).

    The returned ``Recording.ground_truth`` is what ``simulate(spec).ground_truth`` would be;
    ``Recording.observed`` has no frames.
    """
    tap = TruthTap()
    # minisim 1.0.3 prints progress lines to stderr even with progress=False: keep only the rest
    with tap.installed(), contextlib.redirect_stderr(io.StringIO()) as err:
        minisim.simulate_video(spec, movie_path, chunk_frames=_CHUNK_FRAMES, codec="FFV1", progress=False)
    sys.stderr.writelines(line for line in err.getvalue().splitlines(keepends=True)
                          if not line.startswith(f"writing {Path(movie_path).name}:"))
    if tap.scene is None:
        raise RuntimeError("minisim.simulate_video did not create its Scene through Scene.zeros: the truth "
                           f"taps do not fit minisim {MINISIM_VERSION}; this generator is written for 1.0.3")
    tap.fill_scene_truth(spec)
    return minisim.finalize(tap.scene, spec)


# --------------------------------------------------------------------------- truth arrays
def observed_footprints_csc(gt, units: np.ndarray) -> sp.csc_matrix:
    """Observed footprints of ``units`` as (H*W, K) CSC float32, cropped to the field (exact patches)."""
    top, left = gt.fov_offset
    h, w = gt.fov_shape
    cols = []
    for i in units:
        fp = gt.planted[int(i)]
        if gt.observed_sigma_px is not None and not np.isnan(gt.observed_sigma_px[i]):
            fp = degrade_footprint(fp, float(gt.observed_sigma_px[i]), float(gt.observed_gain[i]))
        cols.append(_patch_column(fp.crop(top, left, h, w), w))
    data = [c[1] for c in cols]
    rows = [c[0] for c in cols]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return sp.csc_matrix((np.concatenate(data) if data else np.zeros(0, np.float32),
                          np.concatenate(rows) if rows else np.zeros(0, np.int64), indptr),
                         shape=(h * w, len(cols)), dtype=np.float32)


def _patch_column(fp, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixel indices y*W+x, values) of a cropped footprint's non-zero pixels."""
    if fp.is_empty:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    y0, x0 = fp.offset
    yy, xx = np.nonzero(fp.patch)
    return ((yy + y0) * width + (xx + x0)).astype(np.int64), fp.patch[yy, xx].astype(np.float32)


def truth_arrays(rec: Recording, spec: Spec, gt) -> dict[str, np.ndarray]:
    """The arrays of truth.npz (see the module docstring)."""
    units = np.flatnonzero(np.asarray(gt.detectable, bool))
    A = observed_footprints_csc(gt, units)
    acq = spec.acquisition
    sigma = (np.full(gt.n_units, np.nan) if gt.observed_sigma_px is None else np.asarray(gt.observed_sigma_px))
    out = {
        "A_data": A.data, "A_indices": A.indices.astype(np.int64), "A_indptr": A.indptr.astype(np.int64),
        "A_shape": np.asarray(A.shape, np.int64),
        "C": np.asarray(gt.C)[units].astype(np.float32), "S": np.asarray(gt.S)[units].astype(np.float32),
        "unit_index": units.astype(np.int64), "detectable": np.asarray(gt.detectable, bool),
        "in_focus": np.asarray(gt.in_focus, bool)[units],
        "blur_px": sigma[units], "observed_sigma_px": sigma[units],
        "depth_um": np.asarray(gt.depth_um)[units], "centers_um": np.asarray(gt.centers_um)[units],
        "fps": np.float64(acq.fps), "shape": np.asarray([acq.n_frames, *gt.fov_shape], np.int64),
        "pixel_size_um": np.float64(acq.pixel_size_um), "soma_radius_um": np.float64(rec.soma_radius_um),
        "focal_depth_um": np.float64(np.nan if gt.focal_depth_um is None else gt.focal_depth_um),
        "n_units": np.int64(gt.n_units), "name": np.str_(rec.name), "minisim_version": np.str_(MINISIM_VERSION),
        "spec_cache_key": np.str_(spec.cache_key()),
    }
    if gt.shifts is not None:
        out["shifts"] = np.asarray(gt.shifts, np.float64)
    if gt.bleaching is not None:
        out["bleaching"] = np.asarray(gt.bleaching)[units].astype(np.float32)
    if gt.vessel_overlap_fraction is not None:
        out["vessel_overlap_fraction"] = np.asarray(gt.vessel_overlap_fraction)[units]
    return out


# --------------------------------------------------------------------------- cache
def cache_dir_for(rec: Recording, spec: Spec, cache_root: Path) -> Path:
    """``<cache_root>/<name>-<spec cache_key>-v<CACHE_FORMAT>``."""
    return Path(cache_root) / f"{rec.name}-{spec.cache_key()}-v{CACHE_FORMAT}"


def _own_peak_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def write_recording(rec: Recording, spec: Spec, folder: Path) -> dict[str, Any]:
    """Write movie.avi, truth.npz, truth.zarr, spec.json, recording.json and meta.json into ``folder``."""
    t0 = time.perf_counter()
    recording = stream_recording(spec, folder / "movie.avi")
    seconds = time.perf_counter() - t0
    gt = recording.ground_truth
    np.savez_compressed(folder / "truth.npz", **truth_arrays(rec, spec, gt))
    recording.save(folder / "truth.zarr")
    (folder / "spec.json").write_text(spec.model_dump_json(indent=2))
    (folder / "recording.json").write_text(rec.to_json())
    meta = {"name": rec.name, "minisim_version": MINISIM_VERSION, "spec_cache_key": spec.cache_key(),
            "n_frames": spec.acquisition.n_frames, "shape": [rec.height, rec.width], "fps": rec.fps,
            "n_units": int(gt.n_units), "n_detectable": int(np.sum(gt.detectable)),
            "n_in_focus": int(np.sum(gt.in_focus)), "stream_seconds": round(seconds, 1),
            "peak_mib": round(_own_peak_mib(), 1)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def generate(rec: Recording, cache_root: Path) -> Path:
    """The cache folder of ``rec``, generating it first if it does not exist."""
    spec = build_spec(rec)
    final = cache_dir_for(rec, spec, cache_root)
    if final.is_dir():
        return final
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        meta = write_recording(rec, spec, tmp)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"generated {rec.name}: {meta['n_frames']} frames, {meta['n_detectable']}/{meta['n_units']} units "
          f"detectable, {meta['stream_seconds']} s, peak {meta['peak_mib']:.0f} MiB", file=sys.stderr, flush=True)
    return final


# --------------------------------------------------------------------------- verification
def _decode_avi(path: Path) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame if frame.ndim == 2 else frame[..., 0])
    cap.release()
    return np.stack(frames)


def verify_against_simulate(spec: Spec, folder: Path) -> list[str]:
    """Differences between a generated folder and ``minisim.simulate(spec)`` (empty when equal).

    Holds the whole movie in memory: for small specs only.
    """
    full = minisim.simulate(spec)
    streamed = MinisimRecording.load(folder / "truth.zarr").ground_truth
    ref = full.ground_truth
    problems = []
    if not np.array_equal(_decode_avi(folder / "movie.avi"), np.asarray(full.observed).astype(np.uint8)):
        problems.append("movie.avi differs from simulate().observed")
    for name in ("C", "S", "in_focus", "detectable", "observed_sigma_px", "observed_gain", "shifts",
                 "illumination", "vignette", "leakage", "vasculature_mask", "bleaching",
                 "vessel_overlap_fraction", "neuropil_temporal"):
        a, b = getattr(streamed, name), getattr(ref, name)
        if (a is None) != (b is None) or (a is not None and not np.allclose(a, b, rtol=0, atol=0, equal_nan=True)):
            problems.append(f"GroundTruth.{name} differs")
    if not np.array_equal(streamed.A_observed, ref.A_observed):
        problems.append("GroundTruth.A_observed differs")
    return problems


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, help="cache root (bench/results/minisim_cache)")
    ap.add_argument("--recording", action="append", required=True,
                    help="a catalogue entry as JSON (Recording.to_json); repeat for several")
    ap.add_argument("--verify", action="store_true",
                    help="also compare with minisim.simulate (whole movie in memory: small recordings only)")
    args = ap.parse_args(argv)
    for text in args.recording:
        rec = Recording.from_json(text)
        folder = generate(rec, Path(args.cache))
        line = {"name": rec.name, "dir": str(folder)}
        if args.verify:
            line["verify_problems"] = verify_against_simulate(build_spec(rec), folder)
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
