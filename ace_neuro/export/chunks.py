"""Large NWB datasets written piece by piece: footprints as full-frame image masks, movies frame block by block.

Both are :class:`hdmf.data_utils.GenericDataChunkIterator` subclasses: HDMF asks for one buffer at a
time and writes it into a chunked, gzip-compressed HDF5 dataset, so neither the masks of every
component nor the movie is ever held in memory.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hdmf.data_utils import GenericDataChunkIterator

#: frame blocks read from the stored movie per buffer (HDF5 chunks are ``chunk_frames`` frames)
BUFFER_CHUNKS = 4


class FootprintMasks(GenericDataChunkIterator):
    """Footprints ``A`` (pixels x K, on the cropped field) as K image masks on the full raw frame.

    Parameters
    ----------
    A : sparse matrix, shape (h*w, K)
        Pixel index ``y * w + x`` of the ``(h, w)`` field that was analysed.
    dims : (h, w)
    frame_shape : (H, W)
        The raw frame the masks are drawn on.
    offset : (row0, col0)
        Where the analysed field's top-left pixel lies in the raw frame (array rows from the top).
    """

    def __init__(self, A, dims: tuple[int, int], frame_shape: tuple[int, int], offset: tuple[int, int]):
        self._A = sp.csc_matrix(A)
        self._dims = (int(dims[0]), int(dims[1]))
        self._frame = (int(frame_shape[0]), int(frame_shape[1]))
        self._offset = (int(offset[0]), int(offset[1]))
        k = self._A.shape[1]
        super().__init__(chunk_shape=(1, *self._frame), buffer_shape=(max(1, min(k, 16)), *self._frame),
                         display_progress=False)

    def _get_maxshape(self) -> tuple[int, ...]:
        return (int(self._A.shape[1]), *self._frame)

    def _get_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        ks = range(*selection[0].indices(self._A.shape[1]))
        (h, w), (r0, c0) = self._dims, self._offset
        out = np.zeros((len(ks), *self._frame), dtype=np.float32)
        if len(ks):
            block = self._A[:, ks.start:ks.stop].toarray().T.reshape(len(ks), h, w)
            out[:, r0:r0 + h, c0:c0 + w] = block
        return out[(slice(None), *selection[1:])]


class MovieFrames(GenericDataChunkIterator):
    """A stored movie (anything sliceable along frames: a zarr array, an HDF5 dataset) in frame blocks."""

    def __init__(self, frames, *, chunk_frames: int = 64):
        self._frames = frames
        shape = tuple(int(s) for s in frames.shape)
        n = max(1, min(int(chunk_frames), shape[0]))
        super().__init__(chunk_shape=(n, *shape[1:]), buffer_shape=(min(shape[0], n * BUFFER_CHUNKS), *shape[1:]),
                         display_progress=False)

    def _get_maxshape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self._frames.shape)

    def _get_dtype(self) -> np.dtype:
        return np.dtype(self._frames.dtype)

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self._frames[selection])


__all__ = ["FootprintMasks", "MovieFrames"]
