"""Accountable 1:N search: a probe photo, a case number, a purpose and galleries in; leads out.

The policy in force decides the request before the photo is decoded; a refusal is a 403
whose body names the rule (``rule_id``) and the policy version, and it is recorded. An
allowed search is stored with everything that explains it and returned with its id, the
candidates (score, estimated false match rate), the threshold and the decision.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, UploadFile, status

from faceledger.errors import ValidationError
from faceledger.pipeline.edit import MAX_EDITS, Edit, make_edit
from faceledger.services import searches
from faceledger.services.datadir import DataDir
from faceledger.services.identification import MAX_TOP_K
from faceledger.services.policies import Principal
from faceledger.services.probes import Probe
from faceledger.services.search_records import SearchRecord
from faceledger.web.deps import DataDirDep, EngineDep, NowDep, PrincipalDep
from faceledger.web.engine import FaceEngine
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.common import MAX_ID, MULTI_LINE, ONE_LINE, documented
from faceledger.web.models.searches import SearchOut
from faceledger.web.uploads import NOT_EMPTY, read_upload, upload_name

router = APIRouter(prefix="/api/v1/searches", tags=["searches"], responses=COMMON_RESPONSES)

SearchId = Annotated[int, Path(ge=1, le=MAX_ID)]
#: Case and purpose fields are optional here on purpose: a search without them is the
#: policy's to refuse (rules case.missing, purpose.missing), and that refusal is recorded.
CaseNumber = Annotated[
    str | None,
    Form(max_length=200, description="The case the search is for.", json_schema_extra=documented(ONE_LINE)),
]
Purpose = Annotated[str | None, Form(max_length=200, description="A purpose the policy allows.")]
Justification = Annotated[
    str | None,
    Form(
        max_length=20_000, description="Why this search is needed.", json_schema_extra=documented(MULTI_LINE)
    ),
]
OnBehalfOf = Annotated[
    str | None,
    Form(
        max_length=200,
        description="Another agency, under an agreement.",
        json_schema_extra=documented(ONE_LINE),
    ),
]
AgreementRef = Annotated[
    str | None,
    Form(
        max_length=200,
        description="The agreement the search is made under.",
        json_schema_extra=documented(ONE_LINE),
    ),
]

_EDITS_HELP = (
    'JSON list of edits applied in order before searching, e.g. [{"kind": "crop", "params": {"left": 0, '
    '"top": 0, "right": 200, "bottom": 200}}, {"kind": "rotate", "params": {"degrees": 90}}, '
    '{"kind": "brightness", "params": {"factor": 1.2}}, {"kind": "contrast", "params": {"factor": 1.3}}]; '
    "each is recorded with the search."
)


def parse_edits(text: str | None) -> tuple[Edit, ...]:
    """The edits a client sent as JSON (``[{"kind": ..., "params": {...}}, ...]``)."""
    if text is None or not text.strip():
        return ()
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"edits: not valid JSON ({exc.msg} at character {exc.pos})") from None
    except (ValueError, RecursionError):
        raise ValidationError("edits: not valid JSON (nested too deeply, or a number too large)") from None
    if not isinstance(value, list) or len(value) > MAX_EDITS:
        raise ValidationError(f"edits: give a JSON list of at most {MAX_EDITS} edits")
    edits: list[Edit] = []
    for number, entry in enumerate(value, 1):
        if (
            not isinstance(entry, dict)
            or set(entry) != {"kind", "params"}
            or not isinstance(entry["params"], dict)
        ):
            raise ValidationError(f'edits[{number}]: each edit is {{"kind": ..., "params": {{...}}}}')
        edits.append(make_edit(str(entry["kind"]), entry["params"]))
    return tuple(edits)


@router.post("", response_model=SearchOut, status_code=status.HTTP_201_CREATED)
async def search(
    principal: PrincipalDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    probe: Annotated[
        UploadFile,
        File(description="The probe photo (kept, as submitted, as evidence).", json_schema_extra=NOT_EMPTY),
    ],
    case_number: CaseNumber = None,
    purpose: Purpose = None,
    galleries: Annotated[
        list[Annotated[str, Form(max_length=200)]],
        Form(max_length=50, description="Galleries to search (repeat the field)."),
    ] = [],  # noqa: B006 - FastAPI copies defaults
    justification: Justification = None,
    on_behalf_of: OnBehalfOf = None,
    agreement_ref: AgreementRef = None,
    top_k: Annotated[int | None, Form(ge=1, le=MAX_TOP_K, description="Candidates to return.")] = None,
    edits: Annotated[str | None, Form(max_length=10_000, description=_EDITS_HELP)] = None,
) -> SearchOut:
    """Search the largest face of the probe against galleries, under the policy in force."""
    request = searches.SearchInput(
        case_number=case_number,
        purpose=purpose,
        galleries=tuple(galleries),
        justification=justification,
        on_behalf_of=on_behalf_of,
        agreement_ref=agreement_ref,
        top_k=top_k,
        edits=parse_edits(edits),
    )
    record = await run_search(dd, engine, principal, probe, request, now=now)
    return SearchOut.of(record)


async def run_search(
    dd: DataDir,
    engine: FaceEngine,
    principal: Principal,
    probe: UploadFile,
    request: searches.SearchInput,
    *,
    now: datetime,
) -> SearchRecord:
    """Read the uploaded probe and run :func:`searches.accountable_search` on the face pool.

    The API's route and the search page both search through this, so the policy decides and
    the service records a page's search exactly as an API client's.
    """
    data = await read_upload(probe, "probe", dd.settings.image)
    submitted = Probe(data, upload_name(probe, "probe"))
    return await engine.run(searches.accountable_search, dd, engine, principal, submitted, request, now=now)


@router.get("/{search_id}", response_model=SearchOut)
def get_search(principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId) -> SearchOut:
    """A stored search (anyone with ``view_case``); showing its candidates is recorded."""
    return SearchOut.of(searches.get_search(dd, principal, search_id, now=now))
