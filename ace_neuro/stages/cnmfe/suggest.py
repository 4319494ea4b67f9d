"""Parameter suggestions from the data: neuron size (gSig, gSiz) and seed thresholds.

The CSV always wins: a suggestion is only used when ``CnmfeParams.use_suggested``
is true (CSV column ``use_suggested_params``).

* Size. For the strongest seeds, the movie is averaged over the frames where the
  seed's filtered trace is high and over frames where it is low; the difference
  is the neuron's 1-photon footprint (background fluctuations are not locked to
  the neuron's activity and cancel). The area above half of its maximum gives
  the Gaussian width ``sigma = sqrt(area / (2 pi ln 2))``. The 1-photon blur
  makes this larger than the soma, which is what the filter must match:
  ``gSig = round(median sigma)``, ``gSiz = 4 * gSig + 1``.
* Thresholds. Local maxima of ``corr * pnr`` under permissive thresholds are
  split in two groups (Otsu's method on log PNR, then on correlation):
  background/noise maxima and cells. The split points, clipped to sensible
  ranges, are the suggested ``min_pnr`` and ``min_corr``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .seed_sizes import measure_seed_sizes
from .summary import SummaryImages, find_seeds

__all__ = ["Suggestion", "suggest_parameters", "measure_seed_sizes", "ParameterAdvice", "advise_parameters"]

ADVICE_TOLERANCE = 0.3  # a CSV value further than this (relative) from the suggestion is reported
SUGGESTION_SWITCH = "use_suggested_params = TRUE"
_PNR_RANGE = (4.0, 30.0)
_CORR_RANGE = (0.6, 0.95)


@dataclass(frozen=True)
class Suggestion:
    """Parameters suggested from a :class:`SummaryImages`.

    Attributes
    ----------
    gSig, gSiz : (int, int)
        Filter width and neuron diameter in pixels.
    min_corr, min_pnr : float
        Seed thresholds separating cells from background.
    footprint_sigma_px : float
        Median Gaussian width of the measured footprints (NaN if none measured).
    n_measured : int
        Number of seeds whose footprint was measured.
    notes : tuple of str
        How each value was obtained.
    """

    gSig: tuple[int, int]
    gSiz: tuple[int, int]
    min_corr: float
    min_pnr: float
    footprint_sigma_px: float
    n_measured: int
    notes: tuple[str, ...]


def _otsu(values: np.ndarray, nbins: int = 64) -> float:
    """Otsu's threshold of a 1-D sample (maximises the between-class variance)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2 or values.min() == values.max():
        return float(values.mean()) if values.size else float("nan")
    counts, edges = np.histogram(values, bins=nbins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(counts)
    w1 = w0[-1] - w0
    m0 = np.cumsum(counts * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    i = int(np.argmax(between[:-1]))
    return float(edges[i + 1])


def suggest_parameters(summary: SummaryImages) -> Suggestion:
    """Suggest ``gSig``, ``gSiz``, ``min_corr`` and ``min_pnr`` from summary images.

    Parameters
    ----------
    summary : SummaryImages
        From :func:`~ace_neuro.stages.cnmfe.summary.cnmfe_summary_images`.

    Returns
    -------
    Suggestion
        Thresholds refer to images filtered with ``summary.gSig``; when the
        suggested ``gSig`` differs, recompute the summary with it before
        trusting ``min_corr``/``min_pnr`` (the engine does this).
    """
    notes = []
    sizes = summary.size_samples
    if len(sizes):
        sigma = float(np.median(sizes[:, 2]))
        g = max(1, int(round(sigma)))
        gSig = (g, g)
        notes.append(f"gSig from the median footprint width {sigma:.2f} px of {len(sizes)} active seeds")
    else:
        sigma = float("nan")
        gSig = tuple(summary.gSig)
        notes.append("no seed footprint could be measured: gSig kept")
    gSiz = tuple(4 * g + 1 for g in gSig)
    cands = find_seeds(summary.corr, summary.pnr, min_corr=0.3, min_pnr=2.0, gSiz=summary.gSiz)
    if len(cands) >= 4:
        ys, xs = cands[:, 0].astype(int), cands[:, 1].astype(int)
        pnr_vals = summary.pnr[ys, xs]
        t_pnr = float(np.exp(_otsu(np.log(np.maximum(pnr_vals, 1e-3)))))
        min_pnr = float(np.clip(t_pnr, *_PNR_RANGE))
        strong = pnr_vals >= min_pnr
        corr_vals = summary.corr[ys, xs]
        t_corr = _otsu(corr_vals) if corr_vals.size >= 4 else _CORR_RANGE[1]
        # cells must correlate at least as well as the weakest of the strong maxima's bulk
        if strong.sum() >= 3:
            t_corr = min(t_corr, float(np.quantile(corr_vals[strong], 0.1)))
        min_corr = float(np.clip(t_corr, *_CORR_RANGE))
        notes.append(f"min_pnr {min_pnr:.1f} and min_corr {min_corr:.2f} split {len(cands)} local maxima "
                     f"into background and cells (Otsu)")
    else:
        min_pnr, min_corr = 10.0, 0.8
        notes.append("too few local maxima to split: defaults min_pnr 10, min_corr 0.8")
    return Suggestion(gSig=gSig, gSiz=gSiz, min_corr=round(min_corr, 3), min_pnr=round(min_pnr, 2),
                      footprint_sigma_px=sigma, n_measured=int(len(sizes)), notes=tuple(notes))


@dataclass(frozen=True)
class ParameterAdvice:
    """A CSV value far from what the data show.

    Attributes
    ----------
    name : str
        CSV column (``gSig``, ``min_corr``, ``min_pnr``).
    csv_value, suggested : float or tuple
    relative_difference : float
        ``|csv - suggested| / suggested`` (for gSig, of the larger axis).
    message : str
        One sentence for the run log: both values and the switch that uses the suggestion.
    """

    name: str
    csv_value: object
    suggested: object
    relative_difference: float
    message: str


def advise_parameters(*, gSig, min_corr: float, min_pnr: float, suggestion: Suggestion,
                      tolerance: float = ADVICE_TOLERANCE) -> tuple[ParameterAdvice, ...]:
    """The CSV values that differ from ``suggestion`` by more than ``tolerance`` (relative).

    ``gSig`` is judged only when footprints were measured, the thresholds only against the
    suggestion made with the same ``gSig`` (their meaning depends on the filter).
    """
    out = []
    pairs = []
    if suggestion.n_measured > 0:
        pairs.append(("gSig", tuple(int(g) for g in gSig), tuple(int(g) for g in suggestion.gSig),
                      f" (median footprint width {suggestion.footprint_sigma_px:.1f} px)"))
    pairs += [("min_corr", float(min_corr), float(suggestion.min_corr), ""),
              ("min_pnr", float(min_pnr), float(suggestion.min_pnr), "")]
    for name, csv_value, suggested, why in pairs:
        a = np.max(np.atleast_1d(csv_value)).astype(float)
        b = np.max(np.atleast_1d(suggested)).astype(float)
        if not b > 0:
            continue
        rel = abs(a - b) / b
        if rel > tolerance:
            direction = "above" if a > b else "below"
            out.append(ParameterAdvice(
                name, csv_value, suggested, float(rel),
                f"{name} = {_fmt(csv_value)} in analysis_parameters.csv is {100 * rel:.0f}% {direction} what the "
                f"data show, {_fmt(suggested)}{why}; the CSV's value is used. Set {SUGGESTION_SWITCH} to use "
                f"the data's value."))
    return tuple(out)


def _fmt(v) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(str(x) for x in v) + ")"
    return f"{v:g}"
