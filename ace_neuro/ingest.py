"""Raw recording -> movie stream: decode the miniscope's videos once, chunk by chunk."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .movie import MovieStream
from .readers import MiniscopeReader


def recording_stream(reader: MiniscopeReader, *, block_frames: int = 64) -> MovieStream:
    """A :class:`MovieStream` of the raw frames (native dtype) with their timestamps."""
    info = reader.info
    return MovieStream(
        shape=(info.n_frames, info.height, info.width),
        dtype=np.dtype(info.dtype),
        blocks=(block for _, block in reader.iter_blocks(block_frames)),
        times=info.times,
        frame_rate=info.frame_rate,
        attrs={
            "format": info.format,
            "device": info.device,
            "session_dir": str(info.session_dir),
            "video_files": [c.path.name for c in info.chunks],
            "n_dropped_frames": info.n_dropped,
            "warnings": list(info.warnings),
        },
    )


def frame_times_table(reader: MiniscopeReader) -> pd.DataFrame:
    """The ``frame_times`` table (one row per frame)."""
    return reader.frame_table()
