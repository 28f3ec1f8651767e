"""The metadata store: galleries, subjects, images with provenance, faces with embeddings.

SQLAlchemy Core over SQLite by default (any SQLAlchemy URL works, e.g. PostgreSQL), with
the schema managed by Alembic migrations that are applied whenever a store is opened.
The store is the source of truth: the vector index is derived from its ``faces`` table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from faceledger.adapters.store import repository
from faceledger.adapters.store.engine import make_engine, migrate, sqlite_url
from faceledger.errors import StoreError

__all__ = ["Store", "repository"]

#: The advisory lock :meth:`Store.begin_write` takes on PostgreSQL when given no key.
WRITE_LOCK_KEY = "faceledger.write"


def advisory_lock_id(key: str) -> int:
    """A stable signed 64-bit id for ``key``, as ``pg_advisory_xact_lock(bigint)`` takes."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big", signed=True)


class Store:
    """An engine with the schema at the newest revision; hands out transactions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        engine = make_engine(url)
        try:
            migrate(engine)
        except OperationalError as exc:
            engine.dispose()
            raise StoreError(f"cannot open database {url!r}: {exc.orig}") from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @classmethod
    def open_sqlite(cls, path: Path) -> Store:
        return cls.open(sqlite_url(path))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def begin_write(self, key: str = WRITE_LOCK_KEY) -> Iterator[Connection]:
        """One transaction that holds a write lock *before* its first read, for check-then-write.

        A read followed by a write that depends on it (count today's searches, then reserve
        one) races in :meth:`begin`: two transactions can both read before either writes.
        Here concurrent callers with the same ``key`` run one after another, each seeing
        what the previous one committed:

        * SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock at once (waiting up
          to the busy timeout for another writer), so ``key`` does not matter: every writer
          is serialised, which is why the block should be short;
        * PostgreSQL: ``pg_advisory_xact_lock`` on ``key`` (a hash of it), released at commit
          or rollback; under READ COMMITTED each later statement sees the previous holder's
          commit. Writers with other keys, and :meth:`begin`, are not held up.

        Other databases get a plain transaction (no serialisation). Committed when the
        block ends, rolled back if it raises, like :meth:`begin`.
        """
        with self.engine.connect() as conn, conn.begin():
            if self.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif self.engine.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(CAST(:id AS BIGINT))"), {"id": advisory_lock_id(key)}
                )
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def checkpoint(self) -> None:
        """Fold the SQLite WAL back into the database so purged pages leave the journal too."""
        if self.is_sqlite:
            with self.engine.connect() as conn:
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    def close(self) -> None:
        self.engine.dispose()
