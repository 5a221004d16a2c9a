"""`billing-ops catalog ...`: keep Stripe's products and prices equal to the catalog."""

from __future__ import annotations

import json

import click

from functions import composition
from functions.errors import ConfigError, StripeRejected, StripeUnavailable
from functions.services.catalog_sync import apply_sync, plan_sync
from statemachine.catalog import CATALOG


@click.group()
def catalog() -> None:
    """Stripe products and prices from statemachine/catalog.py."""


@catalog.command("sync")
@click.option("--dry-run", is_flag=True, help="Print the changes without writing to Stripe.")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON lines.")
def sync(dry_run: bool, as_json: bool) -> None:
    """Create or update products and prices, keyed by lookup_key (idempotent)."""
    try:
        gateway = composition.stripe_gateway()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        changes = plan_sync(CATALOG, gateway)
        writes = [c for c in changes if c.is_write]
        for change in changes:
            if as_json:
                click.echo(json.dumps(change.to_json(), sort_keys=True))
            else:
                click.echo(change.describe())
        if not as_json:
            click.echo(
                f"{len(writes)} change(s), {len(changes) - len(writes)} unchanged"
                + (" (dry run: nothing written)" if dry_run else "")
            )
        if dry_run or not writes:
            return
        apply_sync(changes, gateway)
    except (StripeRejected, StripeUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    if not as_json:
        click.echo(f"applied {len(writes)} change(s)")
