"""``faceledger audit ...``: export, verify, checkpoint and read the tamper-evident audit log.

``verify`` runs the standalone verifier (``faceledger/audit/verify.py``), the same file an
auditor copies out of the project, so what the command says is what they will see; it reads
only the files it is given and needs no account, since the auditor running it may be outside
the agency; ``public-key`` needs none either, since the key is public (as over the API). Every
other command acts as the person signed in with ``faceledger login`` and calls
:mod:`faceledger.services.audit_access`, which asks the one door (``read_audit``,
``export_audit`` or ``reports``); a refusal is recorded in the log it was trying to read.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from faceledger.cli.accounts import opened, signed_in
from faceledger.cli.common import (
    DataDirOption,
    JsonlOption,
    JsonOption,
    console,
    dumps,
    fail,
    handle_errors,
    one_output_mode,
    print_json,
    print_jsonl,
    shown,
)

if TYPE_CHECKING:
    from faceledger.services import audit as audit_service
    from faceledger.services import audit_proofs

app = typer.Typer(
    help="The tamper-evident audit log: export it, verify an export, take checkpoints, read it.",
    no_args_is_help=True,
)

SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="From this UTC date (YYYY-MM-DD) or ISO time with zone, inclusive."),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="Up to this UTC date (YYYY-MM-DD, the whole day) or ISO time, exclusive."),
]


def _moment(value: str | None, option: str, *, end_of_day: bool) -> datetime | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1) if end_of_day else day, time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{option}: {value!r} is not a date (YYYY-MM-DD) or an ISO time", code=2) from None
    if moment.tzinfo is None:
        raise fail(f"{option}: {value!r} has no time zone; add Z or +HH:MM", code=2)
    return moment


@app.command("export")
@handle_errors
def export(
    out: Annotated[Path, typer.Argument(help="File to write the export to (JSON).")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the whole log, with a fresh signed checkpoint, as one self-contained file for an auditor.

    Auditors (export_audit); the export itself is recorded in the log, naming the file.
    """
    from faceledger.services import audit_access

    with opened(data_dir) as dd:
        result = audit_access.export(dd, signed_in(dd), out, now=datetime.now(UTC))
        public_key = dd.audit_public_key_path
    summary = {
        "path": str(result.path),
        "entries": result.entries,
        "checkpoints": result.checkpoints,
        "checkpoint": result.checkpoint.to_json() if result.checkpoint else None,
        "public_key": str(public_key),
    }
    if as_json:
        print_json(summary)
        return
    console.print(f"wrote {result.entries} entries and {result.checkpoints} checkpoint(s) to {result.path}")
    if result.checkpoint is None:
        console.print("warning: the stored log is damaged and could not be checkpointed; verify the export")
    console.print(f"verify it with: faceledger audit verify {result.path} --key {public_key}")


@app.command("verify")
def verify(
    export_file: Annotated[Path, typer.Argument(metavar="EXPORT", help="The audit export to check.")],
    key: Annotated[Path, typer.Option("--key", help="The log's public key (PEM), from a trusted copy.")],
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint or checkpoint file obtained earlier (repeatable): catches truncation "
            "and rewritten history.",
        ),
    ] = None,
    proof: Annotated[
        bool, typer.Option("--proof", help="The file is a proof from `audit prove`, not an export.")
    ] = False,
    witness_key: Annotated[
        Path | None, typer.Option("--witness-key", help="A witness's public key (PEM), for --countersigned.")
    ] = None,
    countersigned: Annotated[
        list[Path] | None,
        typer.Option("--countersigned", help="A witness's countersigned checkpoints (repeatable)."),
    ] = None,
) -> None:
    """Verify an export with the standalone verifier (no account: reads only the files given).

    Exit status 0: verified; 1: verification failed (the message names the first entry
    altered, removed, reordered or inserted, or the truncation); 2: an input is unreadable.
    Without --checkpoint a cut log cannot be told from a short one: it says so in a warning.
    """
    from faceledger.audit import verify as standalone_verify

    argv = [str(export_file), "--key", str(key), *(["--proof"] if proof else [])]
    for path in checkpoint or []:
        argv += ["--checkpoint", str(path)]
    if witness_key is not None:
        argv += ["--witness-key", str(witness_key)]
    for path in countersigned or []:
        argv += ["--countersigned", str(path)]
    raise typer.Exit(standalone_verify.main(argv))


@app.command("checkpoint")
@handle_errors
def checkpoint(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Sign the log as it stands now; store the checkpoint and append it to the checkpoint file.

    Auditors (export_audit): a checkpoint is made to be shipped out of the administrators' reach.
    """
    from faceledger.services import audit_access

    with opened(data_dir) as dd:
        signed = audit_access.checkpoint(dd, signed_in(dd), now=datetime.now(UTC))
        file = dd.checkpoint_path
    if as_json:
        print_json({**signed.to_json(), "file": str(file)})
        return
    console.print(
        f"checkpoint: {signed.tree_size} entries, root {signed.root_hash.hex()}, at {signed.timestamp}"
    )
    console.print(f"appended to {file}: ship this file somewhere the database's administrators cannot write")


def _write_proof(found: audit_proofs.Proof, out: Path | None) -> None:
    if out is None:
        print_json(found.document)
        return
    out.expanduser().write_text(dumps(found.document, indent=2) + "\n", encoding="utf-8")
    console.print(
        f"{found.kind} proof written to {out}; check it with: faceledger audit verify {out} --key KEY --proof"
    )


ProofOut = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write the proof here instead of printing it.")
]


@app.command("prove")
@handle_errors
def prove(
    seq: Annotated[int, typer.Argument(help="The entry's sequence number.")],
    tree_size: Annotated[
        int | None,
        typer.Option("--tree-size", help="The stored checkpoint to prove it in (default: the newest)."),
    ] = None,
    out: ProofOut = None,
    data_dir: DataDirOption = None,
) -> None:
    """Prove that entry SEQ is in the log a signed checkpoint covers (read_audit).

    Prints (or writes) a JSON proof: the entry with its signature, its audit path and the
    checkpoint. Anyone holding the log's public key checks it with `audit verify --proof`.
    """
    from faceledger.services import audit_proofs

    with opened(data_dir) as dd:
        found = audit_proofs.prove_entry(dd, signed_in(dd), seq, tree_size=tree_size, now=datetime.now(UTC))
    _write_proof(found, out)


@app.command("prove-extension")
@handle_errors
def prove_extension(
    old_size: Annotated[int, typer.Argument(help="The size of the older stored checkpoint.")],
    new_size: Annotated[
        int | None, typer.Option("--to-size", help="The newer stored checkpoint (default: the newest).")
    ] = None,
    out: ProofOut = None,
    data_dir: DataDirOption = None,
) -> None:
    """Prove that the log at a later checkpoint extends the log at an earlier one (read_audit).

    A consistency proof: the history the older checkpoint signed was not rewritten since.
    """
    from faceledger.services import audit_proofs

    with opened(data_dir) as dd:
        found = audit_proofs.prove_extension(dd, signed_in(dd), old_size, new_size, now=datetime.now(UTC))
    _write_proof(found, out)


@app.command("public-key")
@handle_errors
def public_key(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the PEM here instead of printing it.")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print (or write) the log's public key, which auditors verify exports with (no account: public)."""
    from faceledger.services import audit as audit_service
    from faceledger.services import audit_access

    with opened(data_dir) as dd:
        found = audit_access.public_key(dd)
        if out is not None:
            audit_service.signer(dd).public_key.write(out)
    if as_json:
        print_json({"log_id": found.log_id, "fingerprint": found.fingerprint, "pem": found.pem})
    elif out is not None:
        console.print(f"wrote the public key of log {found.log_id} ({found.fingerprint}) to {out}")
    else:
        typer.echo(found.pem, nl=False)


def _entry_dict(entry: audit_service.LogEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "ts": entry.timestamp,
        "actor": entry.actor,
        "action": entry.action,
        "object": entry.object,
        "details": entry.details,
    }


@app.command("log")
@handle_errors
def log(
    actor: Annotated[str | None, typer.Option(help="Only entries by this actor (username).")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this kind of action, e.g. search, policy_denied.")
    ] = None,
    object_prefix: Annotated[
        str | None,
        typer.Option("--object", help="Only objects starting with this, e.g. gallery: or search:41."),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    page: Annotated[int, typer.Option(min=1, help="Page number, from 1.")] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=10_000, help="Entries per page.")] = 50,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    as_jsonl: JsonlOption = False,
) -> None:
    """List stored entries, oldest first, a page at a time (read_audit).

    As stored: verify an export to trust them.
    """
    from faceledger.services import audit as audit_service
    from faceledger.services import audit_access

    one_output_mode(as_json, as_jsonl)
    filters = audit_service.EntryFilter(
        actor=actor,
        action=action,
        object_prefix=object_prefix,
        since=_moment(since, "--since", end_of_day=False),
        until=_moment(until, "--until", end_of_day=True),
    )
    with opened(data_dir) as dd:
        result = audit_access.entries(
            dd, signed_in(dd), filters, offset=(page - 1) * per_page, limit=per_page, now=datetime.now(UTC)
        )
    rows = [_entry_dict(e) for e in result.entries]
    if as_json:
        print_json({"total": result.total, "page": page, "per_page": per_page, "entries": rows})
    elif as_jsonl:
        for row in rows:
            print_jsonl(row)
    else:
        _print_entries(result, page, per_page)


def _print_entries(result: audit_service.EntryPage, page: int, per_page: int) -> None:
    if not result.entries:
        console.print(f"no entries on page {page} ({result.total} match)")
        return
    from rich.table import Table

    table = Table("seq", "time (UTC)", "actor", "action", "object", "details")
    for e in result.entries:
        cells = (e.seq, e.timestamp, e.actor, e.action, e.object, _short(e.details))
        table.add_row(*(shown(cell) for cell in cells))  # stored values: escaped, never obeyed
    console.print(table)
    pages = max(1, -(-result.total // per_page))
    console.print(f"page {page} of {pages}; {result.total} matching entries")


def _short(details: Any, limit: int = 80) -> str:
    from faceledger.cli.common import dumps

    text = dumps(details)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command("report")
@handle_errors
def report(
    since: SinceOption = None,
    until: UntilOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Oversight report: searches per user, unit, purpose and outcome; denials by policy rule (reports)."""
    from faceledger.services import audit_access

    window = (_moment(since, "--since", end_of_day=False), _moment(until, "--until", end_of_day=True))
    with opened(data_dir) as dd:
        result = audit_access.report(
            dd, signed_in(dd), since=window[0], until=window[1], now=datetime.now(UTC)
        )
    if as_json:
        print_json(_report_dict(result))
        return
    span = f"{since or 'the start'} to {until or 'now'}"
    console.print(
        f"oversight report, {span}: {result.searches} search(es), {result.denials} denial(s), "
        f"{result.failed_sign_ins} failed sign-in(s)"
    )
    for title, counts in _sections(result):
        console.print(f"\n{title}")
        if not counts:
            console.print("  (none)")
        for name, count in counts.items():
            console.print(f"  {count:>6}  {shown(name)}")


def _sections(result: audit_service.OversightReport) -> list[tuple[str, dict[str, int]]]:
    return [
        ("searches by user", result.searches_by_user),
        ("searches by unit", result.searches_by_unit),
        ("searches by purpose", result.searches_by_purpose),
        ("searches by outcome", result.searches_by_outcome),
        ("denials by rule", result.denials_by_rule),
    ]


def _report_dict(result: audit_service.OversightReport) -> dict[str, Any]:
    return {
        "since": result.since.isoformat() if result.since else None,
        "until": result.until.isoformat() if result.until else None,
        "searches": result.searches,
        "searches_by_user": result.searches_by_user,
        "searches_by_unit": result.searches_by_unit,
        "searches_by_purpose": result.searches_by_purpose,
        "searches_by_outcome": result.searches_by_outcome,
        "denials": result.denials,
        "denials_by_rule": result.denials_by_rule,
        "failed_sign_ins": result.failed_sign_ins,
    }
