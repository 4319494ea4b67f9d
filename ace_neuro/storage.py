"""Storing stage outputs: movies and array bundles in zarr, tables in parquet. Atomic, no pickle.

Every write goes to a hidden sibling (``.<name>.tmp-<host>-<pid>-<id>``) and is renamed into
place only once complete, and a zarr group is marked ``complete`` as its last attribute; so a
killed run leaves either the previous output or nothing that loads, never a half-written asset,
and what a killed writer left is removed at the next write of the same output.

Layout of a movie group::

    frames   (T, H, W) chunked along frames, compressed losslessly
    times    (T,) seconds
    extras/  small side arrays (shifts, template, ...)
    attrs:   frame_rate, shape, dtype, complete, kind="movie", ...

A disabled stage stores an *alias*: a group with ``alias_of`` pointing at its
input's group (relative to the alias's folder, so a storage root can be moved or copied), so no
movie is copied.
"""
from __future__ import annotations

import contextlib
import glob
import importlib
import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

import numpy as np
import pandas as pd

from .errors import EnvironmentProblem
from .movie import Movie, MovieAlias, MovieStream

DEFAULT_CHUNK_FRAMES = 64


class StorageError(EnvironmentProblem):
    """A stored output is missing, incomplete or not what was expected."""

    default_fix = ("materialise the upstream assets again (the CLI and `make demo` do it), or check the storage "
                   "root is the one the outputs were written to.")


class ArrayBundle(Protocol):
    """A result that stores itself as named arrays + JSON attributes (e.g. CNMF-E estimates)."""

    def to_arrays(self) -> dict[str, np.ndarray]: ...


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it to ``final`` (replacing any old one).

    Temporaries are named ``.<name>.tmp-<host>-<pid>-<id>``. Those that a killed writer left
    beside the same output are removed first (see :func:`remove_stale_temporaries`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        old = None
        if final.exists() or final.is_symlink():
            old = temporary_sibling(final, "old")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            _remove(old)
    except BaseException:
        _remove(tmp)
        raise


LEGACY_TEMP_MAX_AGE_S = 24 * 3600  # temporaries whose writer cannot be identified are removed after this


def temporary_sibling(final: str | os.PathLike, kind: str = "tmp") -> Path:
    """A fresh hidden name beside ``final`` that names its writer: ``.<name>.<kind>-<host>-<pid>-<id>``."""
    final = Path(final)
    return final.parent / f".{final.name}.{kind}-{_owner_tag()}-{uuid.uuid4().hex[:8]}"


def _owner_tag() -> str:
    return f"{_host()}-{os.getpid()}"


def _host() -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in socket.gethostname())[:40] or "host"


def process_alive(pid: int) -> bool | None:
    """Whether process ``pid`` of this machine runs; None where that cannot be asked safely."""
    if os.name == "nt":  # os.kill(pid, 0) would send Ctrl-C there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(final: str | os.PathLike) -> list[Path]:
    """Remove what killed writers of ``final`` left beside it; returns what was removed.

    A temporary (``.tmp-``) or replaced output (``.old-``) is stale when its writer, named in it by
    host and process id, is a process of this machine that no longer runs. One whose writer
    cannot be checked (another machine, an older naming, Windows) is stale once older than
    ``LEGACY_TEMP_MAX_AGE_S``.
    """
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    host = _host()
    for p in final.parent.glob(f".{glob.escape(final.name)}.*-*"):
        kind, _, rest = p.name[len(final.name) + 2:].partition("-")
        if kind not in ("tmp", "old"):
            continue
        parts = rest.split("-")
        alive = None
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit():
            alive = process_alive(int(parts[1]))
        if alive is None:
            try:
                alive = time.time() - p.stat().st_mtime < LEGACY_TEMP_MAX_AGE_S
            except OSError:
                continue
        if not alive:
            _remove(p)
            removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _json_safe(value: Any) -> Any:
    """Attributes as JSON (numpy scalars and tuples converted)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


# ---------------------------------------------------------------------------------- movies
class _AlignedWriter:
    """Buffers incoming blocks so zarr chunks are written whole, once."""

    def __init__(self, array, chunk_frames: int):
        self.array, self.chunk = array, chunk_frames
        self.pos = 0
        self.buf: list[np.ndarray] = []
        self.nbuf = 0

    def write(self, block: np.ndarray) -> None:
        self.buf.append(block)
        self.nbuf += len(block)
        if self.nbuf >= self.chunk:
            data = np.concatenate(self.buf) if len(self.buf) > 1 else self.buf[0]
            n_whole = (len(data) // self.chunk) * self.chunk
            self.array[self.pos:self.pos + n_whole] = data[:n_whole]
            self.pos += n_whole
            rest = data[n_whole:]
            self.buf, self.nbuf = ([rest] if len(rest) else []), len(rest)

    def close(self) -> int:
        if self.nbuf:
            data = np.concatenate(self.buf)
            self.array[self.pos:self.pos + len(data)] = data
            self.pos += len(data)
            self.buf, self.nbuf = [], 0
        return self.pos


def write_movie(stream: MovieStream, path: str | os.PathLike, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                attrs: Mapping[str, Any] | None = None, progress: Callable[[int], None] | None = None) -> Path:
    """Consume a :class:`MovieStream` into a zarr group at ``path``, atomically.

    ``progress`` is called with the number of frames written so far after every block (the
    stream computes as it is consumed, so this is the stage's progress).
    """
    import zarr

    path = Path(path)
    t, h, w = (int(s) for s in stream.shape)
    with atomic_path(path) as tmp:
        g = zarr.open_group(str(tmp), mode="w")
        frames = g.create_array("frames", shape=(t, h, w), chunks=(min(chunk_frames, max(t, 1)), h, w),
                                dtype=np.dtype(stream.dtype))
        writer = _AlignedWriter(frames, min(chunk_frames, max(t, 1)))
        total = np.zeros((h, w), dtype=np.float64)
        peak = np.full((h, w), -np.inf, dtype=np.float64)
        nonfinite = 0
        written = 0
        for block in stream.blocks:
            block = np.asarray(block)
            if block.shape[1:] != (h, w):
                raise StorageError(f"{path}: a block of shape {block.shape} does not fit a movie of {(t, h, w)}")
            writer.write(block.astype(stream.dtype, copy=False))
            if block.dtype.kind == "f":
                finite = np.isfinite(block)
                nonfinite += int(block.size - np.count_nonzero(finite))
                if nonfinite:
                    block = np.where(finite, block, 0)
            total += block.sum(axis=0, dtype=np.float64)
            np.maximum(peak, block.max(axis=0), out=peak)
            written += block.shape[0]
            if progress is not None:
                progress(written)
        n = writer.close()
        if n != t:
            raise StorageError(f"{path}: the stage produced {n} frames but announced {t}; nothing was saved.")
        g.create_array("times", data=np.asarray(stream.times, dtype=np.float64))
        extras = dict(stream.extras()) if stream.extras is not None else {}
        extras.setdefault("mean_projection", (total / max(n, 1)).astype(np.float32))
        extras.setdefault("max_projection", peak.astype(np.float32))
        _write_arrays(g.require_group("extras"), extras)
        g.attrs.update(_json_safe({**stream.attrs, **(attrs or {}), "kind": "movie", "frame_rate": stream.frame_rate,
                                   "shape": [t, h, w], "dtype": str(np.dtype(stream.dtype)),
                                   "nonfinite_pixels": nonfinite}))
        g.attrs["complete"] = True
    return path


def write_alias(alias: MovieAlias, path: str | os.PathLike, *, attrs: Mapping[str, Any] | None = None) -> Path:
    """Store a pass-through: a tiny group pointing at the input movie's group."""
    import zarr

    if alias.source.path is None:
        raise StorageError(f"{path}: a pass-through needs an input stored on disk")
    with atomic_path(path) as tmp:
        g = zarr.open_group(str(tmp), mode="w")
        g.attrs.update(_json_safe({**(attrs or {}), "kind": "alias",
                                   "alias_of": _relative_to_folder(Path(alias.source.path), Path(path).parent),
                                   "reason": alias.reason}))
        g.attrs["complete"] = True
    return Path(path)


def _relative_to_folder(target: Path, folder: Path) -> str:
    """``target`` relative to ``folder`` (so a storage root can be moved or copied), else absolute."""
    try:
        return Path(os.path.relpath(Path(target).resolve(), Path(folder).resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(Path(target).resolve())


def _alias_target(path: Path, alias_of: str) -> Path:
    target = Path(alias_of)
    return target if target.is_absolute() else Path(os.path.normpath(path.parent / target))


def _open_complete_group(path: Path):
    import zarr

    if not path.exists():
        raise StorageError(f"{path}: not found. Materialise the upstream asset first.")
    g = zarr.open_group(str(path), mode="r")
    if not g.attrs.get("complete", False):
        raise StorageError(f"{path}: incomplete output (an interrupted run?). Materialise it again.")
    return g


def open_movie(path: str | os.PathLike, *, _depth: int = 0) -> Movie:
    """Open a stored movie lazily (following pass-through aliases)."""
    path = Path(path)
    g = _open_complete_group(path)
    attrs = dict(g.attrs)
    if attrs.get("kind") == "alias":
        if _depth > 16:
            raise StorageError(f"{path}: alias chain too long")
        return open_movie(_alias_target(path, attrs["alias_of"]), _depth=_depth + 1)
    if attrs.get("kind") != "movie":
        raise StorageError(f"{path}: holds '{attrs.get('kind')}', not a movie")
    extras = {}
    if "extras" in g:
        eg = g["extras"]
        extras = {k: eg[k] for k in eg.array_keys()}
    return Movie(frames=g["frames"], times=np.asarray(g["times"][:]), frame_rate=float(attrs["frame_rate"]),
                 attrs=attrs, path=str(path), extras=extras)


# ---------------------------------------------------------------------------------- bundles
def _write_arrays(group, arrays: Mapping[str, Any]) -> None:
    for name, value in arrays.items():
        if value is None:
            continue
        arr = np.asarray(value)
        if arr.dtype == object:
            raise StorageError(f"array '{name}' has dtype object; store numbers or strings only")
        group.create_array(name, data=arr, chunks=arr.shape if arr.ndim and arr.size else "auto")


def write_bundle(obj: ArrayBundle, path: str | os.PathLike, *, attrs: Mapping[str, Any] | None = None) -> Path:
    """Store a result object as a zarr group of arrays (its class recorded for loading)."""
    import zarr

    cls = type(obj)
    with atomic_path(path) as tmp:
        g = zarr.open_group(str(tmp), mode="w")
        _write_arrays(g, obj.to_arrays())
        own = obj.to_attrs() if hasattr(obj, "to_attrs") else {}
        g.attrs.update(_json_safe({**own, **(attrs or {}), "kind": "bundle",
                                   "type": f"{cls.__module__}:{cls.__qualname__}"}))
        g.attrs["complete"] = True
    return Path(path)


def read_bundle(path: str | os.PathLike):
    """Load a result stored by :func:`write_bundle` (only classes from this package are loaded)."""
    path = Path(path)
    g = _open_complete_group(path)
    attrs = dict(g.attrs)
    mod, _, name = str(attrs.get("type", "")).partition(":")
    if attrs.get("kind") != "bundle" or not mod.startswith("ace_neuro."):
        raise StorageError(f"{path}: not a stored result of this platform")
    cls = getattr(importlib.import_module(mod), name)
    arrays = {k: np.asarray(g[k][()]) for k in g.array_keys()}
    return cls.from_arrays(arrays, attrs) if _takes_attrs(cls) else cls.from_arrays(arrays)


def _takes_attrs(cls) -> bool:
    import inspect

    try:
        return len(inspect.signature(cls.from_arrays).parameters) >= 2
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------- tables
def write_table(df: pd.DataFrame, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a DataFrame as parquet, atomically, with JSON metadata in the file's key-value store."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta[b"ace_neuro"] = json.dumps(_json_safe(dict(metadata))).encode()
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise StorageError(f"{path}: not found. Materialise the upstream asset first.")
    return pd.read_parquet(path)


def read_table_metadata(path: str | os.PathLike) -> dict:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"ace_neuro")
    return json.loads(raw) if raw else {}
