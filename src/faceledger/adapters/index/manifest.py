"""The small JSON file that says what an index directory holds, and the atomic file writes.

The manifest is the commit point of a save: data files are written under fresh names first,
then the manifest is replaced in one ``os.replace``. A reader therefore sees either the old
index or the new one, never a mix, and can tell from the manifest alone (without loading
vectors) whether the index matches the metadata store: compare ``count`` and ``ids_sha256``
with :func:`ids_checksum` of the store's face ids.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from faceledger.errors import VectorIndexError

if TYPE_CHECKING:
    import numpy.typing as npt

    IdArray = npt.NDArray[np.int64]

FORMAT = "faceledger-index/1"
MANIFEST_NAME = "manifest.json"
KINDS = ("exact", "hnsw")


def ids_checksum(ids: IdArray) -> str:
    """SHA-256 (hex) over the distinct ids, sorted, as little-endian int64.

    The store computes the same over its face ids to check that an index is current.
    """
    return checksum_sorted(np.unique(np.asarray(ids, dtype=np.int64)))


def checksum_sorted(sorted_unique_ids: IdArray) -> str:
    """:func:`ids_checksum` of ids already sorted and distinct (skips the O(n log n) sort)."""
    return hashlib.sha256(sorted_unique_ids.astype("<i8").tobytes()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class IndexManifest:
    """What a saved index holds and how it was built.

    ``count`` is the number of live ids; ``slots`` also counts removed entries whose vectors
    were zeroed but whose graph nodes remain until the next compaction (HNSW only).
    """

    kind: str
    dim: int
    count: int
    slots: int
    ids_sha256: str
    index_file: str
    index_sha256: str
    labels_file: str
    labels_sha256: str
    faiss_version: str
    saved_at: str
    params: dict[str, int] = field(default_factory=dict)
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: Path) -> IndexManifest:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VectorIndexError(
                f"{source}: not valid JSON ({exc}); rebuild the index from the store"
            ) from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise VectorIndexError(
                f"{source}: not a faceledger index manifest (format {found!r}, expected {FORMAT!r})"
            )
        try:
            manifest = cls(**raw)
        except TypeError as exc:
            raise VectorIndexError(f"{source}: manifest fields do not match {FORMAT} ({exc})") from exc
        _check_fields(manifest, source)
        return manifest


def _check_fields(manifest: IndexManifest, source: Path) -> None:
    ints = (manifest.dim, manifest.count, manifest.slots)
    strs = (manifest.index_file, manifest.labels_file, manifest.ids_sha256, manifest.index_sha256)
    problems = []
    if manifest.kind not in KINDS:
        problems.append(f"unknown kind {manifest.kind!r}")
    if not all(isinstance(v, int) and v >= 0 for v in ints) or manifest.count > manifest.slots:
        problems.append(f"bad sizes dim={manifest.dim!r} count={manifest.count!r} slots={manifest.slots!r}")
    if not all(isinstance(v, str) for v in strs):
        problems.append("file names and checksums must be strings")
    elif any(Path(name).name != name for name in (manifest.index_file, manifest.labels_file)):
        problems.append("data file names must not contain a directory")
    if not isinstance(manifest.params, dict) or not all(isinstance(v, int) for v in manifest.params.values()):
        problems.append("params must be an object of integers")
    if problems:
        raise VectorIndexError(f"{source}: invalid index manifest: {'; '.join(problems)}")


def read_manifest(directory: Path) -> IndexManifest | None:
    """The manifest of a saved index, or None when nothing was saved there yet."""
    path = Path(directory) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise VectorIndexError(f"{path}: cannot read the index manifest ({exc})") from exc
    return IndexManifest.from_json(text, source=path)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(directory: Path, manifest: IndexManifest) -> None:
    """Replace the manifest atomically: temp file, fsync, rename, fsync the directory."""
    final = directory / MANIFEST_NAME
    temp = directory / f".{MANIFEST_NAME}.tmp"
    with temp.open("w", encoding="utf-8") as handle:
        handle.write(manifest.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, final)
    fsync_dir(directory)
