"""CNMF-E previews render headless and show what they claim."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ace_neuro.plots.cnmfe import plot_contours, plot_summary_images, plot_traces
from ace_neuro.plots.common import figure_png
from ace_neuro.stages.cnmfe.result import CnmfeResult


@pytest.fixture
def result():
    H = W = 40
    yy, xx = np.mgrid[:H, :W]
    centres = [(10, 10), (25, 30), (30, 8)]
    A = np.stack([np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0).ravel() for y, x in centres], axis=1)
    A[A < 0.05] = 0
    T = 120
    rng = np.random.default_rng(0)
    C = np.maximum(rng.standard_normal((3, T)), 0).astype(np.float32)
    return CnmfeResult(A=sp.csc_matrix(A.astype(np.float32)), C=C, S=C.copy(), YrA=0.1 * rng.standard_normal((3, T)).astype(np.float32),
                       sn=np.ones(3), baseline=np.zeros(3), g=np.zeros((3, 2)), b0=np.zeros((H, W), np.float32),
                       W=sp.csr_matrix((400, 400), dtype=np.float32), ring_coef=np.zeros((5, 20, 20), np.float32),
                       ring_radius=3, ssub_B=2, n_harmonics=2, corr=rng.random((H, W)).astype(np.float32),
                       pnr=(10 * rng.random((H, W))).astype(np.float32), seeds=np.array(centres, float),
                       dims=(H, W), frame_rate=30.0, params={})


def test_summary_figure_with_seed_table(result):
    table = pd.DataFrame({"min_corr": [0.8, 0.8, 0.9, 0.9], "min_pnr": [5, 10, 5, 10], "n_seeds": [9, 4, 6, 2]})
    fig = plot_summary_images(result.corr, result.pnr, seeds=result.seeds, min_corr=0.8, min_pnr=5,
                              seed_table=table)
    assert len(fig.axes) >= 3
    png = figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 seeds" in fig.axes[0].get_xlabel()


def test_contours_colour_accepted_and_rejected(result):
    table = pd.DataFrame({"component_id": [0, 1, 2], "accepted": [True, False, True], "snr": [5.0, 1.0, 3.0]})
    fig = plot_contours(result, table)
    title = fig.axes[0].get_title()
    assert "2 accepted" in title and "1 rejected" in title
    assert len(figure_png(fig)) > 1000


def test_traces_show_top_accepted_components(result):
    table = pd.DataFrame({"component_id": [0, 1, 2], "accepted": [True, False, True], "snr": [5.0, 9.0, 3.0]})
    fig = plot_traces(result, table, n=5)
    labels = [t.get_text().strip() for t in fig.axes[0].texts]
    assert labels[:2] == ["0", "2"]  # accepted only, by decreasing SNR
    assert labels[2].endswith("noise SD")  # the y scale bar
    assert fig.axes[0].get_xlabel() == "time (s)"
    figure_png(fig)


def test_traces_draw_raw_in_grey_beside_denoised(result):
    fig = plot_traces(result, component_ids=[0])
    lines = [ln for ln in fig.axes[0].lines if len(ln.get_xdata()) == result.C.shape[1]]
    grey, denoised = lines
    assert grey.get_color() == "0.6"
    sd = float(result.sn[0])
    raw = (result.C[0] + result.YrA[0]) / sd
    # the grey line is the raw trace (C + YrA), on the same scale and offset as the denoised one
    np.testing.assert_allclose(grey.get_ydata() - denoised.get_ydata(), raw - result.C[0] / sd, rtol=1e-5, atol=1e-6)


def test_contours_before_evaluation_say_so(result):
    title = plot_contours(result).axes[0].get_title()
    assert "before evaluation" in title and "accepted" not in title


def test_plots_module_never_uses_pyplot():
    import ace_neuro.plots.cnmfe as mod

    assert "pyplot" not in open(mod.__file__).read()
