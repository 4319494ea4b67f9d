"""Signals benchmark: events, phase and spectrogram for one hour at 30 fps, 500 components;
and detrend + dF/F throughput on 608x608 frames.

    python -m bench.bench_signals            # 108,000 frames x 500 components; 600 movie frames
    python -m bench.bench_signals --quick    # 18,000 frames x 100 components; 200 movie frames

Traces: Poisson spikes (0.3 Hz) through an AR(1) decay of 0.4 s plus white noise at SNR 5,
so the event counts and the noise-method F1 are printed beside the timings.
Target: events + phase + spectrogram of one hour x 500 components in seconds (< 60 s total).
The movie part streams frames made on the fly (no disk), so it measures the stages' own cost.
"""
import argparse
import sys
import time

import numpy as np
from scipy.signal import lfilter

from ace_neuro.params import DetrendParams, DffParams, EventParams, FilterParams, SpectrogramParams
from ace_neuro.stages.dff import detrend_and_dff
from ace_neuro.stages.events import EventMatch, detect_events, match_event_times
from ace_neuro.stages.phase import compute_phase
from ace_neuro.stages.spectrogram import multitaper_spectrogram

FPS = 30.0
TARGET_S = 60.0


def make_traces(k: int, t: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((k, t)) < 0.3 / FPS).astype(np.float32)
    calcium = lfilter([1.0], [1.0, -np.exp(-1.0 / (0.4 * FPS))], spikes, axis=1)
    noisy = (calcium + rng.normal(0.0, 0.2, size=(k, t))).astype(np.float32)
    return noisy, spikes


class GeneratedMovie:
    """A (T, H, W) float32 movie computed on demand from the frame index (bleaching + noise)."""

    def __init__(self, n_frames: int, size: int):
        self.shape = (n_frames, size, size)
        self.dtype = np.dtype(np.float32)
        self._pattern = np.random.default_rng(1).normal(0, 5, size=(size, size)).astype(np.float32) + 100

    def __getitem__(self, key):
        first = key[0] if isinstance(key, tuple) else key
        idx = np.arange(self.shape[0])[first]
        bleach = (30 * np.exp(-idx / 3000.0)).astype(np.float32)
        block = self._pattern[None] + bleach[:, None, None]
        rest = key[1:] if isinstance(key, tuple) else ()
        return block[(slice(None),) + tuple(rest)]


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    print(f"  {label:<48} {dt:7.2f} s", flush=True)
    return out, dt


def bench_tables(n_frames: int, n_components: int) -> float:
    traces, spikes = make_traces(n_components, n_frames)
    times = np.arange(n_frames) / FPS
    mean_trace = traces.mean(axis=0).astype(np.float64) + np.sin(2 * np.pi * 0.5 * times)
    print(f"== events / phase / spectrogram: {n_frames} frames ({n_frames / FPS / 60:.0f} min at 30 fps) x "
          f"{n_components} components")
    total = 0.0
    ev, dt = timed("events, noise method (onsets, 4 sd)", lambda: detect_events(traces, times, EventParams()))
    total += dt
    score = EventMatch(0, 0, 0)
    for k in range(n_components):
        score = score + match_event_times(np.flatnonzero(spikes[k]), ev.frame[ev.component_id == k], 2)
    print(f"    {len(ev)} events; F1 vs true spikes (+-2 frames) {score.f1:.3f} "
          f"(precision {score.precision:.3f}, recall {score.recall:.3f})")
    ev_d, dt = timed("events, derivative method (the original's)",
                     lambda: detect_events(traces, times, EventParams(method="derivative", event_height=0.6)))
    total += dt
    _, dt = timed("phase, mean-field trace (butter 0.1-1.5 Hz)",
                  lambda: compute_phase(mean_trace, FPS, FilterParams()))
    total += dt
    _, dt = timed(f"phase, {n_components} components (butter)", lambda: compute_phase(traces, FPS, FilterParams()))
    total += dt
    _, dt = timed("phase, mean-field trace (FIR, 991 taps)",
                  lambda: compute_phase(mean_trace, FPS, FilterParams(ftype="fir")))
    total += dt
    spec, dt = timed("spectrogram, mean-field trace (30 s / 3 s, NW 2)",
                     lambda: multitaper_spectrogram(mean_trace, FPS, SpectrogramParams(), times=times))
    total += dt
    print(f"    {spec.power.shape[0]} windows x {spec.power.shape[1]} frequencies")
    print(f"  total {total:.1f} s  [{'PASS' if total < TARGET_S else 'MISS'}: < {TARGET_S:.0f} s]")
    return total


def bench_movie(n_frames: int, size: int = 608) -> None:
    movie = GeneratedMovie(n_frames, size)
    times = np.arange(n_frames) / FPS
    print(f"== detrend (linear) + dF/F streamed: {n_frames} frames of {size}x{size}, blocks of 64")

    def run():
        stream = detrend_and_dff(movie, DetrendParams("linear"), DffParams(enabled=True), frame_rate=FPS,
                                 times=times, block_frames=64)
        for _ in stream.blocks:
            pass

    _, dt = timed("fit + minimum + baseline + output passes", run)
    print(f"    {n_frames / dt:.0f} frames/s ({n_frames * size * size / dt / 1e6:.0f} Mpixel/s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 minutes x 100 components; 200 movie frames")
    args = ap.parse_args(argv)
    if args.quick:
        bench_tables(18_000, 100)
        bench_movie(200)
    else:
        bench_tables(108_000, 500)
        bench_movie(600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
