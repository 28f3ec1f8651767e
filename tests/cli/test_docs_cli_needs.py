"""The "needs" column of docs/cli.md's command tables says what the code asks the door.

Each row that names actions (backticked action names such as ``manage_galleries``) is run
through the real CLI, on one data directory under the shipped example policy, by a person
whose role permits none of them and by one whose role permits the first: the first is
refused citing ``'<first action>' needs one of the roles``, so the command asks exactly the
documented action (first among its alternatives); the second is not refused by role. Every
such row must have its commands listed in :data:`COMMANDS` below, so a row added to the
docs without being checked here fails, as does a command here the docs no longer list.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from signed_in_unit import ADMIN, CASE, GALLERY, ONE_OF_EACH, ORG, PURPOSE, UNIT, SignedInUnit, governed_unit

from faceledger.domain.roles import Action, Role, roles_permitting

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
PEOPLE = ONE_OF_EACH
BY_ROLE = {Role(role): name for name, role in PEOPLE} | {Role.SYSTEM_ADMIN: ADMIN}
WHY = ("--reason", "court_order", "--authority", "Order 2026-9")
PROBE = "{probe}"  # replaced by a file path: the door decides before any image is read

#: docs row (its first command, as written up to the first argument) -> the commands to run.
COMMANDS: dict[str, list[tuple[str, ...]]] = {
    "gallery create": [("gallery", "create", "{new}", "--legal-basis", "x", "--source-description", "y")],
    "enroll": [("enroll", GALLERY, "{folder}")],
    "gallery purge": [("gallery", "purge", GALLERY, "--subject", "nobody", *WHY, "--yes")],
    "gallery purge-expired": [("gallery", "purge-expired")],
    "gallery show": [
        ("gallery", "show", GALLERY, "--subjects"),
        ("gallery", "show", GALLERY, "--turned-down"),
    ],
    "search": [("search", PROBE, "-g", GALLERY, "--case", CASE, "--purpose", PURPOSE)],
    "verify": [("verify", PROBE, PROBE, "--case", CASE, "--purpose", PURPOSE)],
    "case show": [("case", "show", CASE)],
    "review show": [("review", "show", "999")],
    "review examine": [("review", "examine", "999", "-f", "1=no_match")],
    "review peer": [("review", "peer", "999", "--agree")],
    "review approve": [("review", "approve", "999"), ("review", "reject", "999", "--reason", "weak")],
    "audit log": [("audit", "log")],
    "audit export": [("audit", "export", "{out}")],
    "audit checkpoint": [("audit", "checkpoint")],
    "audit report": [("audit", "report")],
    "audit prove": [("audit", "prove", "1")],
    "audit prove-extension": [("audit", "prove-extension", "1")],
    "user create": [("user", "create", "{new}", "--role", "reviewer", "--organisation", ORG, "--unit", UNIT)],
    "user reset-password": [
        ("user", "reset-password", "rex.reviewer"),
        ("user", "enrol-totp", "rex.reviewer"),
    ],
    "user vouch": [("user", "vouch", "rex.reviewer")],
    "user set-roles": [
        ("user", "set-roles", "rex.reviewer", "--role", "reviewer"),
        ("user", "suspend", "rex.reviewer", "--reason", "r"),
        ("user", "unsuspend", "rex.reviewer"),
        ("user", "set-expiry", "rex.reviewer", "--never"),
        ("user", "unlock", "rex.reviewer"),
    ],
    "user list": [("user", "list")],
    "device register": [
        ("device", "register", "{new}", "--name", "n", "--unit", UNIT),
        ("device", "revoke", "nodevice", "--reason", "lost"),
        ("device", "enrol-browser", "nodevice"),
    ],
    "device list": [("device", "list")],
    "policy load": [("policy", "load", "--example")],
}

_serial = iter(range(1, 100_000))
_ACTIONS = {a.value for a in Action}


def _rows() -> dict[str, list[str]]:
    """Each table row's first command (words before its first argument) -> the actions it needs."""
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`faceledger "):
            continue
        actions = [word for word in re.findall(r"`([a-z_]+)`", cells[1]) if word in _ACTIONS]
        if not actions or cells[1].startswith("one's own account"):
            continue
        first = re.match(r"`faceledger ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", cells[0])
        assert first is not None, line
        words = first.group(1).split()
        rows[" ".join(w for w in words if not w.isupper())] = actions
    return rows


DOCUMENTED = _rows()


def test_every_row_that_names_an_action_is_checked_here() -> None:
    assert len(DOCUMENTED) > 20, "the tables were not read"
    assert sorted(DOCUMENTED) == sorted(COMMANDS)


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedInUnit]:
    with governed_unit(tmp_path_factory.mktemp("cli-needs"), PEOPLE) as built:
        yield built


def _argv(unit: SignedInUnit, command: tuple[str, ...]) -> list[str]:
    probe = unit.root / "probe.jpg"
    probe.write_bytes(b"not a photo")
    folder = unit.root / "to-enrol"
    folder.mkdir(exist_ok=True)
    values = {
        "{probe}": str(probe),
        "{folder}": str(folder),
        "{out}": str(unit.root / f"export-{next(_serial)}.json"),
        "{new}": f"new-{next(_serial)}",
    }
    return [values.get(part, part) for part in command]


def _refusal_by_role(output: str) -> str | None:
    found = re.search(r"refused: '([a-z_]+)' needs one of the roles", output)
    return None if found is None else found.group(1)


@pytest.mark.parametrize("row", sorted(COMMANDS))
def test_the_documented_action_is_the_one_the_command_asks(unit: SignedInUnit, row: str) -> None:
    actions = [Action(a) for a in DOCUMENTED[row]]
    allowed = set().union(*(roles_permitting(a) for a in actions))
    outsider = next(role for role in BY_ROLE if role not in allowed)
    insider = next(role for role in BY_ROLE if role in roles_permitting(actions[0]))
    for command in COMMANDS[row]:
        refused = unit.invoke(BY_ROLE[outsider], *_argv(unit, command))
        assert refused.exit_code == 1, (command, refused.output)
        assert _refusal_by_role(refused.output) == actions[0].value, (command, outsider, refused.output)
        answered = unit.invoke(BY_ROLE[insider], *_argv(unit, command))
        assert _refusal_by_role(answered.output) is None, (command, insider, answered.output)
        assert answered.exit_code in (0, 1), (command, answered.output)  # 2 would be a usage error
