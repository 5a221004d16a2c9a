"""`billing-ops`: the on-call and release tool.

Each command group lives in its own module and is registered at the bottom of this file,
one `cli.add_command(...)` line per group, so groups can be added without touching each
other. Adapters come from functions/composition.py, built when a command body first asks
for one, so `billing-ops --help` works without configuration and without loading the
Google or Stripe client libraries.
"""

from __future__ import annotations

import click

from functions.log import configure_logging, log_to_stderr


@click.group()
@click.version_option(package_name="dataface-billing")
def cli() -> None:
    """Operate Dataface billing: catalog, dead letters, accounts, reconciliation."""
    # The adapters log JSON lines for Cloud Logging on stdout; in the CLI stdout belongs to
    # the command's output (`--json | jq` must parse), so their lines go to stderr.
    configure_logging()
    log_to_stderr()


# Command groups: one registration per line (keep alphabetical to ease merges).
from functions.entrypoints.cli.account import account  # noqa: E402
from functions.entrypoints.cli.catalog import catalog  # noqa: E402
from functions.entrypoints.cli.dlq import dlq  # noqa: E402
from functions.entrypoints.cli.probe import probe  # noqa: E402
from functions.entrypoints.cli.reconcile import reconcile  # noqa: E402
from functions.entrypoints.cli.relay import relay  # noqa: E402
from functions.entrypoints.cli.stripe_config import stripe  # noqa: E402

cli.add_command(account)
cli.add_command(catalog)
cli.add_command(dlq)
cli.add_command(probe)
cli.add_command(reconcile)
cli.add_command(relay)
cli.add_command(stripe)
