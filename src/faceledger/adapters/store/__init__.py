"""The metadata store: galleries, subjects, images with provenance, faces with embeddings.

SQLAlchemy Core over SQLite by default (any SQLAlchemy URL works, e.g. PostgreSQL), with
the schema managed by Alembic migrations that are applied whenever a store is opened.
The store is the source of truth: the vector index is derived from its ``faces`` table.
"""

from __future__ import annotations

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
