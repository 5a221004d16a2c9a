"""`billing-ops stripe ...`: Stripe's configuration as code (webhook endpoint, Billing Portal).

Both syncs read first, print the difference, and write only what differs (`--dry-run`
writes nothing), so running them twice is safe. Drift a sync cannot fix (an endpoint on
another API version, a second endpoint at our URL) is printed and exits 1, so a release
check or on-call notices it; runbooks/stripe-configuration.md has the steps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from functions import composition
from functions.entrypoints.cli.output import dry_run_option, emit_json, json_option, ops_errors
from functions.services.endpoint_sync import (
    SECRET_NAME,
    EndpointPlan,
    apply_endpoint,
    plan_endpoint,
    replacement,
)
from functions.services.portal_sync import apply_portal, plan_portal
from statemachine.catalog import CATALOG

ROTATION_DOC = "infra/terraform/DEPLOY.md, 'Rotating secrets' -> 'Webhook signing secret'"


@click.group()
def stripe() -> None:
    """Stripe configuration as code: the webhook endpoint and the Billing Portal."""


@stripe.group()
def endpoint() -> None:
    """Our webhook endpoint: URL, enabled events, pinned API version."""


@stripe.group()
def portal() -> None:
    """The Billing Portal configuration."""


def _write_secret(path: Path, secret: str) -> None:
    # 0600 from the first byte: the signing secret never sits world-readable, and it is
    # never printed or logged.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret)


def _secret_lines(created: dict[str, Any] | None, secret_file: Path | None) -> list[str]:
    lines = [f"signing secret: goes in Secret Manager secret {SECRET_NAME}; steps: {ROTATION_DOC}"]
    if created is None:
        return lines
    if secret_file is not None and created.get("secret"):
        _write_secret(secret_file, str(created["secret"]))
        lines.append(
            f"new endpoint {created['id']}: its secret is in {secret_file} (mode 0600); "
            f"gcloud secrets versions add {SECRET_NAME} --data-file={secret_file}, then delete it"
        )
    else:
        lines.append(
            f"new endpoint {created['id']}: reveal its secret in the Dashboard "
            "(Developers -> Webhooks -> the endpoint -> Signing secret)"
        )
    return lines


def _describe(plan: EndpointPlan) -> list[str]:
    head = f"{plan.action:<10} {plan.endpoint_id or '(new endpoint)'} {plan.url}"
    lines = [head, f"  api_version {plan.api_version}, {len(plan.fields)} field(s) to write"]
    lines += [f"  drift: {d}" for d in plan.drift()]
    lines += [f"  write: {k} = {v}" for k, v in sorted(plan.fields.items())]
    return lines


@endpoint.command("sync")
@click.option(
    "--url",
    envvar="STRIPE_WEBHOOK_URL",
    help="The webhook function's URL: `terraform -chdir=infra/terraform output -raw "
    "webhook_url` (env STRIPE_WEBHOOK_URL).",
)
@click.option(
    "--create-replacement",
    is_flag=True,
    help="When our endpoint is on another API version, create a new one on the pinned "
    "version beside it (the old one keeps delivering until you disable it).",
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write a created endpoint's signing secret (mode 0600; never printed).",
)
@dry_run_option
@json_option
@ops_errors
def endpoint_sync(
    url: str | None,
    create_replacement: bool,
    secret_file: Path | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Create or update our webhook endpoint to match the code (idempotent)."""
    # Checked here, not by click: runbooks quote the command with the URL in the environment.
    if not url:
        raise click.UsageError(
            "--url or STRIPE_WEBHOOK_URL is required: "
            "terraform -chdir=infra/terraform output -raw webhook_url"
        )
    gateway = composition.stripe_gateway()
    plan = plan_endpoint(gateway, url, composition.stripe_api_version())
    if plan.needs_new_endpoint and create_replacement:
        plan = replacement(plan)
    result = None if dry_run else apply_endpoint(plan, gateway)
    created = result if plan.action == "create" else None
    secret = _secret_lines(created, secret_file)
    if as_json:
        emit_json(
            {**plan.to_json(), "dry_run": dry_run, "written": result is not None, "secret": secret}
        )
    else:
        for line in [*_describe(plan), *secret]:
            click.echo(line)
        click.echo("dry run: nothing written" if dry_run else f"written: {result is not None}")
    if plan.unfixable:
        raise click.ClickException(
            "drift remains that sync cannot fix (see above); runbooks/stripe-configuration.md"
        )


@portal.command("sync")
@dry_run_option
@json_option
@ops_errors
def portal_sync(dry_run: bool, as_json: bool) -> None:
    """Make the Billing Portal configuration match our policy and catalog (idempotent)."""
    gateway = composition.stripe_gateway()
    plan = plan_portal(CATALOG, gateway)
    result = None if dry_run else apply_portal(plan, gateway)
    if as_json:
        emit_json({**plan.to_json(), "dry_run": dry_run, "written": result is not None})
        return
    click.echo(f"{plan.action:<10} {plan.configuration_id} (the account's default)")
    for line in plan.drift():
        click.echo(f"  {line}")
    click.echo("dry run: nothing written" if dry_run else f"written: {result is not None}")
