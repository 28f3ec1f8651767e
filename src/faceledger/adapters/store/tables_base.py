"""The shared :class:`~sqlalchemy.MetaData` and column conventions of every table module.

:mod:`tables` and the service table modules (:mod:`tables_accounts`, :mod:`tables_audit`,
:mod:`tables_cases`) all register on :data:`metadata` here; :mod:`tables` imports the others,
so ``tables.metadata`` is the whole schema. Keeping these in their own module means no table
module imports another that imports it back.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, MetaData

# Named constraints keep future migrations (batch mode on SQLite, ALTER on PostgreSQL) deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

Id = BigInteger().with_variant(Integer(), "sqlite")
"""Primary/foreign key type: BIGINT on servers, INTEGER (the rowid alias) on SQLite."""

SHA256_LEN = 64
NAME_LEN = 64
SUBJECT_LEN = 200
MODEL_KEY_LEN = 200
