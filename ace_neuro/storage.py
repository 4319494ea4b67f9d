"""Storing stage outputs: movies and array bundles in zarr, tables in parquet. Atomic, no pickle.

Every write goes to a hidden sibling (``.<name>.tmp-<host>-<pid>-<id>``) and is renamed into
place only once complete, and a zarr group is marked ``complete`` as its last attribute; so a
killed run leaves either the previous output or nothing that loads, never a half-written asset,
and what a killed writer left is removed at the next write of the same output.

A location is a local path (or a ``file://`` URL, which is the same thing) or any other fsspec URL
(``s3://bucket/root/...``, ``gs://``, ``az://``, ``memory://``). Object stores cannot rename, so
there an output ``<folder>/<name>`` is written as a hidden *version*
``<folder>/.<name>.v-<host>-<pid>-<unix time>-<id>`` (a zarr prefix or a single object), and
then a small *marker* object ``<folder>/<name>.current`` naming that version is written last
(one PUT, which object stores make visible whole). Readers go through the marker only, so a
version without a marker is never read; the version a marker replaced is deleted after the new
marker is written, and versions that killed writers left are removed at the next write (see
:func:`remove_stale_versions`). Filesystem options (endpoint, credentials) come from the
``ACE_STORAGE_OPTIONS`` environment variable (a JSON object) and fsspec's own configuration.

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
import posixpath
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Union

import numpy as np
import pandas as pd

from .errors import EnvironmentProblem
from .movie import Movie, MovieAlias, MovieStream

DEFAULT_CHUNK_FRAMES = 64
#: Movie frames are stored with Blosc and byte shuffle, LZ4 inside for multi-byte samples and Zstd
#: for bytes. Measured on V4 video: motion-corrected float32 keeps 0.78 of its bytes (zarr's default
#: Zstd: 0.87) and decodes about 2x faster - CNMF-E reads that movie a dozen times; 8-bit raw frames,
#: which LZ4 cannot shrink, keep 0.80 (0.82) and decode about 2x faster too.
MOVIE_CODECS = {1: {"cname": "zstd", "clevel": 1, "shuffle": "shuffle"},
                "wide": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle"}}

#: a stored output's location: a local path, or an fsspec URL (``s3://bucket/root/raw_movie/96.zarr``)
Location = Union[str, os.PathLike]
#: the marker object beside an output on an object store: ``<name>.current`` names its complete version
MARKER_SUFFIX = ".current"
#: environment variable holding the fsspec options (JSON object) for URL storage roots
STORAGE_OPTIONS_ENV = "ACE_STORAGE_OPTIONS"
_LOCAL_PROTOCOLS = ("file", "local")


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


# ---------------------------------------------------------------------------------- locations
def is_url(location: Location) -> bool:
    """Whether ``location`` is an fsspec URL other than a local file (``s3://...``, ``gs://...``, ``memory://...``)."""
    if not isinstance(location, str):
        return False
    protocol, sep, _ = location.partition("://")
    return bool(sep) and protocol.replace("+", "").replace("-", "").isalnum() and protocol.lower() not in _LOCAL_PROTOCOLS


def local_path(location: Location) -> Path:
    """A local location as a path (``file:///x/y`` -> ``/x/y``)."""
    if isinstance(location, str):
        for protocol in _LOCAL_PROTOCOLS:
            if location.startswith(f"{protocol}://"):
                return Path(location[len(protocol) + 3:])
    return Path(location)


def as_location(location: Location) -> Path | str:
    """``location`` normalised: a :class:`~pathlib.Path` for a local one, the URL (no trailing slash) otherwise."""
    return location.rstrip("/") if is_url(location) else local_path(location)


def join(root: Location, *parts: str) -> Path | str:
    """``root / part / ...`` for a local path or a URL."""
    if is_url(root):
        return "/".join([str(root).rstrip("/"), *(str(p).strip("/") for p in parts)])
    return local_path(root).joinpath(*parts)


def storage_options() -> dict:
    """The fsspec options for URL locations: ``$ACE_STORAGE_OPTIONS`` (a JSON object), else none.

    fsspec's own configuration (``FSSPEC_S3_ENDPOINT_URL=...``, ``~/.config/fsspec/``) and the
    backends' usual credentials (``AWS_*`` variables, ``~/.aws``, ...) apply as well.
    """
    raw = os.environ.get(STORAGE_OPTIONS_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise StorageError(f"{STORAGE_OPTIONS_ENV} is not valid JSON ({exc})",
                           fix=f"set {STORAGE_OPTIONS_ENV} to a JSON object, e.g. "
                               '\'{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}\'') from None
    if not isinstance(value, dict):
        raise StorageError(f"{STORAGE_OPTIONS_ENV} must be a JSON object of fsspec options, not {type(value).__name__}")
    return value


_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}


def filesystem(url: str):
    """``(fs, path)`` for a URL location, with :func:`storage_options`."""
    import fsspec

    options = storage_options()
    protocol = url.partition("://")[0].lower()
    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:  # a known backend that is not installed, or an unknown protocol
        extra = _EXTRAS.get(protocol)
        hint = (f"pip install 'ace-neuro[{extra}]'" if extra else
                "use a local folder or an fsspec URL (s3://, gs://, az://, ...) and install its fsspec backend")
        raise StorageError(f"{url}: no filesystem for '{protocol}://' is installed ({exc})", fix=hint) from None
    return fsspec.core.url_to_fs(url, **options)


def _zarr_store(url: str, *, read_only: bool):
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(url, storage_options=storage_options(), read_only=read_only)


def _read_marker(fs, final: str) -> dict | None:
    try:
        data = json.loads(fs.cat_file(final + MARKER_SUFFIX))
    except FileNotFoundError:
        return None
    except ValueError:
        raise StorageError(f"{fs.unstrip_protocol(final)}{MARKER_SUFFIX}: not a marker this platform wrote") from None
    version = str(data.get("version", "")) if isinstance(data, dict) else ""
    if not version.startswith(f".{posixpath.basename(final)}.v-") or "/" in version:
        raise StorageError(f"{fs.unstrip_protocol(final)}{MARKER_SUFFIX}: not a marker this platform wrote")
    return data


def exists(location: Location) -> bool:
    """Whether a complete output is stored at ``location`` (on an object store: whether its marker exists)."""
    if not is_url(location):
        p = local_path(location)
        return p.exists() or p.is_symlink()
    fs, final = filesystem(str(location))
    return _read_marker(fs, final) is not None


def resolve(location: Location) -> Path | str:
    """Where to read the output stored at ``location``: a local path as it is; on an object store the URL of
    the complete version its marker names. Raises :class:`StorageError` when there is none."""
    if not is_url(location):
        return local_path(location)
    fs, final = filesystem(str(location))
    marker = _read_marker(fs, final)
    if marker is None:
        raise StorageError(f"{location}: not found (no {posixpath.basename(final)}{MARKER_SUFFIX} marker). "
                           f"Materialise the upstream asset first.")
    return fs.unstrip_protocol(posixpath.join(posixpath.dirname(final), marker["version"]))


def _rm(fs, path: str) -> None:
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass


def remove_stale_versions(location: str) -> list[str]:
    """Remove the versions beside ``location`` (a URL) that no marker names and whose writer is gone.

    A version is stale when its writer, named in it by host and process id, is a process of this
    machine that no longer runs, or when it is older than ``LEGACY_TEMP_MAX_AGE_S`` (a writer on another
    machine cannot be asked). Returns the URLs removed.
    """
    fs, final = filesystem(location)
    folder, name = posixpath.split(final)
    marker = _read_marker(fs, final)
    current = marker["version"] if marker else None
    prefix = f".{name}.v-"
    fs.invalidate_cache(folder)
    try:
        entries = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return []
    host, removed = _host(), []
    for entry in entries:
        base = posixpath.basename(entry.rstrip("/"))
        if not base.startswith(prefix) or base == current:
            continue
        parts = base[len(prefix):].split("-")
        if len(parts) != 4 or not (parts[1].isdigit() and parts[2].isdigit()):
            continue
        alive = time.time() - int(parts[2]) < LEGACY_TEMP_MAX_AGE_S
        if alive and parts[0] == host:
            alive = process_alive(int(parts[1])) is not False
        if not alive:
            _rm(fs, posixpath.join(folder, base))
            removed.append(fs.unstrip_protocol(posixpath.join(folder, base)))
    return removed


@contextlib.contextmanager
def versioned_url(location: str) -> Iterator[str]:
    """Yield the URL of a fresh hidden version beside ``location`` (a URL); on success write the marker naming
    it, then delete the version the marker named before. On failure the version is deleted; a killed
    writer's version is removed by a later write (:func:`remove_stale_versions`)."""
    fs, final = filesystem(location)
    folder, name = posixpath.split(final)
    remove_stale_versions(location)
    version = f".{name}.v-{_owner_tag()}-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    target = posixpath.join(folder, version)
    try:
        yield fs.unstrip_protocol(target)
        previous = _read_marker(fs, final)
        fs.pipe_file(final + MARKER_SUFFIX, json.dumps({
            "version": version, "writer": _owner_tag(),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode())
    except BaseException:
        _rm(fs, target)
        raise
    if previous and previous["version"] != version:
        _rm(fs, posixpath.join(folder, previous["version"]))


def write_bytes(data: bytes, location: Location) -> Path | str:
    """Store ``data`` as one file, atomically (a local rename, or a version and its marker on an object store)."""
    if is_url(location):
        with versioned_url(str(location)) as url:
            fs, path = filesystem(url)
            fs.pipe_file(path, data)
    else:
        with atomic_path(location) as tmp:
            tmp.write_bytes(data)
    return as_location(location)


def read_bytes(location: Location) -> bytes:
    """What :func:`write_bytes` stored (through the marker on an object store)."""
    where = resolve(location)
    if isinstance(where, Path):
        if not where.exists():
            raise StorageError(f"{where}: not found. Materialise the upstream asset first.")
        return where.read_bytes()
    fs, path = filesystem(where)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise StorageError(f"{location}: its marker names {where}, which is gone (replaced meanwhile?). "
                           f"Read it again.") from None


def publish_file(local_file: str | os.PathLike, location: Location) -> Path | str:
    """Upload a finished local file to ``location`` (a URL), as a version and its marker; returns the location."""
    with versioned_url(str(location)) as url:
        fs, path = filesystem(url)
        fs.put_file(str(local_file), path)
    return as_location(location)


def put_plain(data: bytes, location: Location) -> Path | str:
    """Store a file that nothing reads back (a figure): locally by an atomic rename, on an object store by one
    PUT to its final name (visible whole or not at all there; no marker)."""
    if not is_url(location):
        return write_bytes(data, location)
    fs, path = filesystem(str(location))
    fs.pipe_file(path, data)
    return as_location(location)


def list_files(folder: Location, suffix: str) -> list[Path | str]:
    """The plain files in ``folder`` whose name ends with ``suffix`` (sorted; none when it does not exist)."""
    if not is_url(folder):
        p = local_path(folder)
        return sorted(q for q in p.glob(f"*{glob.escape(suffix)}") if not q.name.startswith(".")) if p.is_dir() else []
    fs, path = filesystem(str(folder))
    fs.invalidate_cache(path)
    try:
        names = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    return sorted(fs.unstrip_protocol(n) for n in names
                  if n.endswith(suffix) and not posixpath.basename(n).startswith("."))


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


@contextlib.contextmanager
def _new_group(location: Path | str):
    """A fresh zarr group that becomes the output at ``location`` when the block ends without error."""
    import zarr

    if isinstance(location, str):
        with versioned_url(location) as url:
            yield zarr.open_group(store=_zarr_store(url, read_only=False), mode="w")
    else:
        with atomic_path(location) as tmp:
            yield zarr.open_group(str(tmp), mode="w")


def _movie_codec(dtype):
    from zarr.codecs import BloscCodec

    return BloscCodec(**MOVIE_CODECS.get(np.dtype(dtype).itemsize, MOVIE_CODECS["wide"]))


def write_movie(stream: MovieStream, path: Location, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                attrs: Mapping[str, Any] | None = None, progress: Callable[[int], None] | None = None) -> Path | str:
    """Consume a :class:`MovieStream` into a zarr group at ``path`` (a local path or a URL), atomically.

    ``progress`` is called with the number of frames written so far after every block (the
    stream computes as it is consumed, so this is the stage's progress).
    """
    path = as_location(path)
    t, h, w = (int(s) for s in stream.shape)
    with _new_group(path) as g:
        frames = g.create_array("frames", shape=(t, h, w), chunks=(min(chunk_frames, max(t, 1)), h, w),
                                dtype=np.dtype(stream.dtype), compressors=_movie_codec(stream.dtype))
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


def write_alias(alias: MovieAlias, path: Location, *, attrs: Mapping[str, Any] | None = None) -> Path | str:
    """Store a pass-through: a tiny group pointing at the input movie's group."""
    if alias.source.path is None:
        raise StorageError(f"{path}: a pass-through needs an input stored on disk")
    path = as_location(path)
    with _new_group(path) as g:
        g.attrs.update(_json_safe({**(attrs or {}), "kind": "alias",
                                   "alias_of": _relative_to_folder(as_location(alias.source.path), path),
                                   "reason": alias.reason}))
        g.attrs["complete"] = True
    return path


def _relative_to_folder(target: Path | str, alias: Path | str) -> str:
    """``target`` relative to ``alias``'s folder (so a storage root can be moved or copied), else absolute."""
    if isinstance(target, str) or isinstance(alias, str):
        same = (isinstance(target, str) and isinstance(alias, str)
                and target.partition("://")[0] == alias.partition("://")[0])
        if not same:
            return str(target) if isinstance(target, str) else str(Path(target).resolve())
        t, a = target.partition("://")[2], alias.partition("://")[2]
        return posixpath.relpath(t, posixpath.dirname(a))
    try:
        return Path(os.path.relpath(Path(target).resolve(), Path(alias).parent.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(Path(target).resolve())


def _alias_target(path: Path | str, alias_of: str) -> Path | str:
    if is_url(alias_of):
        return alias_of
    if isinstance(path, str):
        protocol, _, rest = path.partition("://")
        return f"{protocol}://{posixpath.normpath(posixpath.join(posixpath.dirname(rest), alias_of))}"
    target = Path(alias_of)
    return target if target.is_absolute() else Path(os.path.normpath(path.parent / target))


def _open_complete_group(path: Path | str):
    import zarr

    if isinstance(path, str):
        version = resolve(path)
        try:
            # what this platform writes is zarr v3 with no consolidated metadata: saying so spares requests
            g = zarr.open_group(store=_zarr_store(version, read_only=True), mode="r", zarr_format=3,
                                use_consolidated=False)
        except FileNotFoundError:
            raise StorageError(f"{path}: its marker names {version}, which is gone (replaced meanwhile?). "
                               f"Read it again.") from None
    else:
        if not path.exists():
            raise StorageError(f"{path}: not found. Materialise the upstream asset first.")
        g = zarr.open_group(str(path), mode="r")
    if not g.attrs.get("complete", False):
        raise StorageError(f"{path}: incomplete output (an interrupted run?). Materialise it again.")
    return g


def stored_kind(path: Location) -> str | None:
    """What a zarr output holds (``movie``, ``alias``, ``bundle``), read from its complete group."""
    return _open_complete_group(as_location(path)).attrs.get("kind")


def open_movie(path: Location, *, _depth: int = 0) -> Movie:
    """Open a stored movie lazily (following pass-through aliases); ``path`` is a local path or a URL."""
    path = as_location(path)
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


def write_bundle(obj: ArrayBundle, path: Location, *, attrs: Mapping[str, Any] | None = None) -> Path | str:
    """Store a result object as a zarr group of arrays (its class recorded for loading)."""
    cls = type(obj)
    path = as_location(path)
    with _new_group(path) as g:
        _write_arrays(g, obj.to_arrays())
        own = obj.to_attrs() if hasattr(obj, "to_attrs") else {}
        g.attrs.update(_json_safe({**own, **(attrs or {}), "kind": "bundle",
                                   "type": f"{cls.__module__}:{cls.__qualname__}"}))
        g.attrs["complete"] = True
    return path


def read_bundle(path: Location):
    """Load a result stored by :func:`write_bundle` (only classes from this package are loaded)."""
    path = as_location(path)
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
def write_table(df: pd.DataFrame, path: Location, *, metadata: Mapping[str, Any] | None = None) -> Path | str:
    """Write a DataFrame as parquet, atomically, with JSON metadata in the file's key-value store."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta[b"ace_neuro"] = json.dumps(_json_safe(dict(metadata))).encode()
        table = table.replace_schema_metadata(meta)
    path = as_location(path)
    if isinstance(path, str):
        with versioned_url(path) as url:
            fs, inner = filesystem(url)
            with fs.open(inner, "wb") as f:
                pq.write_table(table, f)
        return path
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


@contextlib.contextmanager
def _open_stored_file(path: Path | str):
    where = resolve(path)
    if isinstance(where, Path):
        if not where.exists():
            raise StorageError(f"{where}: not found. Materialise the upstream asset first.")
        yield where
        return
    fs, inner = filesystem(where)
    try:
        f = fs.open(inner, "rb")
    except FileNotFoundError:
        raise StorageError(f"{path}: its marker names {where}, which is gone (replaced meanwhile?). "
                           f"Read it again.") from None
    with f:
        yield f


def read_table(path: Location) -> pd.DataFrame:
    """A table stored by :func:`write_table` (a local path or a URL)."""
    with _open_stored_file(as_location(path)) as f:
        return pd.read_parquet(f)


def read_table_metadata(path: Location) -> dict:
    import pyarrow.parquet as pq

    with _open_stored_file(as_location(path)) as f:
        meta = pq.read_schema(f).metadata or {}
    raw = meta.get(b"ace_neuro")
    return json.loads(raw) if raw else {}
