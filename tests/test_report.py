"""The per-line report: one self-contained HTML page, every figure embedded, readable for a large line."""
import base64
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance

from ace_assets.report import SECTIONS, markdown_table
from ace_assets.runner import materialize_lines
from ace_neuro.report import Figure, LineReport, Section, Table, Text, png_from_markdown, render_report
from ace_neuro.synthetic.project import write_demo_project

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
from chromium import HeadlessChromium, chromium_path  # noqa: E402  (docs/chromium.py)

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    demo = write_demo_project(out, lines=(96,), height=80, width=80, n_frames=400)
    [run] = materialize_lines([96], project_path=str(demo.project_path), data_path=str(demo.data_path),
                              storage_root=str(out / "storage"), instance=DagsterInstance.ephemeral(),
                              run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    assert run.success, run.error
    return Path(run.metadata["line_report"]["path"]), run


def test_the_report_is_one_self_contained_page(report):
    path, run = report
    page = path.read_text(encoding="utf-8")
    assert path.name == "96.html" and run.metadata["line_report"]["report"] == path.resolve().as_uri()
    assert not re.search(r'(src|href)="(?!data:|#)', page), "the page must not load anything from elsewhere"
    for _, title in SECTIONS:
        assert f"<h2>{title}</h2>" in page, title
    for figure in ("projections", "contours with ids", "traces", "seeds", "shifts", "event raster", "phase histogram",
                   "spectrogram", "crop"):
        assert figure in page.lower(), figure
    n_images = page.count("<img ")
    assert n_images == run.metadata["line_report"]["figures"] >= 10
    n_accepted = run.metadata["accepted_components"]["n_accepted"]
    assert f"every component ({run.metadata['accepted_components']['n_components']} rows)" in page
    assert n_accepted > 0


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_every_figure_loads_in_headless_chromium(report):
    path, run = report
    with HeadlessChromium(width=1300, height=900) as browser:
        browser.navigate(path.resolve().as_uri(), wait_s=1.0)
        state = browser.evaluate("""Promise.all([...document.images].map(i => i.decode().then(() => true, () => false)))
            .then(ok => ({n: ok.length, loaded: ok.filter(x => x).length,
                          widths: [...document.images].map(i => i.naturalWidth),
                          sections: document.querySelectorAll('section').length}))""")
    assert state["n"] == run.metadata["line_report"]["figures"]
    assert state["loaded"] == state["n"] and min(state["widths"]) > 100
    assert state["sections"] == len(SECTIONS)


def test_a_large_line_stays_readable():
    """600 components: the listing folds (the page opens on the figures), and each id appears once in it."""
    listing = pd.DataFrame({"component_id": np.arange(600), "snr": np.linspace(1, 9, 600)})
    page = render_report(LineReport("Line 1", sections=(Section("Components", (
        Figure("contours with ids", PNG), Table("every component", listing, folded=True))),)))
    assert "<details><summary>every component (600 rows)</summary>" in page
    assert page.count("<tr>") == 601
    assert 'style' in page and "position: sticky" in page  # the header row stays visible while scrolling


def test_markdown_tables_and_lists_from_the_metadata():
    table = markdown_table("| parameter | value |\n|---|---|\n| max_shifts | 15, 15 |\n| pw_rigid | TRUE |")
    assert list(table.columns) == ["parameter", "value"] and table.iloc[0].tolist() == ["max_shifts", "15, 15"]
    assert png_from_markdown(f"![x](data:image/png;base64,{base64.b64encode(PNG).decode()})") == PNG
    assert png_from_markdown("no image") is None
    page = render_report(LineReport("L", sections=(Section("S", (Text("advice", "- one\n- two <b>"),)),)))
    assert "<ul><li>one</li><li>two &lt;b&gt;</li></ul>" in page
