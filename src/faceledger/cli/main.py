"""The ``faceledger`` command: thin commands over the library (:mod:`faceledger.library`).

The command modules import at module level only typer, rich, the configuration and the
light domain modules; the services, the data directory (SQLAlchemy), the pipeline and the
face models, crypto and the web service are imported inside the commands that use them
(their types under ``TYPE_CHECKING``), so ``--help`` and every command's help load none of
them. ``tests/cli/test_cli_startup.py`` checks it; ``bench/cli_startup.py`` measures it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceledger import __version__
from faceledger.cli import accounts as accounts_cli
from faceledger.cli import audit, evaluate, gallery, identify
from faceledger.cli import cases as cases_cli
from faceledger.cli import serve as serve_cli
from faceledger.cli import witness as witness_cli
from faceledger.cli.common import DataDirOption, JsonOption, console, handle_errors, print_json
from faceledger.config import load_settings

app = typer.Typer(
    name="faceledger",
    help=(
        "Accountable face identification over controlled, lawfully held galleries.\n\n"
        "A candidate list is an investigative lead for trained examiners, never an identification."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(gallery.app, name="gallery")
app.add_typer(evaluate.app, name="eval")
app.add_typer(audit.app, name="audit")
app.add_typer(witness_cli.app, name="witness")
app.command("enroll")(gallery.enroll)
app.command("search")(identify.search)
app.command("verify")(identify.verify)
app.command("faces")(identify.faces)
accounts_cli.register(app)
cases_cli.register(app)
serve_cli.register(app)


def _version(value: bool) -> None:
    if value:
        console.print(f"faceledger {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Accountable face identification over controlled, lawfully held galleries."""


@app.command("init")
@handle_errors
def init(
    data_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Folder to initialise (default: $FACELEDGER_DATA_DIR or ~/.local/share/faceledger)."
        ),
    ] = None,
    data_dir_option: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a data directory (SQLite database, image store, vector indexes, config.toml)."""
    from faceledger.services import accounts
    from faceledger.services.datadir import init_data_dir

    settings = load_settings(data_dir or data_dir_option)
    with init_data_dir(settings.data_dir, settings=settings) as dd:
        path = dd.path
        secret = accounts.bootstrap_admin(dd) if accounts.needs_bootstrap(dd) else None
    if as_json:
        print_json({"data_dir": str(path), "config": str(path / "config.toml"), "bootstrap_secret": secret})
        return
    console.print(f"data directory ready: {path}")
    console.print(f"settings: {path / 'config.toml'}")
    if secret is not None:
        console.print(
            "no account exists yet. One-time bootstrap secret for the first system administrator "
            "(shown once, expires soon):"
        )
        console.print(f"    {secret}")
        console.print(
            "next: faceledger user claim USERNAME --organisation ORG --unit UNIT  (asks for the secret)"
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
