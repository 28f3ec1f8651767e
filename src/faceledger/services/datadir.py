"""The data directory: one folder that holds a whole faceledger installation.

::

    <data_dir>/
      faceledger.json      marker: format version, created_at (what makes a folder ours)
      config.toml          settings; every default shown, commented out
      faceledger.db        SQLite database (WAL: -wal / -shm files beside it)
      images/ab/cd/<sha256>        enrolled image files, content-addressed, read-only
      images/.tmp/                 half-written image files (removed on recovery)
      index/<gallery>/<model>/     vector index of one gallery for one embedding model
      writer.lock          advisory lock held by the one process allowed to write
      writer.dirty         present while a writer works; found at start = it died: recover
      keys/audit-signing-key.pem   the audit log's Ed25519 private key (0600), never in the database
      keys/audit-public-key.pem    its public key, for auditors
      audit/checkpoints.jsonl      signed checkpoints of the audit log, appended; ship it elsewhere

Everything in it is private to the account the service runs as: opening a data directory
tightens the process's umask to 0o077 (files 0600, folders 0700 from then on), and it is
refused, naming the path and the chmod that fixes it, while any file or folder in it can be
read or changed by other users (:func:`check_private`).

The database is the source of truth. Image files are written before the row that names
them is committed, and vectors are added to an index only after their face row is
committed, so a crash can leave an unreferenced file (swept by :meth:`DataDir.recover`) or
an index that lags or leads the database (reconciled whenever an index is opened), never a
face without its image or a vector without its face.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from faceledger.adapters.images import ImageStore
from faceledger.adapters.store import Store, repository
from faceledger.adapters.store.engine import sqlite_url
from faceledger.config import Settings, load_settings
from faceledger.domain.models import Gallery, ModelRef
from faceledger.errors import ConflictError, NotInitializedError, StoreError, VectorIndexError
from faceledger.services import audit

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from faceledger.adapters.index import PersistentIndex

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer by convention
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = 1
MARKER_FILE = "faceledger.json"
CONFIG_FILE = "config.toml"
DB_FILE = "faceledger.db"
IMAGES_DIR = "images"
INDEX_DIR = "index"
LOCK_FILE = "writer.lock"
DIRTY_FILE = "writer.dirty"
KEYS_DIR = "keys"
AUDIT_KEY_FILE = "audit-signing-key.pem"
AUDIT_PUBLIC_KEY_FILE = "audit-public-key.pem"
AUDIT_DIR = "audit"
CHECKPOINT_FILE = "checkpoints.jsonl"


# --- init / open -----------------------------------------------------------------------


def is_data_dir(path: Path | str) -> bool:
    return (Path(path) / MARKER_FILE).is_file()


def init_data_dir(path: Path | str, *, settings: Settings | None = None) -> DataDir:
    """Create a data directory (or finish/upgrade one already there) and open it.

    Refuses a folder that holds anything but a faceledger data directory, so a typo can
    never scatter files through somebody's home folder.
    """
    root = Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise ConflictError(f"{root} is a file, not a folder; choose a new or empty folder")
    if root.is_dir() and not is_data_dir(root) and any(root.iterdir()):
        raise ConflictError(
            f"{root} is not empty and is not a faceledger data directory; "
            "choose a new or empty folder for `faceledger init`"
        )
    private_umask()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not is_data_dir(root):
            root.chmod(0o700)  # a new data directory (an existing one is checked, never changed)
            marker = {"format": FORMAT_VERSION, "created_at": repository.utcnow().isoformat()}
            marker["created_by"] = f"faceledger {_version()}"
            _write_text(root / MARKER_FILE, json.dumps(marker, indent=2) + "\n")
        if not (root / CONFIG_FILE).exists():
            _write_text(root / CONFIG_FILE, default_config_toml())
    except OSError as exc:
        raise StoreError(f"cannot create data directory {root}: {exc.strerror or exc}") from exc
    dd = open_data_dir(root, settings=settings)
    try:
        audit.ensure_log(dd)  # the signing key (outside the database) and the log's first entry
    except BaseException:
        dd.close()
        raise
    return dd


def open_data_dir(path: Path | str, *, settings: Settings | None = None) -> DataDir:
    """Open an initialised data directory, applying any pending schema migrations."""
    root = Path(path).expanduser()
    if not is_data_dir(root):
        raise NotInitializedError(
            f"{root} is not a faceledger data directory (no {MARKER_FILE}); "
            f"create one with `faceledger init {root}`"
        )
    private_umask()
    check_private(root)
    _check_marker(root / MARKER_FILE)
    chosen = settings if settings is not None else load_settings(root)
    chosen = dataclasses.replace(chosen, data_dir=root)
    for folder in (IMAGES_DIR, INDEX_DIR):
        (root / folder).mkdir(mode=0o700, exist_ok=True)
    url = chosen.database_url or sqlite_url(root / DB_FILE)
    dd = DataDir(root, chosen, Store.open(url))
    dd.recover_if_needed()
    return dd


#: Permission bits no other user may hold on anything in a data directory.
OTHERS_BITS = 0o077


def private_umask() -> None:
    """Make every file and folder this process creates from now on private (0600, 0700).

    The umask is the process's, so this also applies to what the process writes elsewhere
    afterwards (an audit export, for instance); it only ever removes permissions.
    """
    current = os.umask(OTHERS_BITS)
    os.umask(current | OTHERS_BITS)


def check_private(root: Path) -> None:
    """Refuse ``root`` while other users may read or change anything in it.

    Checks the folder, every folder below it, and every file except the enrolled images
    (there may be millions; the folders above them are checked, and a private folder cannot
    be entered by others). Symbolic links are not followed.
    """
    fix = f"chmod -R go-rwx {root}"
    for folder, _dirs, files in os.walk(root):  # does not enter linked folders
        here = Path(folder)
        inside_images = here != root and here.relative_to(root).parts[0] == IMAGES_DIR
        for path in [here, *(() if inside_images else (here / name for name in files))]:
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # removed meanwhile (a temporary file)
            except OSError as exc:
                raise StoreError(f"cannot check the permissions of {path}: {exc.strerror or exc}") from None
            if stat.S_ISLNK(info.st_mode):
                continue
            mode = stat.S_IMODE(info.st_mode)
            if mode & OTHERS_BITS:
                kind = "folder" if stat.S_ISDIR(info.st_mode) else "file"
                raise StoreError(
                    f"the data directory {root} is not private: the {kind} {path} can be read or changed "
                    f"by other users (mode {mode:04o}); make it private to the service's account with: {fix}"
                )


def _version() -> str:
    try:
        return importlib.metadata.version("faceledger")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _check_marker(marker: Path) -> None:
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        version = int(data["format"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{marker} is damaged ({exc}); restore it from a backup") from exc
    if version > FORMAT_VERSION:
        raise StoreError(
            f"{marker.parent} uses data directory format {version}; this faceledger knows "
            f"up to {FORMAT_VERSION}: upgrade faceledger"
        )


def _write_text(path: Path, text: str) -> None:
    temp = path.with_name(path.name + ".part")
    with temp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


# --- config.toml -----------------------------------------------------------------------

_UNSET_NOTES = {
    "threshold": "not set (the calibrated default of the embedding model); e.g. threshold = 0.9",
    "onnx_model": 'not set (dlib is used); e.g. onnx_model = "/models/arcface" (model.onnx + manifest.json)',
    "database_url": f'not set (SQLite in {DB_FILE} here); e.g. database_url = "postgresql+psycopg://user@host/db"',
    "assets_dir": 'not set (web-assets/node_modules in the source tree); e.g. assets_dir = "/srv/js"',
    "origin": 'not set (the request\'s own origin, when its host is rp_id); e.g. origin = "https://fl.example"',
    "enrol_root": 'not set (the pages enrol nothing from the disk); e.g. enrol_root = "/srv/intake"',
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def _config_lines(obj: Any) -> list[str]:
    lines: list[str] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name == "data_dir" or dataclasses.is_dataclass(value):
            continue
        if value is None:
            lines.append(f"# {f.name}: {_UNSET_NOTES.get(f.name, 'not set')}")
        else:
            lines.append(f"# {f.name} = {_toml_value(value)}")
    return lines


def default_config_toml() -> str:
    """A config.toml that changes nothing: every setting at its default, commented out."""
    defaults = Settings()
    out = [
        "# faceledger settings for this data directory.",
        "# Every line shows the built-in default, commented out: uncomment a line to change it.",
        "# Environment variables override this file: FACELEDGER_<KEY> or FACELEDGER_<SECTION>__<KEY>,",
        "# e.g. FACELEDGER_QUALITY_FLOOR=50 or FACELEDGER_EMBEDDER__FLIP=false.",
        "",
        *_config_lines(defaults),
    ]
    for f in dataclasses.fields(defaults):
        section = getattr(defaults, f.name)
        if not dataclasses.is_dataclass(section):
            continue
        doc = (type(section).__doc__ or "").strip().splitlines()
        title = doc[0].replace("``", "") if doc else f"{f.name} settings"
        out += ["", f"# {title}", f"[{f.name}]", *_config_lines(section)]
    return "\n".join(out) + "\n"


# --- the open directory ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What a recovery after an unclean stop cleaned up."""

    temp_files: int = 0
    orphan_images: int = 0
    aborted_runs: int = 0
    stale_index_dirs: int = 0
    reconciled_indexes: int = 0


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """How an index on disk differed from the database when it was opened."""

    added: int = 0
    removed: int = 0
    rebuilt: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.rebuilt)


def model_slug(model_key: str) -> str:
    """A folder name for a model key (``dlib/resnet/1.0/ab12...`` -> ``dlib--resnet--1.0--ab12...``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", model_key.replace("/", "--"))
    return slug if slug.strip(".") else "model-" + hashlib.sha256(model_key.encode()).hexdigest()[:12]


class DataDir:
    """An opened data directory: the store, the image files, and the vector indexes.

    Any number of processes may read. Writing (enrolment, purge) happens inside
    :meth:`writing`, which admits one process at a time and recovers after one that died.
    """

    def __init__(self, path: Path, settings: Settings, store: Store) -> None:
        self.path = path
        self.settings = settings
        self.store = store
        self.images = ImageStore(path / IMAGES_DIR)
        self.last_recovery: RecoveryReport | None = None
        self._indexes: dict[tuple[int, str], PersistentIndex] = {}
        self._dirty_indexes: set[tuple[int, str]] = set()
        self._versions: dict[tuple[int, str], int] = {}
        self._lock_handle: IO[str] | None = None
        self._write_depth = 0

    def __enter__(self) -> DataDir:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database and the in-memory indexes (writers save theirs on leaving :meth:`writing`)."""
        self._indexes.clear()
        self._dirty_indexes.clear()
        self.store.close()

    # --- audit log files (outside the database on purpose: see docs/audit.md) -----------

    @property
    def audit_key_path(self) -> Path:
        return self.path / KEYS_DIR / AUDIT_KEY_FILE

    @property
    def audit_public_key_path(self) -> Path:
        return self.path / KEYS_DIR / AUDIT_PUBLIC_KEY_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / AUDIT_DIR / CHECKPOINT_FILE

    # --- writer lock -------------------------------------------------------------------

    @property
    def is_writer(self) -> bool:
        return self._write_depth > 0

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the single-writer lock; recover first if the last writer died mid-way."""
        if self._write_depth:
            self._write_depth += 1
            try:
                yield
            finally:
                self._write_depth -= 1
            return
        self._acquire_lock()
        self._write_depth = 1
        clean = False
        try:
            dirty = self.path / DIRTY_FILE
            if dirty.exists():
                self.last_recovery = self.recover()
            _write_text(dirty, f"{os.getpid()}\n")
            self._catch_up()
            yield
            clean = True
        finally:
            try:
                self.save_indexes()
                self._note_versions()
                if clean:
                    (self.path / DIRTY_FILE).unlink(missing_ok=True)
            finally:
                self._write_depth = 0
                self._release_lock()

    def _catch_up(self) -> None:
        """Reconcile the indexes this process holds with changes other processes made meanwhile."""
        if not self._indexes:
            return
        with self.store.read() as conn:
            galleries = {g.id: g for g in repository.list_galleries(conn)}
            for key, index in list(self._indexes.items()):
                gallery = galleries.get(key[0])
                if gallery is None:
                    self.forget_index_key(key)
                    continue
                stale = self._versions.get(key) != repository.faces_version(conn, key[0])
                if stale and reconcile(conn, index, gallery, repository.get_model(conn, key[1])).changed:
                    self._dirty_indexes.add(key)

    def _note_versions(self) -> None:
        """After this process's own changes, its indexes are as new as the database."""
        if not self._indexes:
            return
        with self.store.read() as conn:
            for key in self._indexes:
                self._versions[key] = repository.faces_version(conn, key[0])

    def _acquire_lock(self) -> None:
        handle = (self.path / LOCK_FILE).open("a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                handle.close()
                raise ConflictError(
                    f"another faceledger process is changing {self.path} (enrolling or purging); "
                    "wait for it to finish, then try again"
                ) from exc
        self._lock_handle = handle

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the file drops the flock
            self._lock_handle = None

    def recover_if_needed(self) -> RecoveryReport | None:
        """Recover now if the last writer died and no other writer is at work (else leave it to it)."""
        if not (self.path / DIRTY_FILE).exists():
            return None
        with contextlib.suppress(ConflictError, OSError), self.writing():
            pass
        return self.last_recovery

    def recover(self) -> RecoveryReport:
        """Clean up after a writer that stopped without finishing (crash, kill -9, power loss).

        Removes half-written and unreferenced image files, marks its run aborted, and makes
        every saved index equal the database again (so a purge cut short still erases).
        Call only while holding the writer lock (:meth:`writing` does).
        """
        if not self.is_writer:
            raise StoreError("recovery needs the writer lock; use DataDir.writing()")
        temp = self.images.clean_temp()
        with self.store.begin() as conn:
            aborted = repository.abort_stale_runs(conn)
            in_use = repository.sha256s_in_use(conn)
        orphans = self.images.remove_orphans(in_use)
        stale, reconciled = self._recover_indexes()
        return RecoveryReport(temp, orphans, aborted, stale, reconciled)

    def _recover_indexes(self) -> tuple[int, int]:
        """(folders removed, indexes changed): indexes equal their gallery's faces; no other folder stays."""
        with self.store.read() as conn:
            galleries = {g.name: g for g in repository.list_galleries(conn)}
            known = {model_slug(m.key): m for m in repository.all_models(conn)}
            wanted = {
                (name, model_slug(key))
                for name, gallery in galleries.items()
                for key in repository.model_keys(conn, _require_id(gallery))
            }
        changed = sum(
            self._open_index(galleries[name], known[slug])[1].changed for name, slug in sorted(wanted)
        )
        stale = 0
        index_root = self.path / INDEX_DIR
        for gallery_dir in sorted(p for p in index_root.iterdir() if p.is_dir()):
            gallery = galleries.get(gallery_dir.name)
            if gallery is None:  # a purged gallery
                shutil.rmtree(gallery_dir)
                stale += 1
                continue
            for model_dir in sorted(p for p in gallery_dir.iterdir() if p.is_dir()):
                model = known.get(model_dir.name)
                if (gallery.name, model_dir.name) in wanted:
                    continue
                if model is not None:
                    self._open_index(gallery, model)  # empties it, overwriting the erased vectors' bytes
                    self.forget_index(gallery, model.key)
                shutil.rmtree(model_dir)
                stale += 1
        return stale, changed

    # --- indexes -----------------------------------------------------------------------

    def index_dir(self, gallery_name: str, model_key: str) -> Path:
        return self.path / INDEX_DIR / gallery_name / model_slug(model_key)

    def index(self, gallery: Gallery, model: ModelRef) -> PersistentIndex:
        """The vector index of ``gallery`` for ``model``, reconciled with the database."""
        return self._open_index(gallery, model)[0]

    def _open_index(self, gallery: Gallery, model: ModelRef) -> tuple[PersistentIndex, ReconcileReport]:
        key = (_require_id(gallery), model.key)
        cached = self._indexes.get(key)
        if cached is not None and self.is_writer:
            return cached, ReconcileReport()  # the writer's own changes keep its indexes in step
        with self.store.read() as conn:
            version = repository.faces_version(conn, key[0])
            if cached is not None and self._versions.get(key) == version:
                return cached, ReconcileReport()
            if cached is not None:
                # Another process enrolled or purged since this index was opened: catch up with the database.
                index, report = cached, reconcile(conn, cached, gallery, model)
            else:
                index, report = self._open_reconciled(conn, gallery, model)
        self._versions[key] = version
        if report.changed:
            self._dirty_indexes.add(key)
            if self.is_writer:
                self._save(key, index)
        self._indexes[key] = index
        return index, report

    def indexes(self, gallery: Gallery) -> dict[str, PersistentIndex]:
        """Every index of a gallery, by model key (one per model its faces were made with)."""
        gid = _require_id(gallery)
        with self.store.read() as conn:
            keys = repository.model_keys(conn, gid)
            models = [repository.get_model(conn, key) for key in keys]
        return {model.key: self.index(gallery, model) for model in models}

    def mark_changed(self, gallery: Gallery, model_key: str) -> None:
        self._dirty_indexes.add((_require_id(gallery), model_key))

    def save_indexes(self) -> None:
        """Persist every index changed by this process (only a writer may)."""
        if not self.is_writer:
            return
        for key in sorted(self._dirty_indexes):
            index = self._indexes.get(key)
            if index is not None:
                self._save(key, index)

    def forget_index(self, gallery: Gallery, model_key: str) -> None:
        self.forget_index_key((_require_id(gallery), model_key))

    def forget_index_key(self, key: tuple[int, str]) -> None:
        self._indexes.pop(key, None)
        self._dirty_indexes.discard(key)
        self._versions.pop(key, None)

    def _save(self, key: tuple[int, str], index: PersistentIndex) -> None:
        try:
            index.save()
        except OSError as exc:
            raise StoreError(f"cannot save the vector index in {index.directory}: {exc}") from exc
        self._dirty_indexes.discard(key)

    def _open_reconciled(
        self, conn: Connection, gallery: Gallery, model: ModelRef
    ) -> tuple[PersistentIndex, ReconcileReport]:
        # faiss is loaded by the first command that reads vectors, not by every one that opens the directory
        from faceledger.adapters.index import PersistentIndex, open_index

        directory = self.index_dir(gallery.name, model.key)  # created by the first save, not by readers
        try:
            index = open_index(directory, dim=model.dim, settings=self.settings.index)
        except VectorIndexError:
            # A damaged or foreign index is only derived data: rebuild it from the database.
            index = PersistentIndex(directory, dim=model.dim, settings=self.settings.index)
            ids = repository.face_ids(conn, _require_id(gallery), model.key)
            found, vectors = repository.face_vectors(conn, [int(i) for i in ids], model.dim)
            index.rebuild(found, vectors)
            return index, ReconcileReport(added=len(found), rebuilt=True)
        return index, reconcile(conn, index, gallery, model)


def _require_id(gallery: Gallery) -> int:
    if gallery.id is None:
        raise StoreError(f"gallery {gallery.name!r} has not been stored yet")
    return gallery.id


def _add_from_db(conn: Connection, index: PersistentIndex, ids: Any, model: ModelRef) -> int:
    if len(ids) == 0:
        return 0
    found, vectors = repository.face_vectors(conn, [int(i) for i in ids], model.dim)
    if len(found):
        index.add(found, vectors)
    return len(found)


def reconcile(conn: Connection, index: PersistentIndex, gallery: Gallery, model: ModelRef) -> ReconcileReport:
    """Make the index hold exactly the database's faces of this gallery and model."""
    import numpy as np

    db_ids = repository.face_ids(conn, _require_id(gallery), model.key)
    index_ids = np.asarray(index.ids(), dtype=np.int64)
    extra = np.setdiff1d(index_ids, db_ids)
    removed = index.remove(extra) if extra.size else 0
    added = _add_from_db(conn, index, np.setdiff1d(db_ids, index_ids), model)
    return ReconcileReport(added=added, removed=int(removed))
