"""Results in the field's standards: one NWB file per experiment line (see :mod:`.nwb`).

pynwb is imported only when a file is written, so importing this package stays cheap.
"""
from .nwb import (NwbContents, NwbExport, NwbInputError, NwbInspection, combined_parameters_hash, export_summary,
                  inspect_nwb, write_nwb, write_recording_nwb)
from .session import ImagingInfo, SessionInfo, SubjectInfo, session_info

__all__ = ["ImagingInfo", "NwbContents", "NwbExport", "NwbInputError", "NwbInspection", "SessionInfo",
           "SubjectInfo", "combined_parameters_hash", "export_summary", "inspect_nwb", "session_info", "write_nwb",
           "write_recording_nwb"]
