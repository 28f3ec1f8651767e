"""Saving and loading an index directory: generation-named data files under one manifest.

A save writes ``index-<token>.faiss`` and ``labels-<token>.npy`` under fresh names, fsyncs
them, then atomically replaces ``manifest.json`` to point at them and deletes the previous
generation. A crash at any point leaves a manifest that names complete, checksummed files.
Loading checks every claim of the manifest (checksums, sizes, kind, dimension, ids) so a
stale, truncated, edited or foreign index is refused with the reason, never half-used.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from faceledger.adapters.index import structures
from faceledger.adapters.index.manifest import (
    IndexManifest,
    checksum_sorted,
    file_sha256,
    fsync_dir,
    fsync_file,
    write_manifest,
)
from faceledger.errors import VectorIndexError

if TYPE_CHECKING:
    import numpy.typing as npt

    IdArray = npt.NDArray[np.int64]

_GENERATION_GLOBS = ("index-*.faiss", "labels-*.npy")
_REBUILD = "rebuild it from the metadata store"


@dataclass(frozen=True, slots=True)
class Loaded:
    index: Any
    labels: IdArray
    manifest: IndexManifest


def save(
    directory: Path, index: Any, labels: IdArray, params: dict[str, int], *, scrub_old: bool
) -> IndexManifest:
    """Write a new generation and switch the manifest to it.

    ``scrub_old`` overwrites the previous generation's bytes with zeros before deleting it:
    used after removals, so the old file does not keep erased vectors on disk (best effort:
    copy-on-write filesystems, snapshots and SSD remapping can keep old blocks regardless).
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VectorIndexError(f"{directory}: cannot create the index directory ({exc})") from exc
    token = secrets.token_hex(6)
    index_path = directory / f"index-{token}.faiss"
    labels_path = directory / f"labels-{token}.npy"
    try:
        manifest = _write_generation(directory, index, labels, params, index_path, labels_path)
        write_manifest(directory, manifest)
    except BaseException:
        for path in (index_path, labels_path):
            path.unlink(missing_ok=True)
        raise
    _drop_other_generations(directory, keep={index_path.name, labels_path.name}, scrub=scrub_old)
    return manifest


def _write_generation(
    directory: Path, index: Any, labels: IdArray, params: dict[str, int], index_path: Path, labels_path: Path
) -> IndexManifest:
    try:
        faiss.write_index(index, str(index_path))
        fsync_file(index_path)
        with labels_path.open("wb") as handle:
            np.save(handle, labels.astype("<i8"), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
    except (OSError, RuntimeError) as exc:
        raise VectorIndexError(f"{directory}: cannot write the index ({exc})") from exc
    kind = structures.kind_of(index)
    assert kind is not None
    live = np.sort(labels[labels >= 0])
    return IndexManifest(
        kind=kind,
        dim=int(index.d),
        count=len(live),
        slots=len(labels),
        ids_sha256=checksum_sorted(live),
        index_file=index_path.name,
        index_sha256=file_sha256(index_path),
        labels_file=labels_path.name,
        labels_sha256=file_sha256(labels_path),
        faiss_version=faiss.__version__,
        saved_at=datetime.now(UTC).isoformat(timespec="seconds"),
        params=dict(params),
    )


def _drop_other_generations(directory: Path, *, keep: set[str], scrub: bool) -> None:
    for pattern in _GENERATION_GLOBS:
        for path in directory.glob(pattern):
            if path.name in keep:
                continue
            if scrub:
                _overwrite_with_zeros(path)
            path.unlink(missing_ok=True)
    fsync_dir(directory)


def _overwrite_with_zeros(path: Path) -> None:
    with contextlib.suppress(OSError), path.open("r+b") as handle:
        remaining = path.stat().st_size
        block = bytes(1 << 20)
        while remaining > 0:
            step = min(remaining, len(block))
            handle.write(block[:step])
            remaining -= step
        handle.flush()
        os.fsync(handle.fileno())


def load(directory: Path, manifest: IndexManifest, dim: int) -> Loaded:
    """Read and verify the generation the manifest names."""
    if manifest.dim != dim:
        raise VectorIndexError(
            f"{directory}: the index holds {manifest.dim}-d vectors but {dim}-d were expected "
            f"(an index of another embedding model?); {_REBUILD}"
        )
    index_path = _verified(directory / manifest.index_file, manifest.index_sha256)
    labels_path = _verified(directory / manifest.labels_file, manifest.labels_sha256)
    index = _read_structure(index_path, manifest)
    labels = _read_labels(labels_path, manifest)
    _check_tombstones(index_path, index, labels, manifest.kind)
    return Loaded(index=index, labels=labels, manifest=manifest)


def _verified(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise VectorIndexError(
            f"{path}: named by the index manifest but missing (interrupted copy?); {_REBUILD}"
        )
    actual = file_sha256(path)
    if actual != expected:
        raise VectorIndexError(
            f"{path}: checksum {actual[:12]}... does not match the manifest's {expected[:12]}... "
            f"(corrupted or modified); {_REBUILD}"
        )
    return path


def _read_structure(path: Path, manifest: IndexManifest) -> Any:
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VectorIndexError(f"{path}: not a readable faiss index ({reason}); {_REBUILD}") from exc
    kind = structures.kind_of(index)
    if kind != manifest.kind or int(index.d) != manifest.dim or int(index.ntotal) != manifest.slots:
        raise VectorIndexError(
            f"{path}: holds a {kind or type(index).__name__} index of {index.ntotal} {index.d}-d vectors, "
            f"but the manifest says {manifest.kind} with {manifest.slots} {manifest.dim}-d; {_REBUILD}"
        )
    return index


def _read_labels(path: Path, manifest: IndexManifest) -> IdArray:
    try:
        raw = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VectorIndexError(f"{path}: not a readable id list ({exc}); {_REBUILD}") from exc
    if (
        not isinstance(raw, np.ndarray)
        or raw.dtype.kind != "i"
        or raw.ndim != 1
        or len(raw) != manifest.slots
    ):
        raise VectorIndexError(f"{path}: expected {manifest.slots} int64 ids; {_REBUILD}")
    labels = np.ascontiguousarray(raw, dtype=np.int64)
    live = np.sort(labels[labels >= 0])
    problems = []
    if (labels < -1).any():
        problems.append("ids below -1")
    if len(live) != manifest.count:
        problems.append(f"{len(live)} live ids, manifest says {manifest.count}")
    elif len(live) and (np.diff(live) == 0).any():
        problems.append("an id appears twice")
    elif checksum_sorted(live) != manifest.ids_sha256:
        problems.append("the id checksum differs from the manifest")
    if problems:
        raise VectorIndexError(f"{path}: {'; '.join(problems)}; {_REBUILD}")
    return labels


def _check_tombstones(path: Path, index: Any, labels: IdArray, kind: str) -> None:
    removed = labels < 0
    if not removed.any():
        return
    if kind == structures.EXACT:
        raise VectorIndexError(f"{path}: an exact index must not keep removed entries; {_REBUILD}")
    if np.any(structures.stored_rows(index)[removed]):
        raise VectorIndexError(f"{path}: removed entries still hold vector values; {_REBUILD}")
