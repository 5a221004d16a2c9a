"""`billing-ops reconcile ...`: make Firestore agree with Stripe; replay missed webhooks."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from functions import composition
from functions.entrypoints.cli.output import (
    actor_option,
    dry_run_option,
    emit_json,
    iso,
    json_option,
    ops_errors,
    parse_when,
    table,
    yes_option,
)
from functions.services.accounts import AccountNotFound
from functions.services.reconcile import CATCH_UP_WINDOW_SECONDS, ReconcileOutcome


@click.group()
def reconcile() -> None:
    """Compare with Stripe's API and correct through the state machine."""


@reconcile.command("run")
@click.argument("customers", nargs=-1, metavar="[CUSTOMER_OR_ACCOUNT]...")
@click.option("--all", "every", is_flag=True, help="Every customer in Firestore.")
@click.option("--anomalies", is_flag=True, help="Every customer with recorded anomalies.")
@actor_option
@dry_run_option
@yes_option
@json_option
@ops_errors
def run(
    *,
    customers: tuple[str, ...],
    every: bool,
    anomalies: bool,
    actor: str,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Diff each customer's Stripe subscription against Firestore and apply corrections.

    Corrections are recorded transitions (source=reconcile) that publish entitlement
    changes; customers that already agree with Stripe are not written. --dry-run prints
    the diff only.
    """
    if sum(bool(x) for x in (customers, every, anomalies)) != 1:
        raise click.UsageError("give CUSTOMER... or --all or --anomalies (exactly one)")
    service = composition.reconciler()
    if customers:
        targets = [_resolve(ref) for ref in customers]
    else:
        targets = service.all_customers() if every else service.customers_with_anomalies()
    if every and not (yes or dry_run):
        click.confirm(
            f"Reconcile all {len(targets)} customer(s) against Stripe?", abort=True, err=True
        )
    outcomes: list[ReconcileOutcome] = []
    failed: dict[str, str] = {}
    with click.progressbar(
        targets, label="reconciling", file=sys.stderr, hidden=len(targets) < 2
    ) as bar:
        for customer in bar:
            try:
                outcomes.append(service.reconcile(customer, actor=actor, dry_run=dry_run))
            except Exception as exc:  # report and continue: one bad customer is not an outage
                failed[customer] = f"{type(exc).__name__}: {exc}"
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "results": [o.to_json() for o in outcomes],
                "failed": failed,
            }
        )
    else:
        _print(outcomes, dry_run)
        for customer, error in failed.items():
            click.echo(f"FAILED {customer}: {error}", err=True)
    if failed or any(o.relay_error for o in outcomes):
        sys.exit(1)


def _resolve(ref: str) -> str:
    """Account ids are accepted too; an unknown cus_ id is reconciled from Stripe as new."""
    try:
        return composition.accounts().customer_id(ref)
    except AccountNotFound:
        if ref.startswith("cus_"):
            return ref
        raise click.ClickException(
            f"{ref}: not a customer id and not a linked account id"
        ) from None


def _print(outcomes: list[ReconcileOutcome], dry_run: bool) -> None:
    for o in outcomes:
        head = (
            f"{o.customer_id} ({o.subscription_id or 'no subscription'}, stripe={o.stripe_status})"
        )
        if not o.changes:
            click.echo(f"{head}: in sync" if o.kind == "unchanged" else f"{head}: {o.kind}")
            continue
        verb = "would apply" if dry_run else ("duplicate" if o.duplicate else "applied")
        click.echo(f"{head}: {verb} {o.kind}")
        for key, (ours, stripes) in o.changes.items():
            click.echo(f"  {key}: firestore={ours} stripe-implied={stripes}")
        if o.anomalies_cleared:
            click.echo(f"  cleared {o.anomalies_cleared} anomaly(ies)")
        if o.relay_error:
            click.echo(f"  publish deferred to the sweep: {o.relay_error}", err=True)
    changed = sum(1 for o in outcomes if o.changes)
    click.echo(
        f"{len(outcomes)} customer(s) checked, {changed} "
        + ("to correct (dry run)" if dry_run else "corrected")
    )


@reconcile.command("catch-up")
@click.option(
    "--since",
    default="3d",
    show_default=True,
    help="Events created since: 6h, 3d or an ISO time (Stripe keeps 30 days).",
)
@dry_run_option
@json_option
@ops_errors
def catch_up(since: str, dry_run: bool, as_json: bool) -> None:
    """Republish events Stripe failed to deliver (List Events, delivery_success=false)."""
    start = int(parse_when(since))
    floor = int(time.time()) - CATCH_UP_WINDOW_SECONDS
    if start < floor:
        click.echo(f"note: Stripe keeps events 30 days; starting at {iso(floor)}", err=True)
    service = composition.reconciler()
    events = service.undelivered(start)
    with click.progressbar(
        length=len(events), label="publishing", file=sys.stderr, hidden=dry_run
    ) as bar:
        report = service.catch_up(start, dry_run=dry_run, progress=bar.update, events=events)
    result: dict[str, Any] = {
        "dry_run": dry_run,
        "found": report.found,
        "published": report.published,
        "already_processed": report.already_processed,
        "other_mode": report.other_mode,
        "failed": report.failed,
    }
    if as_json:
        emit_json(result)
    else:
        rows = [
            {
                "event_id": e["id"],
                "type": e.get("type"),
                "created": iso(e.get("created")),
                "action": (
                    "skip (processed)"
                    if e["id"] in report.already_processed
                    else "skip (other livemode)"
                    if e["id"] in report.other_mode
                    else "failed"
                    if e["id"] in report.failed
                    else "would publish"
                    if dry_run
                    else "published"
                ),
            }
            for e in events
        ]
        table(rows, ["event_id", "type", "created", "action"], empty="no undelivered events")
        click.echo(
            f"{len(report.found)} undelivered, {len(report.published)} published, "
            f"{len(report.already_processed)} already processed, {len(report.failed)} failed"
        )
    if report.failed:
        sys.exit(1)
