"""A fuzz run of the OpenAPI document (schemathesis) against the app: no 500s, no schema violations.

Schemathesis generates requests from the document itself, valid and invalid, for every
operation, sends them to the ASGI app and checks each answer: never a server error, a
status code the document declares, the declared content type, and a body that matches the
declared schema (errors included). It runs once for each of three people, so that the
requests get past sign-in and reach the code behind it: someone who holds every role that
can be held together with searching, a system administrator, and an auditor.

Each operation gets ``MAX_EXAMPLES`` schema-valid and as many schema-invalid requests per
person. Signing out is left out (it would end the session the run uses). The three sign in
before any run: the runs' failed sign-ins from the test client's address soon trip the
per-address sign-in limit, which then refuses the right password too. Marked slow.

(Schemathesis's own pytest integration does not run under pytest 9.2, so the operations
are walked here and each is given to Hypothesis directly.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from web_helpers import CUSTODY, PAROLE, Agency, Session, running, shared_pipeline, template

from faceledger.services import galleries

__all__ = ["template"]  # fixtures

pytestmark = pytest.mark.slow

PEOPLE = {
    "power.user": ("examiner", "reviewer", "supervisor", "gallery_admin"),
    "sys.admin": ("system_admin",),
    "audrey.auditor": ("auditor",),
}
MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def signed_in(agency: Agency) -> dict[str, Session]:
    """Each person's session, opened before any fuzz run."""
    return {username: agency.login(username) for username in PEOPLE}


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Iterator[Agency]:
    pipeline = shared_pipeline()
    with running(tmp_path_factory.mktemp("fuzz") / "data", template, analyzer=pipeline) as started:
        started.load_example_policy()
        for name in (CUSTODY, PAROLE):
            galleries.create_gallery(started.dd, name, legal_basis="PACE s.64A", source_description="LFW")
        for username, roles in PEOPLE.items():
            started.add(username, *roles)
        yield started


EXCLUDED = {"POST /api/v1/auth/logout"}


def fuzz(agency: Agency, session: Session, mode: GenerationMode) -> None:
    """Every operation of the document, ``max_examples`` generated requests each."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", agency.app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document has an invalid operation: {result.err()}"
        operations.append(result.ok())
    assert len(operations) > 40
    for operation in operations:
        if f"{operation.method.upper()} {operation.path}" in EXCLUDED:
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: Case[Any]) -> None:
            case.call_and_validate(headers=session.headers, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # Nothing to make invalid: an operation without parameters or body has no negative cases.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:
            raise AssertionError(f"{operation.label} ({mode.value}): {exc}") from exc


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize("who", sorted(PEOPLE))
def test_no_request_gets_a_server_error_or_breaks_the_document(
    agency: Agency, signed_in: dict[str, Session], who: str, mode: GenerationMode
) -> None:
    fuzz(agency, signed_in[who], mode)
