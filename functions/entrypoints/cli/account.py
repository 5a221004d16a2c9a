"""`billing-ops account ...`: one customer's state, its audit trail, and manual overrides."""

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
    fields,
    iso,
    json_option,
    ops_errors,
    parse_duration,
    table,
    yes_option,
)
from functions.services.accounts import (
    MAX_OVERRIDE_SECONDS,
    AccountNotFound,
    OverrideResult,
    diff_records,
    override_active,
)
from schemas.documents import BillingRecord
from schemas.entitlements import AccessLevel


@click.group()
def account() -> None:
    """A customer's billing state, history and manual overrides."""


def _record_json(record: BillingRecord) -> dict[str, Any]:
    data: dict[str, Any] = record.model_dump(mode="json")
    now = time.time()
    data["override_active"] = override_active(record, now)
    return data


@account.command("show")
@click.argument("ref", metavar="CUSTOMER_OR_ACCOUNT")
@click.option("--events", default=10, show_default=True, help="How many recent events.")
@json_option
@ops_errors
def show(ref: str, events: int, as_json: bool) -> None:
    """State, access, entitlements, message, override, anomalies and last events."""
    service = composition.accounts()
    try:
        record = service.record(ref)
    except AccountNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    history = service.history(record.customer_id, events)
    pending = service.pending_outbox(record.customer_id)
    if as_json:
        emit_json(
            {
                "record": _record_json(record),
                "pending_outbox": pending,
                "last_events": [h.model_dump(mode="json") for h in history],
            }
        )
        return
    _print_record(record, pending)
    click.echo("last events:")
    table(
        [_history_row(h.model_dump(mode="json")) for h in history],
        ["at", "event", "type", "change", "decision", "source", "version"],
        empty="  (none)",
    )


def _print_record(record: BillingRecord, pending: int) -> None:
    ent = record.entitlements
    message = record.message
    fields(
        [
            ("customer", record.customer_id),
            ("account", record.account_id),
            ("status", record.status),
            ("access", record.access.value),
            ("plan", ent.plan if ent else None),
            ("add-ons", list(ent.add_ons) if ent else None),
            ("limits", ent.limits.model_dump() if ent else None),
            ("message", f"[{message.code}] {message.text}" if message else None),
            ("subscription", record.subscription_id),
            ("period end", iso(record.current_period_end)),
            ("cancel at period end", record.cancel_at_period_end),
            ("payment failed at", iso(record.payment_failed_at)),
            ("version", record.version),
            ("unpublished versions", pending),
            ("updated", iso(record.updated_at)),
        ]
    )
    if record.override:
        o = record.override
        state = "ACTIVE" if override_active(record, time.time()) else "expired"
        click.echo(
            f"override ({state}): access={o.access.value} until {iso(o.expires_at)}"
            f" by {o.actor}: {o.reason}"
        )
    else:
        click.echo("override: none")
    if not record.anomalies:
        click.echo("anomalies: none")
        return
    click.echo(f"anomalies ({len(record.anomalies)}):")
    table(
        [
            {"at": iso(a.at), "code": a.code, "event": a.event_id, "detail": a.detail}
            for a in record.anomalies
        ],
        ["at", "code", "event", "detail"],
    )


def _history_row(h: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": iso(h["at"]),
        "event": h["event_id"],
        "type": h["event_type"],
        "change": f"{h['from_status']} -> {h['to_status']}",
        "decision": h["decision"],
        "source": h["source"],
        "version": h["version"],
        "reason": h.get("reason"),
    }


@account.command("history")
@click.argument("ref", metavar="CUSTOMER_OR_ACCOUNT")
@click.option("--limit", default=50, show_default=True)
@json_option
@ops_errors
def history(ref: str, limit: int, as_json: bool) -> None:
    """The audit trail: every state transition and every operator action, newest first."""
    service = composition.accounts()
    try:
        record = service.record(ref)
    except AccountNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    transitions = [h.model_dump(mode="json") for h in service.history(record.customer_id, limit)]
    actions = [a.model_dump(mode="json") for a in service.operator_actions(record.customer_id)]
    if as_json:
        emit_json(
            {
                "customer_id": record.customer_id,
                "transitions": transitions,
                "operator_actions": actions,
            }
        )
        return
    click.echo(f"transitions of {record.customer_id}:")
    table(
        [_history_row(h) for h in transitions],
        ["at", "event", "type", "change", "decision", "source", "version", "reason"],
        empty="  (none)",
    )
    click.echo("operator actions:")
    table(
        [
            {"at": iso(a["at"]), "actor": a["actor"], "action": a["action"], "reason": a["reason"]}
            for a in actions
        ],
        ["at", "actor", "action", "reason"],
        empty="  (none)",
    )


@account.group("override")
def override() -> None:
    """Grant or restrict access by hand (audited, published, always expiring)."""


@override.command("set")
@click.argument("ref", metavar="CUSTOMER_OR_ACCOUNT")
@click.option(
    "--access",
    type=click.Choice([a.value for a in AccessLevel]),
    required=True,
    help="The access level to force until the expiry.",
)
@click.option("--reason", required=True, help="Why (ticket, incident); goes to the audit.")
@click.option("--expires-in", default="3d", show_default=True, help="e.g. 12h, 3d (at most 90d).")
@actor_option
@dry_run_option
@yes_option
@json_option
@ops_errors
def override_set(
    *,
    ref: str,
    access: str,
    reason: str,
    expires_in: str,
    actor: str,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Force an access level for a while, whatever Stripe says."""
    seconds = parse_duration(expires_in)
    if seconds > MAX_OVERRIDE_SECONDS:
        raise click.BadParameter(
            f"at most {MAX_OVERRIDE_SECONDS // 86_400}d", param_hint="--expires-in"
        )
    expires_at = int(time.time()) + seconds
    if not (yes or dry_run):
        click.confirm(
            f"Force access={access} for {ref} until {iso(expires_at)}?", abort=True, err=True
        )
    result = _run_override(
        ref,
        access=AccessLevel(access),
        reason=reason,
        actor=actor,
        expires_at=expires_at,
        dry_run=dry_run,
    )
    _print_override(result, as_json)


@override.command("clear")
@click.argument("ref", metavar="CUSTOMER_OR_ACCOUNT")
@click.option("--reason", required=True, help="Why the override is no longer needed.")
@actor_option
@dry_run_option
@yes_option
@json_option
@ops_errors
def override_clear(
    *, ref: str, reason: str, actor: str, dry_run: bool, yes: bool, as_json: bool
) -> None:
    """Remove the override: access follows the Stripe state again."""
    if not (yes or dry_run):
        click.confirm(f"Remove the override of {ref}?", abort=True, err=True)
    result = _run_override(ref, access=None, reason=reason, actor=actor, dry_run=dry_run)
    _print_override(result, as_json)


def _run_override(
    ref: str,
    *,
    access: AccessLevel | None,
    reason: str,
    actor: str,
    dry_run: bool,
    expires_at: int | None = None,
) -> OverrideResult:
    try:
        return composition.accounts().set_override(
            ref,
            access=access,
            reason=reason,
            actor=actor,
            expires_at=expires_at,
            dry_run=dry_run,
        )
    except (AccountNotFound, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def _print_override(result: OverrideResult, as_json: bool) -> None:
    after = result.decision.record
    changes = diff_records(result.before, after)
    payload = {
        "customer_id": result.customer_id,
        "decision": result.decision.kind,
        "reason": result.decision.reason,
        "changes": {k: {"before": a, "after": b} for k, (a, b) in changes.items()},
        "applied": result.applied,
        "dry_run": not result.applied,
        "version": after.version,
        "published": result.published,
        "relay_error": result.relay_error,
        "audit_id": result.audit.audit_id if result.audit else None,
    }
    if as_json:
        emit_json(payload)
    else:
        prefix = "would change" if not result.applied else "changed"
        for key, (a, b) in changes.items():
            click.echo(f"{prefix} {key}: {a} -> {b}")
        if not changes:
            click.echo("no change")
        if result.applied:
            click.echo(
                f"{result.decision.kind}: version {after.version}, "
                f"{result.published} entitlement message(s) published"
            )
    if result.relay_error:
        click.echo(
            f"committed, but publishing failed ({result.relay_error}); "
            "run `billing-ops relay sweep` or wait for the scheduled sweep",
            err=True,
        )
        sys.exit(1)
