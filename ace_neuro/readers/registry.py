"""Which reader handles a session folder: tried in a fixed order, the first that recognises it wins.

Order (most specific first):

1. :class:`~ace_neuro.readers.onix.OnixReader` - ``start-time_<n>_miniscope.csv``
2. :class:`~ace_neuro.readers.ucla_legacy.UclaLegacyV3Reader` - ``msCam*.avi`` + ``timestamp.dat``
3. :class:`~ace_neuro.readers.ucla_daq.UclaDaqReader` - a Miniscope device folder with ``timeStamps.csv``
4. :class:`~ace_neuro.readers.nwb.NwbReader` - one ``.nwb`` file with an imaging series (last: a rig's own
   files win over an NWB file exported beside them)

To add a rig, write a :class:`~ace_neuro.readers.base.MiniscopeReader` subclass and
insert it with :func:`register_reader` (see the README, "Adding a reader").
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .base import MiniscopeReader, ReaderError
from .nwb import NwbReader
from .onix import OnixReader
from .ucla_daq import UclaDaqReader
from .ucla_legacy import UclaLegacyV3Reader

READERS: list[type[MiniscopeReader]] = [OnixReader, UclaLegacyV3Reader, UclaDaqReader, NwbReader]


def register_reader(reader: type[MiniscopeReader], *, before: type[MiniscopeReader] | None = None) -> None:
    """Add a reader to the order (at the end, or just before another)."""
    if reader in READERS:
        return
    if before is None:
        READERS.append(reader)
    else:
        READERS.insert(READERS.index(before), reader)


def find_reader(session_dir: str | os.PathLike) -> type[MiniscopeReader]:
    session_dir = Path(session_dir)
    if not session_dir.is_dir():
        raise ReaderError(f"{session_dir}: session folder not found.")
    for reader in READERS:
        if reader.recognises(session_dir):
            return reader
    looked = "\n".join(f"  - {r.format_name}: {r.looks_for}" for r in READERS)
    raise ReaderError(f"{session_dir}: no reader recognises this folder. Looked for, in order:\n{looked}")


def open_recording(session_dir: str | os.PathLike, *, filenames: Sequence[str] | None = None) -> MiniscopeReader:
    """The right reader for a session folder, ready to stream."""
    return find_reader(session_dir)(session_dir, filenames=filenames)
