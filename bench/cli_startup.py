"""How long ``faceledger`` takes to answer: help texts, quick commands, and one that loads the models.

Each command line runs as a fresh process (``python -m faceledger.cli.main ...`` on the source
tree given, this one by default), ``--runs`` times, the command lines interleaved round by
round so that a busy moment on the shared cores falls on all of them alike. It prints the
median wall time of each, and its ratio to two baselines measured in the same run: a bare
interpreter (``python -c pass``) and one that imports typer (the least any typer CLI costs).

    python bench/cli_startup.py                         # 11 runs each
    python bench/cli_startup.py --runs 21 --tree ../main/src --tree src   # before and after

``--tree`` (repeatable) names the ``src`` folder to run, so two versions are compared in one
run. The quick commands: ``--help``, ``--version``, the help of a group and of a command,
and ``audit public-key`` (opens a data directory, made once in a temporary folder, so it loads
the database layer). ``faces PHOTO`` loads the face models (``--photo``; skipped, saying so,
when the photo is missing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = ROOT.parent / "shared" / "faces" / "lfw" / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg"

BASELINES: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("python -c 'import typer'", ["-c", "import typer"]),
]
QUICK = [["--help"], ["--version"], ["user", "--help"], ["review", "show", "--help"]]


def _wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def _env(tree: Path, data_dir: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "FACELEDGER_DATA_DIR": str(data_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="Runs of each command line (median).")
    parser.add_argument(
        "--tree", type=Path, action="append", help="A faceledger src folder to run (default: this one)."
    )
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="The photo `faces` analyses.")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    trees = [t.resolve() for t in (args.tree or [ROOT / "src"])]
    for tree in trees:
        if not (tree / "faceledger" / "cli" / "main.py").is_file():
            parser.error(f"--tree {tree}: no faceledger/cli/main.py there")

    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        data_dir = Path(tmp) / "data"
        cli = [sys.executable, "-m", "faceledger.cli.main"]
        subprocess.run(
            [*cli, "init", str(data_dir)], env=_env(trees[0], data_dir), check=True, capture_output=True
        )
        commands: list[tuple[str, list[str], Path]] = [
            (label, [sys.executable, *rest], trees[0]) for label, rest in BASELINES
        ]
        for tree in trees:
            mark = f" [{tree}]" if len(trees) > 1 else ""
            lines = [*QUICK, ["audit", "public-key"]]
            if args.photo.is_file():
                lines.append(["faces", str(args.photo)])
            for line in lines:
                shown = " ".join(Path(a).name if a == str(args.photo) else a for a in line)
                commands.append((f"faceledger {shown}{mark}", [*cli, *line], tree))
        if not args.photo.is_file():
            print(f"note: {args.photo} is missing, so `faces` (the face models) is not measured")

        times: dict[str, list[float]] = {label: [] for label, _, _ in commands}
        for _ in range(args.runs):
            for label, command, tree in commands:
                times[label].append(_wall(command, _env(tree, data_dir)))

    medians = {label: statistics.median(values) for label, values in times.items()}
    bare, typer_only = medians[BASELINES[0][0]], medians[BASELINES[1][0]]
    width = max(len(label) for label in medians)
    print(
        f"median wall time of {args.runs} runs each (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"
    )
    print(f"{'command':<{width}}  {'median':>8}  {'x bare':>7}  {'x typer':>7}")
    for label, median in medians.items():
        print(f"{label:<{width}}  {median:7.3f}s  {median / bare:7.1f}  {median / typer_only:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
