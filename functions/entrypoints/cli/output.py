"""Printing for billing-ops: aligned tables for people, one JSON document for scripts.

Every read command takes `--json` (via `json_option`) and prints exactly one JSON value on
stdout, so `billing-ops dlq list --json | jq` works; human output never goes there then.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from functions.errors import BillingError, ConfigError

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table."
)
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Show what would change and write nothing."
)
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def default_actor() -> str:
    """`--actor` default: the operator's login, so the audit never says 'unknown' by accident."""
    for var in ("BILLING_OPS_ACTOR", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, empty: str = "") -> None:
    if not rows:
        if empty:
            click.echo(empty)
        return
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    header = "  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True))
    click.echo(header.rstrip())
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """A key: value block for `show` commands."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {_cell(value)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(epoch: float | None, now: float | None = None) -> str:
    if epoch is None:
        return "-"
    seconds = max(0, int((now if now is not None else time.time()) - epoch))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(text: str) -> int:
    """'90s', '15m', '6h', '7d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise click.BadParameter(f"{text!r}: use a number with s, m, h or d (e.g. 6h, 7d)")
    return int(text[:-1]) * units[text[-1]]


def parse_when(text: str, now: float | None = None) -> float:
    """A relative duration ('6h' = six hours ago) or an ISO-8601 time -> epoch seconds."""
    current = now if now is not None else time.time()
    if text and text[-1].lower() in "smhd" and text[:-1].isdigit():
        return current - parse_duration(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: use e.g. 6h, 2d or 2026-01-31T12:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


actor_option = click.option(
    "--actor",
    default=default_actor,
    show_default="$USER",
    help="Who is acting, for the audit record.",
)


def ops_errors(fn: F) -> F:
    """Turn our known failures into a one-line message and exit code 1, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, BillingError) as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
        except RuntimeError as exc:
            if type(exc).__module__.startswith("functions."):
                raise click.ClickException(str(exc)) from exc
            raise

    return wrapper  # type: ignore[return-value]
