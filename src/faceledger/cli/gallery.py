"""``faceledger gallery ...`` and ``faceledger enroll``: the controlled galleries.

Every command acts as the person signed in with ``faceledger login``. Creating a gallery,
enrolling into one and purging are decided by the policy in force (``manage_galleries``,
``enrol``, ``purge``: a gallery administrator's actions), and a refusal is recorded in the
audit log like any other; listing and showing galleries needs a signed-in person of any role.
What is done is recorded by the services, in the same transaction as the change.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from faceledger.cli.accounts import opened, signed_in
from faceledger.cli.common import (
    DataDirOption,
    JsonlOption,
    JsonOption,
    ask_yes,
    console,
    fail,
    handle_errors,
    one_output_mode,
    parse_date,
    print_json,
    print_jsonl,
    progress_bar,
    shown,
)
from faceledger.domain.models import DEFAULT_REQUIRED, PROVENANCE_FIELDS, PurgeReason
from faceledger.domain.roles import Action

if TYPE_CHECKING:
    from faceledger.services import galleries as gallery_service
    from faceledger.services.datadir import DataDir
    from faceledger.services.enrolment import EnrolmentResult, EnrolOptions, Progress, ProgressCallback

app = typer.Typer(help="Create, list, show and purge galleries.", no_args_is_help=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _gallery_dict(info: gallery_service.GalleryInfo) -> dict[str, object]:
    g = info.gallery
    return {
        "name": g.name,
        "legal_basis": g.legal_basis,
        "source_description": g.source_description,
        "retention_days": g.retention_days,
        "required_provenance": list(g.required_provenance),
        "created_at": g.created_at,
        "owner_unit": g.owner_unit,
        "subjects": info.counts.subjects,
        "images": info.counts.images,
        "faces": info.counts.faces,
    }


@app.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="Gallery name: lowercase letters, digits, '-', '_', '.'.")],
    legal_basis: Annotated[str, typer.Option(help="The law or authority under which these images are held.")],
    source_description: Annotated[str, typer.Option(help="Where the images come from (system of record).")],
    retention_days: Annotated[
        int | None, typer.Option(help="Keep each image this many days after collection (default: no limit).")
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require",
            help="Provenance every image must have (repeat; default: source, collected_on). "
            f"Known: {', '.join(PROVENANCE_FIELDS)}.",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a gallery: the unit of lawful holding (gallery administrators; recorded)."""
    from faceledger.services import galleries as gallery_service

    with opened(data_dir) as dd:
        gallery_service.create_gallery_for(
            dd,
            signed_in(dd),
            name,
            legal_basis=legal_basis,
            source_description=source_description,
            retention_days=retention_days,
            required_provenance=tuple(require) if require else DEFAULT_REQUIRED,
            now=_now(),
        )
        info = gallery_service.gallery_info(dd, name)
    if as_json:
        print_json(_gallery_dict(info))
    else:
        console.print(f"gallery {name!r} created")


@app.command("list")
@handle_errors
def list_(data_dir: DataDirOption = None, as_json: JsonOption = False, as_jsonl: JsonlOption = False) -> None:
    """List the galleries with their counts (any signed-in person)."""
    from faceledger.services import galleries as gallery_service

    one_output_mode(as_json, as_jsonl)
    with opened(data_dir) as dd:
        signed_in(dd)
        infos = gallery_service.list_galleries(dd)
    rows = [_gallery_dict(info) for info in infos]
    if as_json:
        print_json(rows)
    elif as_jsonl:
        for row in rows:
            print_jsonl(row)
    elif not rows:
        console.print(
            "no galleries yet: faceledger gallery create NAME --legal-basis ... --source-description ..."
        )
    else:
        from rich.table import Table

        table = Table("gallery", "subjects", "images", "faces", "retention", "legal basis")
        for row in rows:
            retention = f"{row['retention_days']} days" if row["retention_days"] else "no limit"
            table.add_row(
                shown(row["name"]), str(row["subjects"]), str(row["images"]), str(row["faces"]),
                retention, shown(row["legal_basis"]),
            )  # fmt: skip
        console.print(table)


@app.command("show")
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="Gallery name.")],
    subjects: Annotated[bool, typer.Option("--subjects", help="Also list every subject.")] = False,
    turned_down: Annotated[
        bool,
        typer.Option("--turned-down", help="Also list the images enrolment turned down, with the reason."),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one gallery: legal basis, retention, provenance rules and counts (any signed-in person).

    ``--subjects`` lists the people in it too, and ``--turned-down`` the images enrolment
    turned down (each with its reason, until it is enrolled), for its gallery administrators
    and auditors only (as ``GET /api/v1/galleries/{name}/subjects``; a refusal is recorded).
    """
    from faceledger.services import galleries as gallery_service

    with opened(data_dir) as dd:
        principal = signed_in(dd)
        info = gallery_service.gallery_info(dd, name)
        people = gallery_service.subjects_for(dd, principal, name, now=_now()) if subjects else []
        refused = gallery_service.turned_down_for(dd, principal, name, now=_now()) if turned_down else []
    data = _gallery_dict(info)
    if subjects:
        data["subject_list"] = [
            {"subject_id": s.external_id, "images": s.images, "faces": s.faces} for s in people
        ]
    if turned_down:
        data["turned_down"] = [
            {
                "source": r.source,
                "subject_id": r.subject_id,
                "reason": r.reason,
                "detail": r.detail,
                "run_id": r.run_id,
                "when": r.when.isoformat(),
            }
            for r in refused
        ]
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if key not in ("subject_list", "turned_down"):
            text = ", ".join(value) if isinstance(value, list) else "-" if value is None else value
            console.print(f"{key:>20}: {shown(text)}")
    for s in people:
        console.print(f"  {shown(s.external_id)}: {s.images} image(s), {s.faces} face(s)")
    if turned_down:
        counts = Counter(r.reason for r in refused)
        summary = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "none"
        console.print(f"{'turned down':>20}: {len(refused)} image(s) not enrolled ({summary})")
        for r in refused:
            who = f" (subject {shown(r.subject_id)})" if r.subject_id else ""
            console.print(f"  {shown(r.source)}{who}: {shown(r.reason)}: {shown(r.detail)}")


@app.command("purge")
@handle_errors
def purge(
    name: Annotated[str, typer.Argument(help="Gallery name.")],
    reason: Annotated[
        str,
        typer.Option(
            help="Why: " + ", ".join(r.value for r in PurgeReason) + " (recorded).",
        ),
    ],
    authority: Annotated[
        str,
        typer.Option(help="The authority for it, e.g. 'Order 2026-123' (recorded)."),
    ],
    subject: Annotated[
        str | None, typer.Option(help="Purge only this subject (default: the whole gallery).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking (for scripts).")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove for good: image files, face records and vectors (gallery administrators; recorded).

    ``--reason`` and ``--authority`` are required and recorded with the purge (audit log and
    the ``purges`` table); the same images are not enrolled again without
    ``enroll --re-enrol-purged REASON``. Prints what was removed. The audit log names the
    faces removed, never the subject's id.
    """
    from faceledger.services import galleries as gallery_service

    why = gallery_service.purge_authority(reason, authority)  # a bad reason fails before the question
    what = f"subject {subject!r} of gallery {name!r}" if subject else f"the whole gallery {name!r}"
    if not yes and not ask_yes(f"Permanently remove {what}?", otherwise="pass --yes to purge without asking"):
        raise fail("nothing removed")
    with opened(data_dir) as dd:
        report = gallery_service.purge_for(
            dd, signed_in(dd), name, subject or None, reason=why.reason, authority=why.authority, now=_now()
        )
    counts = {
        "galleries": report.galleries,
        "subjects": report.subjects,
        "images": report.images,
        "faces": report.faces,
        "vectors": report.vectors,
        "files": report.files,
    }
    if as_json:
        print_json({"purged": what, "reason": why.reason.value, "authority": why.authority, **counts})
    else:
        console.print(f"removed {what}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@app.command("purge-expired")
@handle_errors
def purge_expired(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Apply the retention rules: remove every enrolled image past its retention date, and every probe
    photo no search needs any more (gallery administrators; recorded with reason ``retention``).
    Run it daily (cron, a timer)."""
    from datetime import UTC, datetime

    from faceledger.services import galleries as gallery_service
    from faceledger.services.probes import purge_expired_probes

    with opened(data_dir) as dd:
        report = gallery_service.purge_expired_for(dd, signed_in(dd), now=_now())
        probes = purge_expired_probes(dd, now=datetime.now(UTC))
    counts = {
        "subjects": report.subjects,
        "images": report.images,
        "faces": report.faces,
        "vectors": report.vectors,
        "files": report.files,
        "probe_photos": len(probes.purged),
        "probe_files": probes.files_removed,
    }
    if as_json:
        print_json(counts)
    else:
        console.print("past their retention, removed: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def _enrol(
    dd: DataDir, gallery: str, source: Path, options: EnrolOptions, progress: ProgressCallback
) -> EnrolmentResult:
    from faceledger.services import enrolment

    path = source.expanduser()
    if path.suffix.lower() == ".csv":
        return enrolment.enrol_manifest(dd, gallery, path, options, progress=progress)
    return enrolment.enrol_folder(dd, gallery, path, options, progress=progress)


@handle_errors
def enroll(
    gallery: Annotated[str, typer.Argument(help="Gallery to enrol into.")],
    source: Annotated[
        Path,
        typer.Argument(
            help="A folder with one sub-folder per subject (named by subject id), or a CSV manifest "
            "(columns: subject_id, path, source, record_id, collected_on, enrolled_by, retention_until)."
        ),
    ],
    collected_on: Annotated[
        str | None, typer.Option(help="Date the images were collected (YYYY-MM-DD), where rows don't say.")
    ] = None,
    quality_floor: Annotated[
        float | None, typer.Option(help="Skip faces whose quality score (0-100) is below this.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: one per CPU core; 1: no workers).")
    ] = None,
    re_enrol_purged: Annotated[
        str | None,
        typer.Option(
            "--re-enrol-purged",
            metavar="REASON",
            help="Enrol again images a purge removed from this gallery, saying why (recorded); "
            "without it they are skipped as 'purged'.",
        ),
    ] = None,
    enrolled_by: Annotated[str | None, typer.Option(hidden=True)] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enrol a folder or CSV manifest as the signed-in gallery administrator (recorded as enrolled_by).

    Resumable: rerun after an interruption to continue. Images a purge removed from the
    gallery are skipped unless ``--re-enrol-purged REASON`` says why they may come back.
    """
    from faceledger.services import galleries as gallery_service
    from faceledger.services.enrolment import EnrolOptions

    if enrolled_by is not None:
        raise fail(
            "--enrolled-by is no longer taken: an enrolment is recorded as the person signed in "
            "(faceledger login); drop the option",
            code=2,
        )
    day = parse_date(collected_on, "--collected-on")
    with opened(data_dir) as dd:
        options = EnrolOptions(
            enrolled_by=gallery_service.may_change(dd, signed_in(dd), Action.ENROL, gallery, now=_now()),
            collected_on=day,
            quality_floor=quality_floor,
            workers=workers,
            re_enrol_purged=re_enrol_purged,
        )
        with progress_bar(f"enrolling into {gallery}", not as_json) as update:

            def report(p: Progress) -> None:
                update(p.done, p.total, p.current)

            result = _enrol(dd, gallery, source, options, report)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"enrolled {len(result.enrolled)} of {result.total} image(s) into {gallery!r} "
        f"in {result.seconds:.1f} s"
    )
    chosen = result.chosen_by_rule()
    if chosen:
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(chosen.items()))
        console.print(
            f"  of photos with several faces, the subject's face was chosen in {sum(chosen.values())} "
            f"({rules}; the rule: docs/data-directory.md)"
        )
    for reason, count in sorted(result.skipped_by_reason().items()):
        console.print(f"  skipped ({reason}): {count}")
    if result.skipped:
        console.print(
            f"  'faceledger gallery show {shown(gallery)} --turned-down' lists them until they are enrolled",
            style="dim",
        )
    for skipped in result.skipped[:20]:
        console.print(f"    {shown(skipped.source)}: {shown(skipped.detail)}", style="dim")
    if len(result.skipped) > 20:
        console.print(f"    ... and {len(result.skipped) - 20} more (use --json for all)", style="dim")
