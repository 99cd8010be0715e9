"""``zhifa-edge document``, ``documents`` and ``serve-document``: enforcement documents made on
the terminal, offline, registered with the server at the next sync (added to ``zhifa-edge``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from edge_agent.cli import _agent, _echo_json, main
from edge_agent.documents import REGISTRATION_LABELS, facts_from_json, kind_help
from mobile_api.contracts.documents import DOCUMENT_KINDS
from mobile_api.contracts.events import EVENT_LABELS, event_kind


@main.command()
@click.argument("kind", type=click.Choice(DOCUMENT_KINDS))
@click.option("--case", "case_id", required=True)
@click.option(
    "--facts",
    "facts_json",
    default=None,
    help="JSON object of facts the case does not hold (grounds, remedies, penalties …).",
)
@click.option(
    "--facts-file", type=click.Path(dir_okay=False, path_type=Path), help="The same, from a file."
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Copy the PDF here.")
@click.pass_context
def document(
    ctx: click.Context,
    kind: str,
    case_id: str,
    facts_json: str | None,
    facts_file: Path | None,
    out: Path | None,
) -> None:
    """Generate a document of the case offline (kinds: see KIND); prints its on-screen text."""
    extra = {}
    if facts_file is not None:
        extra.update(facts_from_json(facts_file.read_text(encoding="utf-8")))
    if facts_json:
        extra.update(facts_from_json(facts_json))
    with _agent(ctx) as agent:
        made = agent.papers.generate(kind, case_id, extra)
    if out is not None:
        shutil.copyfile(made.document.pdf_path, out)
    click.echo(made.text)
    for warning in made.warnings:
        click.echo(f"注意：{warning}", err=True)
    click.echo(f"文书编号：{made.document.number}  文书标识：{made.document.id}")
    click.echo(
        f"PDF：{out or made.document.pdf_path}（{REGISTRATION_LABELS['pending']}，同步时登记）"
    )


document.help = f"{document.help}\n\nKIND: {kind_help()}"


@main.command()
@click.option("--case", "case_id", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def documents(ctx: click.Context, case_id: str | None, as_json: bool) -> None:
    """The documents on this terminal with their registration and service."""
    with _agent(ctx) as agent:
        rows = agent.papers.documents(case_id)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        state = REGISTRATION_LABELS[row.registration]
        served = "已送达" if row.served_event else "未送达"
        line = f"{row.number} {row.title} [{state}，{served}] {row.id}"
        if row.message:
            line += f"：{row.message}"
        elif row.verify_url:
            line += f" {row.verify_url}"
        click.echo(line)


@main.command("serve-document")
@click.argument("ref")
@click.option("--signature", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--refused", is_flag=True, help="The party refused to sign (留置送达).")
@click.option("--witness", "witnesses", multiple=True, help="见证人 (with --refused).")
@click.option("--recording", "recording_id", default="", help="Recording of the service.")
@click.option("--to", "served_to", default="", help="受送达人 (default: the party).")
@click.pass_context
def serve_document(
    ctx: click.Context,
    ref: str,
    signature: Path | None,
    refused: bool,
    witnesses: tuple[str, ...],
    recording_id: str,
    served_to: str,
) -> None:
    """Record the service (送达) of a document (id or number) in its case."""
    with _agent(ctx) as agent:
        event = agent.papers.serve(
            ref,
            signature=signature.read_bytes() if signature else None,
            refused=refused,
            witnesses=list(witnesses),
            recording_id=recording_id,
            served_to=served_to,
        )
    click.echo(f"已记录{EVENT_LABELS[event_kind(event)]}：{event.id}")
