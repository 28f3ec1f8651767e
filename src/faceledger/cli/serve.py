"""``faceledger serve``: the HTTP service (FastAPI under uvicorn) on one data directory.

The data directory is created if it does not exist yet. While no account exists, a
one-time bootstrap secret is printed at start (a new one each start, voiding the last):
whoever holds it creates the first system administrator with ``POST /api/v1/auth/bootstrap``
or ``faceledger user claim``. There is no default password. Wire into the main app with
:func:`register`.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from faceledger.cli.common import DataDirOption, console, err_console, handle_errors
from faceledger.config import load_settings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the main ``faceledger`` app."""
    app.command("serve")(serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@handle_errors
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: all).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    data_dir: DataDirOption = None,
    log_level: Annotated[str, typer.Option(help=f"uvicorn's log level: {', '.join(LOG_LEVELS)}.")] = "info",
) -> None:
    """Start the HTTP service (REST API, OpenAPI at /docs); creates the data directory if needed."""
    import uvicorn

    from faceledger.services import accounts
    from faceledger.services.datadir import init_data_dir
    from faceledger.web import create_app

    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(f"choose one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    settings = load_settings(data_dir)
    with init_data_dir(settings.data_dir, settings=settings) as dd:
        console.print(f"data directory: {dd.path}")
        if accounts.needs_bootstrap(dd):
            _print_bootstrap(accounts.bootstrap_admin(dd), host, port)
        if not _is_loopback(host):
            err_console.print(
                f"note: listening on {host}: put the service behind a TLS-terminating reverse proxy "
                "(docs/running.md); tokens and photos must not cross a network in clear text"
            )
        uvicorn.run(create_app(dd), host=host, port=port, log_level=log_level, server_header=False)


def _print_bootstrap(secret: str, host: str, port: int) -> None:
    base = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"  # noqa: S104 - a display name
    console.print(
        "no account exists yet. One-time bootstrap secret for the first system administrator "
        "(shown once; it expires, and a restart prints a new one):"
    )
    console.print(f"    {secret}", markup=False)
    console.print(
        f"create that administrator with: POST {base}/api/v1/auth/bootstrap "
        '{"secret": ..., "username": ..., "password": ..., "organisation": ..., "unit": ...}',
        markup=False,
    )
    console.print("or: faceledger user claim USERNAME --organisation ORG --unit UNIT", markup=False)
