"""``faceledger policy``, ``case`` and ``review``: the accountable side, from a terminal.

Every command acts as the person signed in with ``faceledger login`` (refused otherwise) and
goes through the same services and policy as the web service, so a refusal here is recorded
exactly as one there. Wire into the main app with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from faceledger.cli.accounts import opened, signed_in
from faceledger.cli.common import (
    DataDirOption,
    JsonOption,
    console,
    err_console,
    fail,
    handle_errors,
    print_json,
    shown,
)
from faceledger.domain.models import Candidate
from faceledger.domain.review import Event, Finding, Outcome, PeerVerdict, PeerView, Review
from faceledger.errors import NotFoundError, ValidationError

policy_app = typer.Typer(
    help="The agency's policy: load a version (system administrators), show it, list every version.",
    no_args_is_help=True,
)
case_app = typer.Typer(help="Cases: everything recorded about one case number.", no_args_is_help=True)
review_app = typer.Typer(
    help=(
        "Human review of a search's candidates: examiner findings, blind peer review, supervisor decision. "
        "A candidate is an investigative lead only."
    ),
    no_args_is_help=True,
)

SearchArgument = Annotated[int, typer.Argument(help="The search id (shown when the search was made).")]
FindingOption = Annotated[
    list[str] | None,
    typer.Option(
        "--finding",
        "-f",
        help="FACE_ID=OUTCOME[:NOTES], one per candidate; OUTCOME: possible_match, no_match, inconclusive.",
    ),
]
NotesOption = Annotated[str, typer.Option(help="Notes recorded with the step.")]

_OUTCOMES = {
    "possible_match": Outcome.POSSIBLE_MATCH,
    "possible": Outcome.POSSIBLE_MATCH,
    "no_match": Outcome.NO_MATCH,
    "no": Outcome.NO_MATCH,
    "inconclusive": Outcome.INCONCLUSIVE,
}


def register(app: typer.Typer) -> None:
    """Add ``policy``, ``case`` and ``review`` to the main ``faceledger`` app."""
    app.add_typer(policy_app, name="policy")
    app.add_typer(case_app, name="case")
    app.add_typer(review_app, name="review")


def _now() -> datetime:
    return datetime.now(UTC)


def parse_finding(spec: str) -> Finding:
    """``12=possible_match:scar above the left eyebrow`` -> a finding about face 12."""
    face, sep, rest = spec.partition("=")
    outcome, _, notes = rest.partition(":")
    chosen = _OUTCOMES.get(outcome.strip().lower())
    if not sep or not face.strip().isdigit() or chosen is None:
        raise ValidationError(
            f"--finding {spec!r}: write FACE_ID=OUTCOME[:NOTES], e.g. 12=possible_match:scar above left eye "
            f"(outcomes: {', '.join(o.value for o in Outcome)})"
        )
    return Finding(int(face), chosen, notes.strip())


def _findings(specs: Sequence[str] | None) -> list[Finding]:
    if not specs:
        raise ValidationError("give one --finding per candidate (see `faceledger review show SEARCH_ID`)")
    return [parse_finding(spec) for spec in specs]


# --- policy -----------------------------------------------------------------------------------


@policy_app.command("load")
@handle_errors
def load(
    file: Annotated[
        Path | None, typer.Argument(help="The agency's policy file (TOML, see docs/policy.md).")
    ] = None,
    example: Annotated[
        bool, typer.Option("--example", help="Load the shipped example policy instead (trials and demos).")
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a policy file the one in force (a system administrator's action; recorded in the audit log)."""
    from faceledger.services import policies

    if (file is None) == (not example):
        raise fail("give a policy FILE, or --example for the shipped example", code=2)
    with opened(data_dir) as dd:
        who = signed_in(dd)
        if file is not None:
            policy = policies.load_policy(dd, who, file, now=_now())
        else:
            policy = policies.load_example_policy(dd, who, now=_now())
        stored = policies.active_stored_policy(dd)
    assert stored is not None
    if as_json:
        print_json(stored.to_dict())
        return
    console.print(f"policy {policy.version!r} of {policy.organisation} is in force (sha256 {stored.sha256})")


@policy_app.command("show")
@handle_errors
def show_policy(
    text: Annotated[bool, typer.Option("--text", help="Print the policy file itself.")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The policy in force: version, who loaded it and when, purposes and galleries."""
    from faceledger.services import policies

    with opened(data_dir) as dd:
        signed_in(dd)
        stored = policies.active_stored_policy(dd)
    if stored is None:
        raise NotFoundError(policies.no_policy_decision().reason)
    if as_json:
        print_json(stored.to_dict(text=text))
        return
    if text:
        console.print(stored.text, markup=False, highlight=False, soft_wrap=True)
        return
    policy = stored.policy()
    console.print(f"policy {stored.version!r} of {stored.organisation}, sha256 {stored.sha256}")
    console.print(f"loaded by {stored.loaded_by} at {stored.loaded_at.isoformat(timespec='seconds')}")
    console.print(
        f"case numbers like {policy.case_number_example!r}; daily limit {policy.daily_search_limit}"
    )
    for purpose in policy.purposes:
        console.print(f"  purpose {purpose.id}: galleries {', '.join(sorted(purpose.galleries))}")
    for prohibited in policy.prohibited:
        console.print(f"  prohibited {prohibited.id}")


@policy_app.command("history")
@handle_errors
def history(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Every policy version ever loaded, oldest first."""
    from faceledger.services import policies

    with opened(data_dir) as dd:
        signed_in(dd)
        versions = policies.policy_history(dd)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    if not versions:
        console.print("no policy has been loaded yet (faceledger policy load FILE)")
    for v in versions:
        mark = "*" if v.active else " "
        when = v.loaded_at.isoformat(timespec="seconds")
        console.print(
            f"{mark} {shown(v.version):<24} {v.sha256[:16]}  {when}  {shown(v.loaded_by)}  {shown(v.source)}"
        )


# --- case ---------------------------------------------------------------------------------------


@case_app.command("show")
@handle_errors
def show_case(
    case_number: Annotated[str, typer.Argument(help="The case number, e.g. 2025/CID/004211.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """A case's whole history: searches, decisions and refusals, probe edits, views, review steps."""
    from faceledger.services import cases

    with opened(data_dir) as dd:
        found = cases.case_history(dd, signed_in(dd), case_number, now=_now())
    if as_json:
        print_json(found.to_dict())
        return
    opened_at = found.opened_at.isoformat(timespec="seconds") if found.opened_at else "never (refusals only)"
    console.print(f"case {shown(found.case_number)}: opened {opened_at} by {shown(found.opened_by or '-')}")
    candidates = {s.search_id: {c.face_id: c for c in s.candidates} for s in found.searches}
    for entry in found.entries:
        actor, summary = shown(entry.actor, markup=False), shown(entry.summary, markup=False)
        if entry.kind == "review":  # the step in words; who and when are the entry's
            step = entry.details
            summary = f"review of search {entry.search_id}, {_step_what(step)} {_step_moves(step)}"
        console.print(f"  {entry.at.isoformat(timespec='seconds')}  {actor:<16} {summary}", markup=False)
        if entry.kind == "review":
            of_search = candidates.get(entry.search_id, {}) if entry.search_id is not None else {}
            for line in review_step_details(entry.details, of_search):
                console.print(f"      {line}", markup=False)


# --- review -------------------------------------------------------------------------------------


def _candidate_line(c: Candidate) -> str:
    mark = "*" if c.above_threshold else " "
    where = shown(f"{c.gallery}/{c.subject_id}", markup=False)
    of = f" (mean template of {c.template_images} images)" if c.template_images > 1 else ""
    return f" {mark}{c.rank:>3}. face {c.face_id:<8} {where}  score {c.score:.4f}{of}"


_OUTCOME_WORDS = {
    Outcome.POSSIBLE_MATCH.value: "possible match",
    Outcome.NO_MATCH.value: "no match",
    Outcome.INCONCLUSIVE.value: "inconclusive",
}
_STEP_WORDS = {
    Event.RECORD_NO_LEAD.value: "examination, no possible match (no lead)",
    Event.PROPOSE_MATCH.value: "examination, a possible match proposed",
    Event.PEER_ASSESS.value: "blind peer assessment",
    Event.PEER_AGREE.value: "peer verdict: agrees with the examiner",
    Event.PEER_DISAGREE.value: "peer verdict: disagrees with the examiner",
    Event.APPROVE.value: "supervisor approved the lead",
    Event.REJECT.value: "supervisor rejected the lead",
}


def _words(value: object, words: Mapping[str, str]) -> str:
    """A stored code in words; a code this CLI does not know is shown as stored (escaped)."""
    return words.get(str(value)) or shown(value, markup=False)


def _at(value: object) -> str:
    try:
        return datetime.fromisoformat(str(value)).isoformat(timespec="seconds")
    except ValueError:
        return shown(value, markup=False)


def _step_what(step: Mapping[str, Any]) -> str:
    return f"step {shown(step.get('seq'), markup=False)}: {_words(step.get('event'), _STEP_WORDS)}"


def _step_moves(step: Mapping[str, Any]) -> str:
    return f"({shown(step.get('from_state'), markup=False)} -> {shown(step.get('to_state'), markup=False)})"


def review_step_header(step: Mapping[str, Any]) -> str:
    """``step 2: blind peer assessment by r.reviewer at ... (from -> to)`` for a stored step (escaped)."""
    by = shown(step.get("by"), markup=False)
    return f"{_step_what(step)} by {by} at {_at(step.get('at'))} {_step_moves(step)}"


def review_step_details(step: Mapping[str, Any], candidates: Mapping[int, Candidate]) -> list[str]:
    """What a stored review step says, one line each: every finding with its notes, notes, reason.

    ``candidates`` (by face id) adds each finding's rank and gallery/subject. Stored text is
    escaped for printing with ``markup=False``.
    """
    lines: list[str] = []
    findings = step.get("findings")
    if isinstance(findings, str):  # withheld from this viewer
        lines.append(f"findings: {shown(findings, markup=False)}")
    elif isinstance(findings, list):
        for finding in findings:
            lines.append(_finding_line(finding, candidates))
            lines.extend(_worksheet_lines(finding))
    if "notes" in step:
        notes = str(step["notes"] or "")
        lines.append(f"notes: {shown(notes, markup=False)}" if notes.strip() else "notes: (none)")
    if "reason" in step:
        lines.append(f"reason: {shown(step['reason'], markup=False)}")
    return lines


def _finding_line(finding: Mapping[str, Any], candidates: Mapping[int, Candidate]) -> str:
    face_id = finding.get("face_id")
    candidate = candidates.get(face_id) if isinstance(face_id, int) else None
    where = ""
    if candidate is not None:
        subject = shown(f"{candidate.gallery}/{candidate.subject_id}", markup=False)
        where = f" (rank {candidate.rank}, {subject})"
    line = f"face {shown(face_id, markup=False)}{where}: {_words(finding.get('outcome'), _OUTCOME_WORDS)}"
    notes = str(finding.get("notes") or "")
    return line + (f"; notes: {shown(notes, markup=False)}" if notes.strip() else "")


def _worksheet_lines(finding: Mapping[str, Any]) -> list[str]:
    """``  worksheet, ears: similar; notes: attached lobes`` for each row of a finding's worksheet."""
    sheet = finding.get("worksheet")
    if not isinstance(sheet, Mapping):
        return []
    lines = []
    for feature, row in sheet.items():
        if not isinstance(row, Mapping):
            continue
        what = shown(str(feature).replace("_", " "), markup=False)
        line = f"  worksheet, {what}: {shown(str(row.get('comparison', '')).replace('_', ' '), markup=False)}"
        notes = str(row.get("notes") or "")
        lines.append(line + (f"; notes: {shown(notes, markup=False)}" if notes.strip() else ""))
    return lines


def _print_review(review: Review) -> None:
    console.print(f"search {review.search_id} (case {shown(review.case_number)}) is now {review.state.value}")


@review_app.command("show")
@handle_errors
def show_review(
    search_id: SearchArgument, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """A search's candidates and review so far (the examiner's work is withheld while it must be)."""
    from faceledger.services import reviews

    with opened(data_dir) as dd:
        view = reviews.show_review(dd, signed_in(dd), search_id, now=_now())
    if as_json:
        print_json(view.to_dict())
        return
    console.print(
        f"search {view.search_id}, case {shown(view.case_number)}, by {shown(view.searched_by)}: {view.state}"
    )
    for candidate in view.candidates:
        console.print(_candidate_line(candidate), markup=False)
    by_face = {c.face_id: c for c in view.candidates}
    for step in view.steps:
        console.print(f"  {review_step_header(step)}", markup=False)
        for line in review_step_details(step, by_face):
            console.print(f"    {line}", markup=False)
    if view.withheld:
        err_console.print("the examiner's findings are withheld until the blind peer assessment is recorded")
    console.print(f"next: {', '.join(view.allowed_next) or 'nothing (the review is closed)'}")
    console.print(view.lead_notice, markup=False, soft_wrap=True)


@review_app.command("examine")
@handle_errors
def examine(
    search_id: SearchArgument,
    finding: FindingOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record the examiner's finding for every candidate (a possible match needs notes)."""
    from faceledger.services import reviews

    findings = _findings(finding)
    with opened(data_dir) as dd:
        review = reviews.examine(dd, signed_in(dd), search_id, findings, now=_now())
    _done(review, as_json)


def _peer_view_dict(view: PeerView) -> dict[str, Any]:
    return {
        "search_id": view.search_id,
        "case_number": view.case_number,
        "blind": view.blind,
        "candidates": [c.to_dict() for c in view.candidates],
        "examiner_findings": [f.to_dict() for f in view.examiner_findings],
        "own_findings": [f.to_dict() for f in view.own_findings],
    }


def _print_peer_view(view: PeerView) -> None:
    if view.blind:
        console.print(
            f"search {view.search_id} (case {shown(view.case_number)}): candidates, "
            "without the examiner's findings"
        )
    else:
        console.print(
            f"search {view.search_id} (case {shown(view.case_number)}): your findings and the examiner's"
        )
    mine = {f.face_id: f for f in view.own_findings}
    theirs = {f.face_id: f for f in view.examiner_findings}
    for c in view.candidates:
        line = _candidate_line(c)
        if not view.blind:
            for who, finding in (("you", mine[c.face_id]), ("examiner", theirs[c.face_id])):
                line += f"  {who}: {_words(finding.outcome.value, _OUTCOME_WORDS)}"
                if finding.notes.strip():
                    line += f" ({shown(finding.notes, markup=False)})"
        console.print(line, markup=False)
    if view.blind:
        console.print(
            "record your own finding for each: faceledger review peer SEARCH_ID -f FACE_ID=OUTCOME[:NOTES]"
        )
    else:
        console.print("then: faceledger review peer SEARCH_ID --agree | --disagree --notes WHY")


@review_app.command("peer")
@handle_errors
def peer(
    search_id: SearchArgument,
    finding: FindingOption = None,
    agree: Annotated[
        bool, typer.Option("--agree", help="Agree with the examiner (after your own findings).")
    ] = False,
    disagree: Annotated[
        bool, typer.Option("--disagree", help="Disagree with the examiner (give --notes).")
    ] = False,
    notes: NotesOption = "",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Peer review: shows the candidates blind first; record your findings, then agree or disagree."""
    from faceledger.services import reviews

    if agree and disagree:
        raise fail("choose one of --agree and --disagree", code=2)
    if (agree or disagree) and finding:
        raise fail("record your findings first, then --agree or --disagree in a second command", code=2)
    with opened(data_dir) as dd:
        who = signed_in(dd)
        if agree or disagree:
            verdict = PeerVerdict.AGREE if agree else PeerVerdict.DISAGREE
            _done(reviews.record_verdict(dd, who, search_id, verdict, notes, now=_now()), as_json)
            return
        if finding:
            reviews.peer_assess(dd, who, search_id, _findings(finding), now=_now())
        view = reviews.peer_view(dd, who, search_id, now=_now())
    if as_json:
        print_json(_peer_view_dict(view))
        return
    _print_peer_view(view)


@review_app.command("approve")
@handle_errors
def approve(
    search_id: SearchArgument,
    notes: NotesOption = "",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """A supervisor approves the lead (it stays an investigative lead only)."""
    from faceledger.services import reviews

    with opened(data_dir) as dd:
        review = reviews.approve(dd, signed_in(dd), search_id, notes, now=_now())
    _done(review, as_json)


@review_app.command("reject")
@handle_errors
def reject(
    search_id: SearchArgument,
    reason: Annotated[str, typer.Option(help="Why the lead is rejected (required).")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """A supervisor rejects the lead, giving the reason."""
    from faceledger.services import reviews

    with opened(data_dir) as dd:
        review = reviews.reject(dd, signed_in(dd), search_id, reason, now=_now())
    _done(review, as_json)


def _done(review: Review, as_json: bool) -> None:
    if as_json:
        print_json(
            {"search_id": int(review.search_id), "state": review.state.value, "steps": review.timeline()}
        )
        return
    _print_review(review)
