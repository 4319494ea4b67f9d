"""One line's results as a self-contained HTML page: every figure embedded, the key tables beside them.

The page needs no server and no network: figures are PNGs embedded as ``data:`` URIs, the style
sheet is inline, and long tables (a 600-component line) fold into a ``<details>`` block that the
browser opens on a click. Build a :class:`LineReport` of :class:`Section` s holding
:class:`Figure` s and :class:`Table` s, then :func:`render_report` (text) or :func:`write_report`
(an atomic file write).
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from .storage import Location, as_location, atomic_path, write_bytes


@dataclass(frozen=True)
class Figure:
    """A PNG figure with its title and an optional caption."""

    title: str
    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """A table: ``rows`` as (label, value) pairs, or a DataFrame. ``folded`` tables open on a click."""

    title: str
    rows: Sequence[tuple[str, str]] | pd.DataFrame
    folded: bool = False


@dataclass(frozen=True)
class Text:
    """A paragraph or a markdown-like bullet list (lines starting with ``- ``)."""

    title: str
    body: str


@dataclass(frozen=True)
class Section:
    title: str
    items: Sequence[Figure | Table | Text] = ()
    note: str = ""


@dataclass(frozen=True)
class LineReport:
    title: str
    subtitle: str = ""
    sections: Sequence[Section] = field(default_factory=tuple)

    @property
    def n_figures(self) -> int:
        return sum(isinstance(item, Figure) for s in self.sections for item in s.items)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5em 3em; color: #1d1d1f; line-height: 1.45; }
header { border-bottom: 2px solid #ddd; margin-bottom: 1em; }
h1 { margin: 0.6em 0 0.1em; font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #eee; }
h3 { font-size: 1em; margin: 1em 0 0.3em; }
nav a { margin-right: 1em; } .subtitle { color: #555; margin: 0 0 0.8em; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.3em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f7; position: sticky; top: 0; }
details { margin: 0.5em 0 1em; } details > div { max-height: 32em; overflow: auto; }
summary { cursor: pointer; font-weight: 600; } .note { color: #8a4b00; }
"""


def render_report(report: LineReport) -> str:
    """The report as one HTML document."""
    nav = " ".join(f'<a href="#{_anchor(s.title)}">{html.escape(s.title)}</a>' for s in report.sections)
    body = "\n".join(_section(s) for s in report.sections)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(report.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<header><h1>{html.escape(report.title)}</h1>"
            f'<p class="subtitle">{html.escape(report.subtitle)}</p><nav>{nav}</nav></header>\n'
            f"{body}\n</body>\n</html>\n")


def write_report(report: LineReport, path: Location) -> Path | str:
    """Write the report to ``path`` (a local path or a URL) atomically (a reader never sees half a page);
    returns the path."""
    path = as_location(path)
    if isinstance(path, str):  # an object store: a version and its marker (see ace_neuro.storage)
        return write_bytes(render_report(report).encode("utf-8"), path)
    with atomic_path(path) as tmp:
        tmp.write_text(render_report(report), encoding="utf-8")
    return path


def png_from_markdown(text: str) -> bytes | None:
    """The PNG of a preview written as markdown with an embedded ``data:image/png`` image, if any."""
    m = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text or "")
    return base64.b64decode(m.group(1)) if m else None


# ----------------------------------------------------------------------------------------- parts
def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _section(s: Section) -> str:
    parts = [f'<section id="{_anchor(s.title)}">\n<h2>{html.escape(s.title)}</h2>']
    if s.note:
        parts.append(f'<p class="note">{html.escape(s.note)}</p>')
    parts.extend(_item(item) for item in s.items)
    parts.append("</section>")
    return "\n".join(parts)


def _item(item: Figure | Table | Text) -> str:
    if isinstance(item, Figure):
        data = base64.b64encode(item.png).decode()
        caption = f"<figcaption>{html.escape(item.caption)}</figcaption>" if item.caption else ""
        return (f'<figure><h3>{html.escape(item.title)}</h3>'
                f'<img alt="{html.escape(item.title)}" src="data:image/png;base64,{data}">{caption}</figure>')
    if isinstance(item, Table):
        table = _table_html(item.rows)
        if item.folded:
            n = len(item.rows)
            return (f"<details><summary>{html.escape(item.title)} ({n} rows)</summary>"
                    f"<div>{table}</div></details>")
        return f"<h3>{html.escape(item.title)}</h3>{table}"
    return f"<h3>{html.escape(item.title)}</h3>{_text_html(item.body)}"


def _table_html(rows: Sequence[tuple[str, str]] | pd.DataFrame) -> str:
    if isinstance(rows, pd.DataFrame):
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r) + "</tr>"
                       for r in rows.itertuples(index=False))
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_cell(v))}</td></tr>" for k, v in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _cell(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _text_html(body: str) -> str:
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if lines and all(ln.lstrip().startswith("- ") for ln in lines):
        return "<ul>" + "".join(f"<li>{html.escape(ln.lstrip()[2:])}</li>" for ln in lines) + "</ul>"
    return "".join(f"<p>{html.escape(ln)}</p>" for ln in lines)
