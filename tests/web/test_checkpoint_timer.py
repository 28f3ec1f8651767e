"""While the service runs, the audit log is checkpointed on a timer when entries were added."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from audit_helpers import append
from sqlalchemy import func, select, text
from starlette.testclient import TestClient

from faceledger.adapters.store.tables_audit import audit_checkpoints
from faceledger.audit.checkpoint import read_checkpoints
from faceledger.config import AuditSettings, Settings
from faceledger.errors import ConfigError
from faceledger.services import audit
from faceledger.services.datadir import DataDir, init_data_dir
from faceledger.web.app import create_app


def _newest(dd: DataDir) -> int | None:
    with dd.store.read() as conn:
        newest: int | None = conn.execute(select(func.max(audit_checkpoints.c.tree_size))).scalar_one()
    return newest


def test_checkpoint_if_behind_signs_only_when_entries_were_added(tmp_path: Path) -> None:
    with init_data_dir(tmp_path / "data", settings=Settings(audit=AuditSettings(checkpoint_every=0))) as dd:
        append(dd, 3)
        first = audit.checkpoint_if_behind(dd)
        assert first is not None
        assert first.tree_size == audit.log_info(dd).size
        assert audit.checkpoint_if_behind(dd) is None  # nothing new since
        append(dd, 2, first=4)
        again = audit.checkpoint_if_behind(dd)
        assert again is not None
        assert again.tree_size == first.tree_size + 2


def test_the_running_service_signs_checkpoints_on_its_timer(tmp_path: Path) -> None:
    settings = Settings(audit=AuditSettings(checkpoint_every=0, checkpoint_minutes=0.005))  # every 0.3 s
    with init_data_dir(tmp_path / "data", settings=settings) as dd:
        append(dd, 4)
        size = audit.log_info(dd).size
        with TestClient(create_app(dd)):
            deadline = time.monotonic() + 10
            while _newest(dd) != size and time.monotonic() < deadline:
                time.sleep(0.1)
        assert _newest(dd) == size
        assert read_checkpoints(dd.checkpoint_path)[-1].tree_size == size


@pytest.mark.parametrize("minutes", [-1.0, 1e9])
def test_a_timer_setting_out_of_range_is_refused(minutes: float) -> None:
    with pytest.raises(ConfigError, match="checkpoint_minutes"):
        AuditSettings(checkpoint_minutes=minutes)


def test_the_service_refuses_to_start_on_a_log_cut_while_it_was_down(tmp_path: Path) -> None:
    settings = Settings(audit=AuditSettings(checkpoint_every=0, checkpoint_minutes=0))
    with init_data_dir(tmp_path / "data", settings=settings) as dd:
        append(dd, 6)
        audit.checkpoint(dd)
        with dd.store.begin() as conn:  # someone with the database cuts the tail and hides it
            conn.execute(text("DELETE FROM audit_entries WHERE seq > 3"))
            conn.execute(text("DELETE FROM audit_checkpoints"))
            conn.execute(text("UPDATE audit_log SET size = 3"))
        with (
            pytest.raises(audit.LogIntegrityError, match="the stored log has 3 entries"),
            TestClient(create_app(dd)),
        ):
            pass
