"""Raw miniscope recordings: one reader per acquisition format, chosen automatically."""
from .base import CorruptVideoError, MiniscopeReader, ReaderError, RecordingInfo
from .registry import READERS, find_reader, open_recording, register_reader

__all__ = ["CorruptVideoError", "MiniscopeReader", "READERS", "ReaderError", "RecordingInfo",
           "find_reader", "open_recording", "register_reader"]
