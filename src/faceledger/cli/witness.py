"""``faceledger witness``: run a witness of another installation's audit log (no account, no data directory).

A witness is meant for another machine or the oversight body: it holds its own key and
countersigns the log's checkpoints only while the log only grows (see
:mod:`faceledger.services.witness`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from faceledger.cli.common import JsonOption, console, handle_errors, print_json
from faceledger.errors import ValidationError

app = typer.Typer(
    help="Countersign another installation's audit checkpoints while its log only grows.",
    no_args_is_help=True,
)

Folder = Annotated[Path, typer.Argument(help="The witness's folder (its key and what it has countersigned).")]


@app.command("init")
@handle_errors
def init(
    folder: Folder,
    log_key: Annotated[
        Path, typer.Option("--log-key", help="The log's public key (PEM), from a trusted copy.")
    ],
) -> None:
    """Make a witness: its own Ed25519 key, pinned to the log whose public key is given."""
    from faceledger.services import witness as witness_service

    public = witness_service.init_witness(folder, log_key)
    console.print(f"witness made in {folder}: key {public.fingerprint}")
    console.print(
        f"give {folder / witness_service.PUBLIC} to the auditors: they verify countersignatures with it"
    )


@app.command("countersign")
@handle_errors
def countersign(
    folder: Folder,
    document: Annotated[
        Path,
        typer.Argument(
            help="A consistency proof from the last checkpoint countersigned (`audit prove-extension`), "
            "or, the first time, one checkpoint (JSON)."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Countersign the log's newest checkpoint if it extends the last one this witness countersigned."""
    from faceledger.services import witness as witness_service

    try:
        parsed = json.loads(document.expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"cannot read {document} as JSON: {exc}") from None
    done = witness_service.countersign(folder, parsed)
    if as_json:
        print_json(done.line)
        return
    console.print(
        f"countersigned the log at {done.tree_size} entries (root {done.root_hash[:16]}...); "
        f"appended to {folder / witness_service.COUNTERSIGNED}"
    )
