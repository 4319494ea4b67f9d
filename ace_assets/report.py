"""``line_report``: one self-contained HTML page per line with every figure and the key tables.

Each section is one asset of the line, built from what its latest materialisation recorded (the
findings first, its figures, its parameters folded), so the page shows the numbers the UI shows.
The components section redraws the contours large enough to read every id and the traces of
more components than the UI's preview, and lists every component in a folded table.
"""

import json
import re
import time

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetRecordsFilter, asset

from ace_neuro.plots.cnmfe import plot_contours, plot_traces
from ace_neuro.plots.common import figure_png
from ace_neuro.report import Figure, LineReport, Section, Table, Text, png_from_markdown
from ace_neuro.stages.cnmfe import CnmfeResult
from ace_neuro.stages.events import event_rates_per_minute
from resources.failures import reports_failures

from .partitions import lines_partitions
from .signals import accepted_ids

#: the report's sections, in pipeline order: (asset, section title)
SECTIONS = (("raw_movie", "Recording"), ("frame_times", "Frame times"), ("cropped_movie", "Crop"),
            ("dff_movie", "Detrend and dF/F"), ("motion_corrected_movie", "Motion correction"),
            ("cnmfe_summary_images", "Seeds and suggested parameters"), ("cnmfe_estimates", "CNMF-E"),
            ("accepted_components", "Components"), ("calcium_events", "Events"), ("calcium_phase", "Phase"),
            ("spectrograms", "Spectrogram"))
#: the title of each figure an asset records, by (asset, metadata key)
FIGURE_TITLES = {
    ("raw_movie", "preview"): "mean and max projections of the raw movie",
    ("cropped_movie", "preview"): "crop box on the mean projection",
    ("dff_movie", "preview"): "dF/F projections",
    ("motion_corrected_movie", "preview"): "shifts over time",
    ("motion_corrected_movie", "before_after"): "mean frame before and after correction",
    ("cnmfe_summary_images", "preview"): "seeds on the correlation and PNR images, and seed counts by threshold",
    ("cnmfe_estimates", "preview"): "contours of the components found, before evaluation",
    ("calcium_events", "preview"): "event raster",
    ("calcium_events", "phase_histogram"): "phase histogram of the events",
    ("calcium_phase", "preview"): "mean fluorescence, band-passed, and its phase",
    ("spectrograms", "preview"): "spectrogram of the mean fluorescence",
}
#: storage bookkeeping the report leaves out
_SKIP = {"path", "dagster/row_count", "dagster/column_schema", "parameters_hash", "parameters"}
#: traces drawn in the report (the UI's preview shows 10)
REPORT_TRACES = 20


@asset(partitions_def=lines_partitions, io_manager_key="html_io", group_name="report", kinds={"html"},
       deps=["raw_movie", "frame_times", "cropped_movie", "dff_movie", "motion_corrected_movie",
             "cnmfe_summary_images", "calcium_phase", "spectrograms"],
       description="One self-contained HTML page for the line: projections, crop, shifts, seeds, contours "
                   "with ids, traces with scale bars, the event raster, the phase histogram and the "
                   "spectrogram, with each stage's findings and parameters. Opens in any browser, no server.")
@reports_failures
def line_report(context: AssetExecutionContext, cnmfe_estimates: CnmfeResult,
                accepted_components: pd.DataFrame, calcium_events: pd.DataFrame) -> LineReport:
    line = context.partition_key
    recorded = {name: _latest_metadata(context, name, line) for name, _ in SECTIONS}
    sections = [_asset_section(name, title, recorded[name]) for name, title in SECTIONS if recorded[name] is not None]
    at = [i for i, s in enumerate(sections) if s.title == "Components"]
    components = _components_section(cnmfe_estimates, accepted_components, calcium_events, recorded)
    if at:
        sections[at[0]] = components
    else:
        sections.append(components)
    raw = recorded.get("raw_movie") or {}
    subtitle = " | ".join(str(x) for x in (f"{raw.get('format', '')} {raw.get('device', '')}".strip(),
                                          raw.get("session_dir", ""),
                                          f"made {time.strftime('%Y-%m-%d %H:%M')}") if x)
    return LineReport(title=f"Line {line}", subtitle=subtitle, sections=tuple(sections))


# -------------------------------------------------------------------------------------------- parts
def _latest_metadata(context: AssetExecutionContext, asset_name: str, line: str):
    """What the line's latest materialisation of ``asset_name`` recorded, as plain values (None: never)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset_name), asset_partitions=[line]), limit=1).records
    if not records:
        return None
    return {k: getattr(v, "value", v) for k, v in records[0].asset_materialization.metadata.items()}


def _asset_section(asset_name: str, title: str, meta: dict) -> Section:
    """An asset's findings as a table, its figures, then its parameters folded."""
    findings, items = [], []
    for key, value in meta.items():
        if key in _SKIP:
            continue
        text = value if isinstance(value, str) else None
        png = png_from_markdown(text) if text else None
        if png is not None:
            items.append(Figure(FIGURE_TITLES.get((asset_name, key), key.replace("_", " ")), png))
        elif text and text.lstrip().startswith("|"):
            items.append(Table(key.replace("_", " "), markdown_table(text)))
        elif text and text.lstrip().startswith("- "):
            items.append(Text(key.replace("_", " "), text))
        else:
            findings.append((key, _value_text(value)))
    head = [Table("findings", findings)] if findings else []
    params = [Table(f"parameters (hash {meta['parameters_hash']})", markdown_table(meta["parameters"]), folded=True)
              ] if "parameters" in meta else []
    return Section(title, (*head, *items, *params))


def _components_section(est: CnmfeResult, table: pd.DataFrame, events: pd.DataFrame, recorded: dict) -> Section:
    meta = recorded.get("accepted_components") or {}
    ids = accepted_ids(table)
    times = np.arange(est.n_frames) / float(est.frame_rate)
    rates = event_rates_per_minute(events, ids, times) if len(ids) else pd.Series(dtype=float)
    listing = table.copy()
    listing["events_per_min"] = listing["component_id"].map(rates).astype(float).round(2)
    for col in ("centroid_y", "centroid_x"):
        listing[col] = listing[col].round(1)
    for col in ("snr", "r_value"):
        listing[col] = listing[col].astype(float).round(3)
    size = 9.0 if est.n_components <= 150 else 13.0
    findings = [(k, _value_text(meta[k])) for k in ("n_accepted", "n_rejected", "snr_quartiles_accepted",
                                                    "r_value_quartiles_accepted", "manually_rejected",
                                                    "manually_restored") if k in meta]
    items = [Table("findings", findings)] if findings else []
    if meta.get("rejected_because"):
        items.append(Text("rejected because", str(meta["rejected_because"])))
    items += [
        Figure("contours with ids", figure_png(plot_contours(est, table, size_in=size, dpi=110)),
               "Accepted components in green, rejected in red, on the correlation image; the number is the "
               "component id used in every table and in the events."),
        Figure("traces", figure_png(plot_traces(est, table, n=REPORT_TRACES)),
               f"The {REPORT_TRACES} accepted components with the highest SNR: raw (grey) and denoised traces, "
               "each in units of its own noise SD (scale bar)."),
        Table("every component", listing, folded=True),
    ]
    if "parameters" in meta:
        items.append(Table(f"parameters (hash {meta['parameters_hash']})", markdown_table(meta["parameters"]),
                           folded=True))
    return Section("Components", tuple(items))


def markdown_table(text: str) -> pd.DataFrame:
    """A markdown pipe table (as the metadata writes them) as a DataFrame."""
    rows = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1])]
            for ln in text.strip().splitlines() if ln.strip().startswith("|")]
    rows = [r for r in rows if not all(set(c) <= set("-: ") for c in r)]
    if not rows:
        return pd.DataFrame()
    width = len(rows[0])
    return pd.DataFrame([r + [""] * (width - len(r)) for r in rows[1:]], columns=rows[0])


def _value_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
