"""The lab's project folder: ``experiments.csv`` and ``analysis_parameters.csv``.

Real lab files carry documentation rows (a text ``line number``), empty trailing
rows, ``NA`` cells, Windows paths and, sometimes, duplicated keys. Reading is
lenient where the lab's habits are harmless (documentation and empty rows are
skipped, metadata columns kept as text) and strict where a silent guess would be
wrong: a missing or duplicated ``line number``, or a session folder that does not
exist, is a :class:`ProjectError` naming the file, the row and the column.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Mapping

from ..params import ParameterLayer, PipelineParams, build_pipeline_params, unknown_parameter_names
from .cells import format_tuple, parse_cell, parse_number
from .csvfile import (CsvText, ProjectError, ReadOnlyFileError, quote_field, read_csv_text, scan_records, set_cell,
                      write_text_atomic)

log = logging.getLogger(__name__)

EXPERIMENTS_CSV = "experiments.csv"
PARAMETERS_CSV = "analysis_parameters.csv"
KEY = "line number"
REQUIRED_EXPERIMENT_COLUMNS = ("line number", "id", "date (YYMMDD)", "calcium imaging directory")
SESSION_DIR_COLUMN = "calcium imaging directory"
# Columns of analysis_parameters.csv that are metadata, not parameters.
METADATA_PARAMETER_COLUMNS = frozenset({
    "line number", "id", "date (YYMMDD)", "calcium imaging directory", "Box Calcium Folder ID",
    "ephys directory", "indices of TTL events to delete", "zero time (s)",
    "periods of high slow wave power (s)", "comments", "notes",
})


@dataclass(frozen=True)
class Experiment:
    """One recording session (a row of experiments.csv)."""

    line_num: int
    subject_id: str
    date: str
    session_dir_text: str  # the cell as written
    row: int  # physical line in experiments.csv
    metadata: Mapping[str, str] = field(default_factory=dict)  # every column, as text

    def session_dir(self, data_path: str | os.PathLike | None, *, experiments_file: Path | None = None,
                    must_exist: bool = True) -> Path:
        """Resolve the raw session folder (relative to ``data_path``; absolute paths as is)."""
        p = _as_local_path(self.session_dir_text)
        if not p.is_absolute():
            if data_path is None:
                raise ProjectError(
                    f"{experiments_file or EXPERIMENTS_CSV}, row {self.row}, column '{SESSION_DIR_COLUMN}': "
                    f"'{self.session_dir_text}' is relative but no data path was given. "
                    f"Pass --data-path (or set ACE_DATA_PATH).")
            p = Path(data_path) / p
        if must_exist and not p.is_dir():
            raise ProjectError(
                f"{experiments_file or EXPERIMENTS_CSV}, row {self.row}, column '{SESSION_DIR_COLUMN}': "
                f"session folder '{p}' does not exist (line number {self.line_num}). "
                f"Check the data path and the folder name.")
        return p


def _as_local_path(text: str) -> Path:
    """Accept Windows-style paths written on lab PCs (backslashes, drive letters)."""
    text = text.strip()
    if "\\" in text or (len(text) > 1 and text[1] == ":"):
        w = PureWindowsPath(text)
        if w.drive or w.root:
            return Path(text)  # an absolute Windows path: used as is
        return Path(*w.parts)
    return Path(text)


def _parse_line_number(cell: str) -> int | None:
    """The integer key, or None when the cell is not an integer (documentation rows)."""
    v = parse_number(cell)
    if v is None or float(v) != int(v):
        return None
    return int(v)


def _is_empty(values) -> bool:
    return not any(v.strip() for v in values)


def _row_dict(header: tuple[str, ...], values: tuple[str, ...]) -> dict[str, str]:
    return {h: (values[i] if i < len(values) else "") for i, h in enumerate(header) if h}


def _index_rows(csv: CsvText, *, required: tuple[str, ...]) -> dict[int, tuple[int, dict[str, str]]]:
    """line number -> (record index, row) for one of the lab's wide CSV files."""
    header = csv.header
    if not header:
        raise ProjectError(f"{csv.path}: the file is empty. It needs a header row with '{KEY}'.", file=csv.path)
    missing = [c for c in required if c not in header]
    if missing:
        raise ProjectError(f"{csv.path}, row 1 (header): missing column(s) {missing}. "
                           f"Columns found: {list(h for h in header if h)}.", file=csv.path)
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise ProjectError(f"{csv.path}, row 1 (header): column(s) {dupes} appear more than once. "
                           f"Rename or delete the copies.", file=csv.path)
    out: dict[int, tuple[int, dict[str, str]]] = {}
    for idx, rec in enumerate(csv.records[1:], start=1):
        if _is_empty(rec.values):
            continue
        row = _row_dict(header, rec.values)
        key_text = row.get(KEY, "").strip()
        if not key_text:
            raise ProjectError(f"{csv.path}, row {rec.line}, column '{KEY}': the cell is empty but the row has "
                               f"data. Give the row its line number, or delete the row.", file=csv.path)
        key = _parse_line_number(key_text)
        if key is None:
            log.debug("%s row %d: '%s' is not a line number; treated as a documentation row",
                      csv.path, rec.line, key_text)
            continue
        if key in out:
            first = csv.records[out[key][0]].line
            raise ProjectError(f"{csv.path}, rows {first} and {rec.line}, column '{KEY}': line number {key} "
                               f"appears twice. Each session needs its own line number; delete or renumber one.",
                               file=csv.path)
        out[key] = (idx, row)
    return out


@dataclass(frozen=True)
class Project:
    """The lab's project folder with its two CSV files, read once."""

    project_path: Path
    experiments: Mapping[int, Experiment]
    parameter_rows: Mapping[int, Mapping[str, str]]
    parameter_row_lines: Mapping[int, int]
    parameter_columns: tuple[str, ...]
    data_path: Path | None = None

    @classmethod
    def load(cls, project_path: str | os.PathLike, data_path: str | os.PathLike | None = None) -> "Project":
        project_path = Path(project_path)
        if not project_path.is_dir():
            raise ProjectError(f"project path '{project_path}' is not a folder. It must hold "
                               f"{EXPERIMENTS_CSV} and {PARAMETERS_CSV}.")
        exp_csv = read_csv_text(project_path / EXPERIMENTS_CSV)
        rows = _index_rows(exp_csv, required=REQUIRED_EXPERIMENT_COLUMNS)
        experiments = {}
        for key, (idx, row) in rows.items():
            rec = exp_csv.records[idx]
            d = row.get(SESSION_DIR_COLUMN, "").strip()
            experiments[key] = Experiment(
                line_num=key, subject_id=row.get("id", "").strip(), date=row.get("date (YYMMDD)", "").strip(),
                session_dir_text=d, row=rec.line, metadata=row)
        par_rows: dict[int, Mapping[str, str]] = {}
        par_lines: dict[int, int] = {}
        par_cols: tuple[str, ...] = ()
        par_path = project_path / PARAMETERS_CSV
        if par_path.exists():
            par_csv = read_csv_text(par_path)
            par_cols = tuple(h for h in par_csv.header if h)
            for key, (idx, row) in _index_rows(par_csv, required=(KEY,)).items():
                par_rows[key] = row
                par_lines[key] = par_csv.records[idx].line
        else:
            log.warning("%s not found: every line uses the default parameters", par_path)
        return cls(project_path, experiments, par_rows, par_lines, par_cols,
                   None if data_path is None else Path(data_path))

    @property
    def experiments_file(self) -> Path:
        return self.project_path / EXPERIMENTS_CSV

    @property
    def parameters_file(self) -> Path:
        return self.project_path / PARAMETERS_CSV

    @property
    def line_numbers(self) -> list[int]:
        return sorted(self.experiments)

    def experiment(self, line_num: int) -> Experiment:
        try:
            return self.experiments[int(line_num)]
        except KeyError:
            known = ", ".join(str(k) for k in self.line_numbers) or "none"
            raise ProjectError(f"{self.experiments_file}: no row has line number {line_num} in column '{KEY}' "
                               f"(line numbers found: {known}). --line-num selects by the 'line number' "
                               f"column, not by row position.") from None

    def session_dir(self, line_num: int, *, must_exist: bool = True) -> Path:
        return self.experiment(line_num).session_dir(self.data_path, experiments_file=self.experiments_file,
                                                     must_exist=must_exist)

    def parameter_values(self, line_num: int) -> dict[str, Any]:
        """The line's parameter cells parsed to Python values (metadata columns left out)."""
        row = self.parameter_rows.get(int(line_num))
        if row is None:
            return {}
        meta = METADATA_PARAMETER_COLUMNS | set(self.experiments[int(line_num)].metadata) if int(
            line_num) in self.experiments else METADATA_PARAMETER_COLUMNS
        return {k: parse_cell(v) for k, v in row.items() if k not in meta}

    def unknown_parameter_columns(self) -> tuple[list[str], list[str]]:
        """(unsupported CaImAn names, unknown names) among analysis_parameters.csv's columns."""
        exp_cols = set()
        for e in self.experiments.values():
            exp_cols.update(e.metadata)
        cols = [c for c in self.parameter_columns if c not in METADATA_PARAMETER_COLUMNS and c not in exp_cols]
        return unknown_parameter_names(cols)

    def params(self, line_num: int, overrides: Mapping[str, Any] | None = None) -> PipelineParams:
        """Typed parameters for one line: defaults < CSV row < explicit overrides."""
        line_num = int(line_num)
        self.experiment(line_num)
        values = self.parameter_values(line_num)
        if line_num not in self.parameter_rows and self.parameter_columns:
            log.warning("%s has no row for line number %d: using the default parameters",
                        self.parameters_file, line_num)
        unsupported, unknown = self.unknown_parameter_columns()
        for name in unsupported:
            log.warning("%s: column '%s' is a CaImAn parameter this platform does not implement; it is ignored",
                        self.parameters_file, name)
        for name in unknown:
            log.warning("%s: unknown column '%s' is ignored (a typo of a parameter name?)",
                        self.parameters_file, name)
        row = self.parameter_row_lines.get(line_num)
        layers = [ParameterLayer(values, f"{self.parameters_file}, row {row if row else '?'}",
                                 file=str(self.parameters_file), row=row)]
        if overrides:
            layers.append(ParameterLayer({k: v for k, v in overrides.items() if v is not None},
                                         "the arguments given"))
        params, notes = build_pipeline_params(layers)
        for n in notes:
            log.info("line %d: %s", line_num, n)
        return params


def save_crop_coords(project_path: str | os.PathLike, line_num: int, coords) -> Path:
    """Save crop coordinates for one line into analysis_parameters.csv, atomically.

    Adds the ``crop_coords`` column if missing (and the line's row if missing);
    every other byte of the file is left as it was. The value round-trips through
    :func:`ace_neuro.project.cells.parse_cell`.
    """
    if len(coords) != 4:
        raise ProjectError(f"crop coordinates must be (x0, y0, x1, y1), got {coords!r}")
    path = Path(project_path) / PARAMETERS_CSV
    value = format_tuple(coords)
    if not path.exists():
        write_text_atomic(path, f"{KEY},crop_coords\n{int(line_num)},{quote_field(value)}\n")
        return path
    csv = read_csv_text(path)
    rows = _index_rows(csv, required=(KEY,))
    if int(line_num) in rows:
        text = set_cell(csv, rows[int(line_num)][0], "crop_coords", value)
    else:
        text = _append_row(csv, int(line_num), value)
    try:
        write_text_atomic(path, text, bom=csv.bom, encoding=csv.encoding)
    except ReadOnlyFileError as exc:
        raise ProjectError(f"{exc} The crop coordinates {value} for line {int(line_num)} were not saved.",
                           file=path) from None
    return path


def _append_row(csv: CsvText, line_num: int, value: str) -> str:
    """Add a row for a line that has none: after the last non-empty record."""
    header = list(csv.header)
    text = csv.text
    if "crop_coords" not in header:
        text = set_cell(csv, 0, "crop_coords", "")  # adds the column (header) only
        csv = CsvText(csv.path, text, csv.bom, tuple(scan_records(text, csv.path)))
        header = list(csv.header)
    cells = [""] * len(header)
    cells[header.index(KEY)] = str(line_num)
    cells[header.index("crop_coords")] = value
    last = max(i for i, r in enumerate(csv.records) if not _is_empty(r.values))
    rec = csv.records[last]
    new = ",".join(quote_field(c) for c in cells)
    if rec.terminator:
        insert_at = rec.end + len(rec.terminator)
        return text[:insert_at] + new + rec.terminator + text[insert_at:]
    term = "\r\n" if "\r\n" in text else "\n"
    return text[:rec.end] + term + new + text[rec.end:]


CURATION_FOLDER = "curation"


def curation_file(project_path: str | os.PathLike, line_num: int) -> Path:
    """Where a line's manual curation (rejected / restored component ids) is kept: ``<project>/curation/<line>.json``.

    It lives with the lab's project files, not with the computed outputs, so re-running
    the pipeline or wiping the storage root never loses a person's decisions.
    """
    return Path(project_path) / CURATION_FOLDER / f"{int(line_num)}.json"
