"""The "who" column of docs/api.md's endpoint table says what the code does.

The roles matrix (``test_roles_matrix``) calls every operation of the API as every role,
against the real app, and holds what is allowed. This reads the table in docs/api.md,
turns each "who" cell into roles (role names; actions such as ``view_case`` as the roles
that permit them; "signed in" and "own account" as every role; "anyone" as everyone
including the anonymous; "owner" adds nothing, since the matrix acts on another person's
token), and compares: a reader of the docs gets the same answer as a caller of the API.
"""

from __future__ import annotations

import re
from pathlib import Path

from test_roles_matrix import ANONYMOUS, CASES, PUBLIC, SIGNED_IN

from faceledger.domain.roles import Action, roles_permitting

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_PARAMETER = re.compile(r"\{[^}]*\}")
ROLE_NAMES = ("examiner", "reviewer", "supervisor", "gallery_admin", "auditor", "system_admin")


def _normal(operation: str) -> str:
    """``METHOD /path`` with the query dropped and every path parameter written ``{}``."""
    method, path = operation.split(" ", 1)
    bare = _PARAMETER.sub("{}", path.split("?", 1)[0])
    return f"{method} {bare}"


def _operations(cell: str) -> list[str]:
    """``GET /a`, `GET /b``, or ``POST /a/x`, `/y`` (a sibling of the last path segment)."""
    found: list[str] = []
    for part in re.findall(r"`([^`]+)`", cell):
        if " " in part:
            found.append(part)
        elif part.startswith("/") and found:
            method, path = found[-1].split(" ", 1)
            found.append(f"{method} {path.rsplit('/', 1)[0]}{part}")
    return [_normal(op) for op in found]


def _roles(cell: str) -> frozenset[str]:
    text = cell.lower()
    if "anyone" in text:
        return frozenset(PUBLIC)
    roles = {name for name in ROLE_NAMES if re.search(rf"\b{name}\b", text)}
    for action in Action:
        if re.search(rf"\b{action.value}\b", text):
            roles |= {role.value for role in roles_permitting(action)}
    if any(word in text for word in ("signed in", "own account")):
        roles |= SIGNED_IN
    if "blind reviewer" in text:
        roles.add("reviewer")
    return frozenset(roles)


def _documented() -> dict[str, frozenset[str]]:
    table: dict[str, frozenset[str]] = {}
    section = DOC.read_text(encoding="utf-8").split("## Endpoints", 1)[1]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for operation in _operations(cells[0]):
            table[operation] = _roles(cells[1])
    return table


def test_every_operation_the_matrix_calls_is_in_the_table() -> None:
    documented = _documented()
    missing = sorted({_normal(c.operation) for c in CASES} - set(documented))
    assert missing == []


def test_the_table_says_who_may_as_the_code_decides() -> None:
    documented = _documented()
    allowed: dict[str, set[str]] = {}
    for case in CASES:  # several cases may share an operation (one's own token, another's)
        allowed.setdefault(_normal(case.operation), set()).update(case.allowed)
    differ = {
        op: {"docs": sorted(documented[op] - {ANONYMOUS}), "code": sorted(roles - {ANONYMOUS})}
        for op, roles in allowed.items()
        if op in documented and documented[op] - {ANONYMOUS} != roles - {ANONYMOUS}
    }
    assert differ == {}
    assert len(allowed) > 40
