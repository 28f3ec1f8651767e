"""Where enrolment items come from: a folder of subject folders, or a CSV manifest.

Reading never touches an image: a row that cannot be used becomes a :class:`Skipped`
(``bad_row``) naming the file and line, and only a manifest that cannot be read at all
(no such file, not UTF-8, wrong header) raises.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from faceledger.errors import ValidationError
from faceledger.services.enrolment.records import EnrolItem, Skipped, SkipReason
from faceledger.services.galleries import validate_subject_id

MANIFEST_COLUMNS: dict[str, str] = {
    "subject_id": "required: the subject's id, unique within the gallery",
    "path": "required: image file; a relative path is relative to the CSV file's folder",
    "source": "where the image came from (default: the image file's path)",
    "record_id": "id of the image in its system of record",
    "collected_on": "date the image was collected, YYYY-MM-DD",
    "enrolled_by": "person responsible for this row (default: the enrolment's operator)",
    "retention_until": "keep until this date, YYYY-MM-DD (default: the gallery's retention rule)",
}
_REQUIRED_COLUMNS = ("subject_id", "path")
_IGNORED_FILES = {"thumbs.db", "desktop.ini"}


def _parse_date(value: str, column: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationError(f"{column} {value!r} is not a date in the form YYYY-MM-DD") from exc


def read_folder(folder: Path | str) -> tuple[list[EnrolItem], list[Skipped]]:
    """Items from ``<folder>/<subject id>/<image files>``; stray files are reported, not enrolled."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValidationError(f"{root} is not a folder of subject folders")
    items: list[EnrolItem] = []
    problems: list[Skipped] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name.lower() in _IGNORED_FILES:
            continue
        if not entry.is_dir():
            problems.append(Skipped(str(entry), SkipReason.BAD_ROW, "not inside a subject folder"))
            continue
        files = [p for p in sorted(entry.rglob("*")) if p.is_file() and not _hidden(p, entry)]
        try:
            subject = validate_subject_id(entry.name)
        except ValidationError as exc:
            problems += [Skipped(str(p), SkipReason.BAD_ROW, str(exc)) for p in files]
            continue
        items += [EnrolItem(subject_id=subject, path=p, origin=str(p)) for p in files]
    return items, problems


def _hidden(path: Path, base: Path) -> bool:
    parts = path.relative_to(base).parts
    return any(part.startswith(".") for part in parts) or path.name.lower() in _IGNORED_FILES


def read_manifest(csv_path: Path | str) -> tuple[list[EnrolItem], list[Skipped]]:
    """Items from a CSV manifest (columns: :data:`MANIFEST_COLUMNS`); bad rows are reported."""
    path = Path(csv_path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ValidationError(f"manifest {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise ValidationError(f"manifest {path} is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ValidationError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    reader = csv.DictReader(text.splitlines())
    _check_header(path, reader.fieldnames)
    items: list[EnrolItem] = []
    problems: list[Skipped] = []
    try:
        for row in reader:
            origin = f"{path}:{reader.line_num}"
            try:
                items.append(_manifest_item(row, path.parent, origin))
            except ValidationError as exc:
                problems.append(
                    Skipped(origin, SkipReason.BAD_ROW, str(exc), subject_id=row.get("subject_id"))
                )
    except csv.Error as exc:
        raise ValidationError(f"manifest {path} line {reader.line_num}: {exc}") from exc
    return items, problems


def _check_header(path: Path, fieldnames: Sequence[str] | None) -> None:
    columns = [c.strip() for c in (fieldnames or [])]
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in MANIFEST_COLUMNS]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        raise ValidationError(
            f"manifest {path}: {'; '.join(problems)}. Columns: {', '.join(MANIFEST_COLUMNS)}"
        )


def _manifest_item(row: dict[str | Any, Any], base: Path, origin: str) -> EnrolItem:
    if None in row:
        raise ValidationError("more fields than the header has columns")
    values = {str(k).strip(): (v or "").strip() for k, v in row.items()}
    if not values.get("path"):
        raise ValidationError("the path is empty")
    path = Path(values["path"]).expanduser()
    return EnrolItem(
        subject_id=validate_subject_id(values.get("subject_id", "")),
        path=path if path.is_absolute() else base / path,
        source=values.get("source") or None,
        record_id=values.get("record_id") or None,
        collected_on=_parse_date(values.get("collected_on", ""), "collected_on"),
        enrolled_by=values.get("enrolled_by") or None,
        retention_until=_parse_date(values.get("retention_until", ""), "retention_until"),
        origin=origin,
    )
