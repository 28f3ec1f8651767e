"""What every command shares: the data directory option, output modes, and error handling.

A person at a terminal gets readable text; a script gets ``--json`` (one document) or
``--jsonl`` (one line per record). Errors are one line on stderr with the reason, and a
non-zero exit status; never a stack trace (set FACELEDGER_DEBUG=1 to see one).

Whatever the terminal shows of a stored value (a username, a subject id, a case number,
an audit entry) goes through :func:`shown`: control and format characters are written as
escapes, so a value cannot move the cursor, recolour the screen or start a forged line.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape as escape_markup

from faceledger.domain.text import escape_control
from faceledger.errors import FaceLedgerError

P = ParamSpec("P")
R = TypeVar("R")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        "-d",
        help="Data directory (default: $FACELEDGER_DATA_DIR or ~/.local/share/faceledger).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
JsonlOption = Annotated[bool, typer.Option("--jsonl", help="Print one JSON object per line for scripts.")]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def shown(value: object, *, markup: bool = True) -> str:
    """``value`` as text safe to print: control and format characters (Cc, Cf) as escapes.

    ``\x1b[31m`` prints as those characters, a newline as ``\n``, a zero-width space as
    ``\u200b``; ordinary spaces stay. With ``markup`` (the default, for ``console.print``
    with rich markup on) square brackets are escaped too, so a stored ``[red]`` is shown,
    not obeyed; pass ``markup=False`` for text printed with ``markup=False``.
    """
    text = escape_control(str(value))
    return escape_markup(text) if markup else text


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {shown(message)}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the project's errors (and anything unexpected) into one clear line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except FaceLedgerError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt as exc:
            message = str(exc) or "interrupted"
            raise fail(message, EXIT_INTERRUPTED) from None
        except Exception as exc:
            from faceledger.services import database_errors  # loaded when something went wrong only

            clear = database_errors.clear_error(exc)
            if clear is not None:  # a conflict with another process, not a bug
                raise fail(str(clear)) from None
            if os.environ.get("FACELEDGER_DEBUG"):
                raise
            raise fail(
                f"unexpected {type(exc).__name__}: {exc} (this is a bug; rerun with FACELEDGER_DEBUG=1 "
                "for the details and report it)"
            ) from None

    return wrapper


def ask(text: str, *, hide_input: bool = False, confirm: bool = False, default: str | None = None) -> str:
    """Ask the person at the terminal, on stderr: stdout carries only what a command prints.

    Nothing of the question reaches stdout, not even the character a prompt ends with, so a
    command's ``--json`` document stays exactly parseable. ``confirm`` asks twice (a new
    password); ``default`` is what an empty answer means. Standard input ending before an
    answer is one clear error.
    """
    try:
        with contextlib.redirect_stdout(sys.stderr):
            answer = typer.prompt(
                text,
                hide_input=hide_input,
                confirmation_prompt=confirm,
                default=default,
                show_default=False,
                err=True,
            )
    except typer.Abort as exc:
        raise _unanswered(text, exc, "") from None
    return str(answer)


def ask_yes(text: str, *, otherwise: str) -> bool:
    """A yes/no question on stderr (no is the default); ``otherwise`` says how to skip the question."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return bool(typer.confirm(text, default=False, err=True))
    except typer.Abort as exc:
        raise _unanswered(text, exc, f" ({otherwise})") from None


def _unanswered(text: str, abort: typer.Abort, then: str) -> typer.Exit:
    """The error for an unanswered question: Ctrl-C (kept as the Abort's context) or the end of input."""
    if isinstance(abort.__context__, KeyboardInterrupt):
        return fail("interrupted", EXIT_INTERRUPTED)
    return fail(f"no answer to {text!r}: standard input ended{then}")


def _default(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(value, default=_default, indent=indent, ensure_ascii=False)


def print_json(value: Any) -> None:
    sys.stdout.write(dumps(value, indent=2) + "\n")


def print_jsonl(value: Any) -> None:
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()


def one_output_mode(as_json: bool, as_jsonl: bool) -> None:
    if as_json and as_jsonl:
        raise fail("choose one of --json and --jsonl", code=2)


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{option}: {value!r} is not a date (use YYYY-MM-DD)", code=2) from None


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int, int, str], None]]:
    """A rich progress bar on stderr; a no-op for scripts (``enabled=False``)."""
    if not enabled:
        yield lambda done, total, current: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[current]}", style="dim"),
        console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None, current="")

        def update(done: int, total: int, current: str) -> None:
            bar.update(task, completed=done, total=total, current=current[-50:])

        yield update
