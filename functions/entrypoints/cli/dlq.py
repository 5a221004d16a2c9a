"""`billing-ops dlq ...`: what failed, why, for whom; replay after the fix; purge."""

from __future__ import annotations

import sys
from typing import Any

import click

from functions import composition
from functions.entrypoints.cli.output import (
    actor_option,
    age,
    dry_run_option,
    emit_json,
    fields,
    iso,
    json_option,
    ops_errors,
    parse_when,
    table,
    yes_option,
)
from functions.ports import DeadLetter
from functions.services.dead_letters import Selector
from functions.stripe_events import FAILURE_KEY


@click.group()
def dlq() -> None:
    """Dead-lettered Stripe events (subscription stripe-events-dead-letter-ops)."""


def _row(msg: DeadLetter) -> dict[str, Any]:
    return {
        "event_id": msg.event_id,
        "type": msg.event_type,
        "customer": msg.customer_id,
        "attempts": msg.delivery_attempts,
        "reason_code": msg.reason_code,
        "reason": msg.reason,
        "dead_lettered_at": iso(msg.dead_lettered_at),
        "age": age(msg.dead_lettered_at),
        "message_id": msg.message_id,
    }


def _selector(
    event_ids: tuple[str, ...],
    event_type: str | None,
    customer: str | None,
    since: str | None,
    select_all: bool,
) -> Selector:
    return Selector(
        event_ids=frozenset(event_ids),
        event_type=event_type,
        customer_id=customer,
        since=parse_when(since) if since else None,
        all=select_all,
    )


def _filters(fn: Any) -> Any:
    fn = click.option("--since", help="Dead-lettered since: 6h, 2d or an ISO time.")(fn)
    fn = click.option("--customer", help="Only this Stripe customer id (cus_...).")(fn)
    return click.option("--type", "event_type", help="Only this event type.")(fn)


@dlq.command("list")
@_filters
@click.option("--limit", default=1000, show_default=True, help="Read at most this many.")
@json_option
@ops_errors
def list_(
    *, event_type: str | None, customer: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """List dead letters (read-only: every message is handed back to the queue)."""
    messages = composition.dead_letters().peek(limit)
    selector = _selector((), event_type, customer, since, True)
    rows = [_row(m) for m in messages if selector.matches(m)]
    if as_json:
        emit_json(rows)
        return
    columns = ["event_id", "type", "customer", "attempts", "reason_code", "reason", "age"]
    table(rows, columns, empty="dead-letter queue is empty")
    if rows:
        click.echo(f"{len(rows)} dead letter(s)")


@dlq.command("show")
@click.argument("event_id")
@json_option
@ops_errors
def show(event_id: str, as_json: bool) -> None:
    """One dead letter by event id (or message id): envelope, attributes, last error."""
    matches = [
        m for m in composition.dead_letters().peek() if event_id in (m.event_id, m.message_id)
    ]
    # Undecodable messages are recorded under their failure key, not an event id.
    keys = [m.attributes[FAILURE_KEY] for m in matches if m.attributes.get(FAILURE_KEY)]
    failure = composition.dead_letters().last_failure([*keys, event_id])
    if not matches and failure is None:
        raise click.ClickException(f"{event_id}: not in the dead-letter queue, no failure record")
    detail = {
        "event_id": event_id,
        "in_queue": len(matches),
        "messages": [
            {
                **_row(m),
                "attributes": dict(m.attributes),
                "envelope": m.envelope_summary(),
            }
            for m in matches
        ],
        "last_error": failure.model_dump(mode="json") if failure else None,
    }
    if as_json:
        emit_json(detail)
        return
    for m in matches:
        row = _row(m)
        fields([(k, row[k]) for k in row])
        click.echo("envelope:")
        fields([(f"  {k}", v) for k, v in m.envelope_summary().items()])
        click.echo("attributes:")
        fields([(f"  {k}", v) for k, v in sorted(m.attributes.items())])
    if not matches:
        click.echo("not in the dead-letter queue (replayed or purged already?)")
    if failure:
        click.echo("last error (failures/):")
        fields(
            [
                ("  reason_code", failure.reason_code),
                ("  reason", failure.reason),
                ("  attempts", failure.attempts),
                ("  first_failed", iso(failure.first_failed_at)),
                ("  last_failed", iso(failure.last_failed_at)),
                ("  dead_lettered", failure.dead_lettered),
            ]
        )


@dlq.command("replay")
@click.argument("event_ids", nargs=-1)
@_filters
@click.option("--all", "select_all", is_flag=True, help="Replay every dead letter.")
@click.option("--reason", default="", help="Why (for the audit record).")
@actor_option
@dry_run_option
@yes_option
@json_option
@ops_errors
def replay(
    *,
    event_ids: tuple[str, ...],
    event_type: str | None,
    customer: str | None,
    since: str | None,
    select_all: bool,
    reason: str,
    actor: str,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Republish dead letters to stripe-events after the cause is fixed.

    The original bytes are republished with replay attributes; each dead letter is
    acknowledged only once its republish is confirmed. Replaying an event that was
    already applied has no effect (the subscriber dedupes on the event id).
    """
    selector = _selector(event_ids, event_type, customer, since, select_all)
    if selector.empty:
        raise click.UsageError(
            "say what to replay: EVENT_ID..., --type, --customer, --since or --all"
        )
    service = composition.dead_letters()
    preview = {m.event_id for m in service.peek() if selector.matches(m)}
    if not preview:
        _report({"matched": [], "republished": {}, "failed": {}, "dry_run": dry_run}, as_json)
        return
    if select_all and not (yes or dry_run):
        click.confirm(f"Replay all {len(preview)} dead-lettered event(s)?", abort=True, err=True)
    if dry_run:
        report = service.replay(selector, actor=actor, reason=reason, dry_run=True)
    else:
        with click.progressbar(length=len(preview), label="replaying", file=sys.stderr) as bar:
            report = service.replay(selector, actor=actor, reason=reason, progress=bar.update)
    _report(
        {
            "matched": report.matched,
            "republished": report.republished,
            "failed": report.failed,
            "dry_run": report.dry_run,
        },
        as_json,
    )
    if report.failed:
        sys.exit(1)


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    if result["dry_run"]:
        for event_id in result["matched"]:
            click.echo(f"would replay {event_id}")
        click.echo(f"{len(result['matched'])} event(s) would be replayed (dry run)")
        return
    for event_id, message_id in result["republished"].items():
        click.echo(f"replayed {event_id} -> message {message_id}")
    for event_id, error in result["failed"].items():
        click.echo(f"FAILED {event_id}: {error} (left in the queue)", err=True)
    click.echo(f"{len(result['republished'])} replayed, {len(result['failed'])} failed")


@dlq.command("purge")
@click.argument("event_ids", nargs=-1)
@_filters
@click.option("--all", "select_all", is_flag=True, help="Purge every dead letter.")
@click.option("--reason", required=True, help="Why these events will never be replayed.")
@actor_option
@dry_run_option
@yes_option
@json_option
@ops_errors
def purge(
    *,
    event_ids: tuple[str, ...],
    event_type: str | None,
    customer: str | None,
    since: str | None,
    select_all: bool,
    reason: str,
    actor: str,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete dead letters for good (asks first; audited with the event ids)."""
    selector = _selector(event_ids, event_type, customer, since, select_all)
    if selector.empty:
        raise click.UsageError(
            "say what to purge: EVENT_ID..., --type, --customer, --since or --all"
        )
    service = composition.dead_letters()
    preview = sorted({m.event_id for m in service.peek() if selector.matches(m)})
    if preview and not (yes or dry_run):
        click.echo("\n".join(preview), err=True)
        click.confirm(
            f"Permanently delete {len(preview)} dead-lettered event(s)?", abort=True, err=True
        )
    report = service.purge(selector, actor=actor, reason=reason, dry_run=dry_run)
    result = {"purged": report.purged, "messages": report.messages, "dry_run": report.dry_run}
    if as_json:
        emit_json(result)
        return
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} {len(report.purged)} event(s) ({report.messages} message(s))")
