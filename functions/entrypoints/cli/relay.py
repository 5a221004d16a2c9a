"""`billing-ops relay sweep`: publish entitlement changes stuck in the outbox."""

from __future__ import annotations

import sys
import time

import click

from functions import composition
from functions.config import subscriber_settings
from functions.entrypoints.cli.output import (
    age,
    dry_run_option,
    emit_json,
    json_option,
    ops_errors,
    parse_duration,
    table,
)


@click.group()
def relay() -> None:
    """The entitlement-changed outbox relay."""


@relay.command("sweep")
@click.option(
    "--older-than",
    default=None,
    help="Only entries unsent for longer than this (default OUTBOX_SWEEP_AFTER_SECONDS).",
)
@click.option("--limit", default=500, show_default=True, help="At most this many entries.")
@dry_run_option
@json_option
@ops_errors
def sweep(older_than: str | None, limit: int, dry_run: bool, as_json: bool) -> None:
    """Publish every stuck outbox entry, per customer in version order."""
    threshold = (
        parse_duration(older_than)
        if older_than
        else subscriber_settings().outbox_sweep_after_seconds
    )
    stale = composition.repository().stale_outbox(time.time() - threshold, limit=limit)
    customers = sorted({e.customer_id for e in stale})
    rows = [
        {
            "customer": e.customer_id,
            "version": e.version,
            "causing_event": e.causing_event_id,
            "age": age(e.created_at),
        }
        for e in stale
    ]
    if dry_run:
        if as_json:
            emit_json({"dry_run": True, "stale": rows, "customers": customers})
        else:
            table(rows, ["customer", "version", "causing_event", "age"], empty="outbox is clean")
            click.echo(f"{len(rows)} stuck entr(y/ies), {len(customers)} customer(s) (dry run)")
        return
    published = 0
    failed: dict[str, str] = {}
    with click.progressbar(customers, label="relaying", file=sys.stderr) as bar:
        for customer in bar:
            try:
                published += composition.relay().relay_customer(customer)
            except Exception as exc:  # keep going: one customer must not block the rest
                failed[customer] = f"{type(exc).__name__}: {exc}"
    if as_json:
        emit_json({"customers": len(customers), "published": published, "failed": failed})
    else:
        click.echo(f"published {published} message(s) for {len(customers)} customer(s)")
        for customer, error in failed.items():
            click.echo(f"FAILED {customer}: {error}", err=True)
    if failed:
        sys.exit(1)
