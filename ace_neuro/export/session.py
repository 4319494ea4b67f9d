"""What an NWB file says about the subject, the session and the device, from the lab's own files.

The lab's files hold this, and nothing is invented beyond the device's known optics:

* ``experiments.csv``: the line's row (subject id, date and every other column, kept as text);
  optional columns ``species``, ``sex``, ``age`` (ISO 8601 such as ``P90D``, or a number with the
  unit in the header: ``age (days)``), ``date of birth``, ``strain``, ``genotype``, a weight column
  whose header names the unit (``rat weight (kg)``), ``indicator`` and ``location`` (or
  ``brain region``);
* the recording (:class:`~ace_neuro.readers.RecordingInfo`): the UCLA DAQ's device ``metaData.json``
  (device type, gain, LED power, frame rate, frames per file, compression, ROI) and the session's
  ``metaData.json`` (recording start time, researcher, experiment name).

A value the files do not give stays empty and is listed by :meth:`SessionInfo.missing`, so the
front end can say which column to add before a DANDI upload.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from ..errors import ProjectError

#: UCLA Miniscope optics (V3, V4 and the ONIX-hosted V4): blue LED excitation, green emission filter.
MINISCOPE_EXCITATION_NM = 470.0
MINISCOPE_EMISSION_NM = 525.0

_MISSING_TEXT = {"", "na", "n/a", "nan", "none", "null", "-"}
_COMMON_SPECIES = {"rat": "Rattus norvegicus", "mouse": "Mus musculus", "human": "Homo sapiens"}
_SEX = {"m": "M", "male": "M", "f": "F", "female": "F", "u": "U", "unknown": "U", "o": "O", "other": "O"}
_AGE_UNITS = {"day": "D", "days": "D", "d": "D", "week": "W", "weeks": "W", "w": "W", "month": "M",
              "months": "M", "year": "Y", "years": "Y", "y": "Y"}
_WEIGHT_UNITS = ("kg", "g", "mg", "ug", "μg", "ng", "pg")


@dataclass(frozen=True)
class SubjectInfo:
    """The animal, as the experiments row describes it (``sex`` is ``'U'``, unknown, when not given)."""

    subject_id: str
    species: str | None = None
    sex: str = "U"
    age: str | None = None
    date_of_birth: datetime | None = None
    weight: str | None = None
    strain: str | None = None
    genotype: str | None = None


@dataclass(frozen=True)
class ImagingInfo:
    """The imaging plane's biology and optics."""

    indicator: str = "unknown"
    location: str = "unknown"
    excitation_lambda_nm: float = MINISCOPE_EXCITATION_NM
    emission_lambda_nm: float = MINISCOPE_EMISSION_NM


@dataclass(frozen=True)
class SessionInfo:
    """Everything an NWB file of one line says about where its data came from.

    Attributes
    ----------
    line_num : int
    subject : SubjectInfo
    session_start_time : datetime (timezone-aware)
        The first frame's time; frame times in the file count from it.
    start_time_source : str
        How ``session_start_time`` was found (shown in the file's notes).
    session_description, experiment_description : str
    experimenter : tuple of str
    experiment_row : mapping
        The line's row of experiments.csv, every column as text.
    recording_format, device_type : str
        The reader's format name and the rig's device type (``Miniscope_V4_BNO`` ...).
    device_metadata : mapping
        The device's own settings file (the DAQ's ``metaData.json``), as read.
    session_metadata : mapping
        The session's settings file (the DAQ's session ``metaData.json``), empty when none.
    frame_rate : float
        From the timestamps.
    imaging : ImagingInfo
    session_dir : str
    """

    line_num: int
    subject: SubjectInfo
    session_start_time: datetime
    start_time_source: str
    session_description: str
    experiment_description: str
    experimenter: tuple[str, ...]
    experiment_row: Mapping[str, str]
    recording_format: str
    device_type: str
    device_metadata: Mapping[str, Any]
    session_metadata: Mapping[str, Any]
    frame_rate: float
    imaging: ImagingInfo = field(default_factory=ImagingInfo)
    session_dir: str = ""

    def missing(self) -> list[str]:
        """What a DANDI upload wants that the lab's files do not say, with the column that would say it."""
        out = []
        if not self.subject.species:
            out.append("subject species: add a 'species' column to experiments.csv (e.g. Rattus norvegicus)")
        if self.subject.age is None and self.subject.date_of_birth is None:
            out.append("subject age: add an 'age' column (ISO 8601, e.g. P90D, or 'age (days)') or 'date of birth'")
        if self.subject.sex == "U":
            out.append("subject sex: add a 'sex' column (M, F, U or O); written as U (unknown)")
        return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return None if s.lower() in _MISSING_TEXT else s


def _columns(row: Mapping[str, str]) -> dict[str, tuple[str, str, str]]:
    """lower-case header without its unit -> (header, unit in parentheses, value), empty cells left out."""
    out = {}
    for header, value in row.items():
        text = _text(value)
        if text is None:
            continue
        m = re.fullmatch(r"\s*(.*?)\s*(?:\(([^)]*)\))?\s*", str(header))
        base, unit = (m.group(1) or "").lower(), (m.group(2) or "").strip().lower()
        out.setdefault(base, (str(header), unit, text))
    return out


def _age(value: str, unit: str, where: str) -> str:
    if re.fullmatch(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?(/P.*)?", value):
        return value
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None and unit in _AGE_UNITS and number >= 0:
        return f"P{int(number) if number.is_integer() else number}{_AGE_UNITS[unit]}"
    raise ProjectError(f"{where}: age '{value}' is neither ISO 8601 (P90D, P12W) nor a number with its unit in the "
                       f"column header (e.g. 'age (days)').",
                       fix="write the age as ISO 8601 (P90D = 90 days) or name the unit in the header, then "
                           "export again.")


def _weight(header: str, unit: str, value: str) -> str | None:
    if re.fullmatch(r"[0-9.]+ ?(" + "|".join(_WEIGHT_UNITS) + ")", value):
        return value if " " in value else re.sub(r"([0-9.])([a-zμ])", r"\1 \2", value, count=1)
    if unit in _WEIGHT_UNITS and re.fullmatch(r"[0-9.]+", value):
        return f"{value} {unit}"
    return None  # a weight without a unit is ambiguous: kept in the row only


def _date_of_birth(value: str, where: str) -> datetime:
    for fmt in ("%Y-%m-%d", "%y%m%d", "%Y%m%d", "%m/%d/%Y"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=_local_tz())
        except ValueError:
            continue
    raise ProjectError(f"{where}: date of birth '{value}' is not a date (YYYY-MM-DD or YYMMDD).",
                       fix="write the date as YYYY-MM-DD, then export again.")


def subject_from_row(subject_id: str, row: Mapping[str, str], *, where: str = "experiments.csv") -> SubjectInfo:
    """The subject fields an experiments row holds (see the module docstring for the column names)."""
    cols = _columns(row)

    def get(*names):
        for n in names:
            if n in cols:
                return cols[n]
        return None

    species = get("species")
    sex = get("sex")
    age = get("age")
    dob = get("date of birth", "dob", "date_of_birth", "birth date", "birthdate")
    weights = [(h, u, v) for base, (h, u, v) in cols.items() if base.endswith("weight")]
    species_name = None
    if species is not None:
        species_name = _COMMON_SPECIES.get(species[2].lower(), species[2])
    weight = next((w for w in (_weight(*x) for x in weights) if w), None)
    return SubjectInfo(
        subject_id=str(subject_id).replace("/", "-"),
        species=species_name,
        sex=_SEX.get(sex[2].lower(), "U") if sex is not None else "U",
        age=_age(age[2], age[1], f"{where}, column '{age[0]}'") if age is not None else None,
        date_of_birth=_date_of_birth(dob[2], f"{where}, column '{dob[0]}'") if dob is not None else None,
        weight=weight,
        strain=(get("strain") or (None, None, None))[2],
        genotype=(get("genotype") or (None, None, None))[2],
    )


def imaging_from_row(row: Mapping[str, str]) -> ImagingInfo:
    cols = _columns(row)
    indicator = cols.get("indicator")
    location = next((cols[n] for n in ("location", "brain region", "region", "imaging location") if n in cols), None)
    return ImagingInfo(indicator=indicator[2] if indicator else "unknown",
                       location=location[2] if location else "unknown")


def _local_tz():
    return datetime.now().astimezone().tzinfo


def _start_time(recording_meta: Mapping[str, Any], date_text: str, where: str) -> tuple[datetime, str]:
    """(time of the first frame, how it was found)."""
    session = recording_meta.get("session") if isinstance(recording_meta.get("session"), Mapping) else {}
    start = session.get("recordingStartTime") if session else None
    first = float(recording_meta.get("first_timestamp_s", 0.0) or 0.0)
    if isinstance(start, Mapping) and isinstance(start.get("msecSinceEpoch"), (int, float)):
        t = datetime.fromtimestamp(start["msecSinceEpoch"] / 1000.0, tz=timezone.utc) + timedelta(seconds=first)
        return t, "the DAQ session's recordingStartTime plus the first frame's timestamp"
    if recording_meta.get("session_start_time"):  # an NWB recording's own start time
        try:
            t = datetime.fromisoformat(str(recording_meta["session_start_time"]))
        except ValueError:
            t = None
        if t is not None and t.tzinfo is not None:
            return t + timedelta(seconds=first), "the source NWB file's session_start_time plus the first frame's time"
    try:
        day = datetime.strptime(str(date_text).strip(), "%y%m%d")
    except ValueError:
        raise ProjectError(f"{where}: date '{date_text}' is not YYMMDD and the recording has no start time; the NWB "
                           f"file needs the session's date.",
                           fix="write the date as YYMMDD in experiments.csv, then export again.") from None
    return day.replace(tzinfo=_local_tz()), "the date in experiments.csv (midnight, this computer's time zone)"


def session_info(experiment, recording) -> SessionInfo:
    """A :class:`SessionInfo` from a project's :class:`~ace_neuro.project.Experiment` and a reader's
    :class:`~ace_neuro.readers.RecordingInfo`."""
    row = {str(k): str(v) for k, v in dict(experiment.metadata).items()}
    where = f"experiments.csv, row {experiment.row}"
    meta = dict(recording.metadata)
    start, source = _start_time(meta, experiment.date, where)
    session_meta = meta.get("session") if isinstance(meta.get("session"), Mapping) else {}
    device_meta = {k: v for k, v in meta.items() if k != "session"}
    researcher = _text(session_meta.get("researcherName")) if session_meta else None
    comments = _text(row.get("comments"))
    description = (f"Miniscope calcium imaging of subject {experiment.subject_id} on {experiment.date} "
                   f"(line {experiment.line_num}), analysed with ace-neuro"
                   + (f". {comments}" if comments else ""))
    return SessionInfo(
        line_num=int(experiment.line_num),
        subject=subject_from_row(experiment.subject_id, row, where=where),
        session_start_time=start, start_time_source=source,
        session_description=description,
        experiment_description=(_text(session_meta.get("experimentName")) if session_meta else None)
        or "1-photon miniscope calcium imaging",
        experimenter=(researcher,) if researcher else (),
        experiment_row=row, recording_format=recording.format, device_type=recording.device or "Miniscope",
        device_metadata=json.loads(json.dumps(device_meta, default=str)),
        session_metadata=json.loads(json.dumps(session_meta, default=str)) if session_meta else {},
        frame_rate=float(recording.frame_rate), imaging=imaging_from_row(row),
        session_dir=str(recording.session_dir),
    )


__all__ = ["ImagingInfo", "MINISCOPE_EMISSION_NM", "MINISCOPE_EXCITATION_NM", "SessionInfo", "SubjectInfo",
           "imaging_from_row", "session_info", "subject_from_row"]
