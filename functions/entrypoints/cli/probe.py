"""`billing-ops probe run`: the synthetic probe once, by hand (what the scheduler runs)."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict

import click

from functions import composition
from functions.entrypoints.cli.output import dry_run_option, emit_json, json_option, ops_errors


@click.group()
def probe() -> None:
    """The synthetic probe through the live pipeline (runbooks/synthetic-probe.md)."""


@probe.command("run")
@dry_run_option
@json_option
@ops_errors
def run(dry_run: bool, as_json: bool) -> None:
    """Post one signed synthetic event to PROBE_WEBHOOK_URL and wait for its message.

    Needs PROBE_WEBHOOK_URL, STRIPE_WEBHOOK_SECRET and the project's Pub/Sub and
    Firestore; exits 1 when the probe did not complete.
    """
    if dry_run:
        event = composition.probe().next_event(time.time())
        if as_json:
            emit_json(event)
        else:
            customer = event["data"]["object"]["customer"]
            click.echo(f"would post {event['type']} {event['id']} for {customer}")
        return
    result = composition.probe().run()
    payload = asdict(result)
    if as_json:
        emit_json(payload)
    elif result.ok:
        click.echo(f"probe completed in {result.latency_ms} ms (event {result.event_id})")
    else:
        click.echo(f"probe FAILED at {result.stage}: {result.detail} (event {result.event_id})")
    sys.exit(0 if result.ok else 1)
