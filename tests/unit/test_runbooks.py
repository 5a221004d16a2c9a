"""The runbooks name only commands that exist, and each page has the sections on-call needs.

Every `billing-ops ...` command quoted in runbooks/*.md (fenced blocks and inline code) is
resolved through the real click tree and parsed with `make_context`, which checks the
subcommand path, every option name, option values (choices) and required options,
without running the command.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from functions.entrypoints.cli.main import cli

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
# The situations the on-call issue lists, by the file names the alert docs link to.
REQUIRED_PAGES = (
    "dead-letter-backlog.md",
    "signature-failures.md",
    "webhook-5xx.md",
    "relay-lag.md",
    "anomalies.md",
    "paid-but-no-access.md",
    "missed-webhooks.md",
    "firestore-outage.md",
)
SECTIONS = ("## symptoms", "## confirm", "## verify recovery", "## escalate")

_INLINE = re.compile(r"`(billing-ops[^`\n]*)`")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)


def quoted_commands(text: str) -> list[str]:
    # A bare `billing-ops` in prose names the tool, not a command.
    found = [m.group(1) for m in _INLINE.finditer(text) if m.group(1).strip() != "billing-ops"]
    for block in _FENCE.findall(text):
        for line in block.splitlines():
            stripped = line.strip()
            if stripped.startswith("billing-ops"):
                found.append(stripped)
    return found


def _all_commands() -> list[tuple[str, str]]:
    return [
        (page.name, command)
        for page in sorted(RUNBOOKS.glob("*.md"))
        for command in quoted_commands(page.read_text())
    ]


def parse(command: str) -> list[str]:
    """Resolve and parse one command line; return the command path. Raises click errors."""
    argv = shlex.split(command, comments=True)
    assert argv[0] == "billing-ops"
    # `--help` would print and exit: drop it and only check that the path resolves.
    help_only = "--help" in argv
    args = [a for a in argv[1:] if a != "--help"]
    path: list[str] = []
    cmd: click.Command = cli
    parent: click.Context | None = None
    while True:
        ctx = cmd.make_context(
            " ".join(["billing-ops", *path]), list(args), parent=parent, resilient_parsing=help_only
        )
        if not isinstance(cmd, click.Group):
            return path
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            assert help_only, f"{command}: a group needs a subcommand"
            return path
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        path.append(name)
        cmd, parent, args = sub, ctx, rest


def test_every_required_page_exists_with_its_sections() -> None:
    for name in REQUIRED_PAGES:
        text = (RUNBOOKS / name).read_text().lower()
        missing = [s for s in SECTIONS if s not in text]
        assert not missing, f"{name} lacks {missing}"
        # The page must tell on-call which alert fires (or say that none does).
        assert "alert" in text, name


def test_index_links_every_page_and_the_state_diagram() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for name in (*REQUIRED_PAGES, "state-diagram.md"):
        assert f"({name})" in index, name


def test_runbooks_quote_many_commands() -> None:
    commands = _all_commands()
    assert len(commands) >= 40
    paths = {" ".join(parse(c)) for _, c in commands}
    # Each operational area appears somewhere in the runbooks.
    for expected in (
        "dlq list",
        "dlq show",
        "dlq replay",
        "dlq purge",
        "account show",
        "account history",
        "account override set",
        "account override clear",
        "reconcile run",
        "reconcile catch-up",
        "relay sweep",
    ):
        assert expected in paths, expected


@pytest.mark.parametrize(
    ("page", "command"), _all_commands(), ids=lambda v: v if v.endswith(".md") else ""
)
def test_quoted_command_parses(page: str, command: str) -> None:
    try:
        parse(command)
    except click.ClickException as exc:  # UsageError, NoSuchOption, BadParameter, ...
        pytest.fail(f"{page}: `{command}` does not parse: {exc.format_message()}")


@pytest.mark.parametrize(
    "command",
    [
        "billing-ops dlq replya evt_1",
        "billing-ops dlq replay --no-such-flag",
        "billing-ops account override set cus_1 --access everything --reason x",
        "billing-ops account override set cus_1 --access full",
        "billing-ops dlq purge evt_1",
        "billing-ops reconcile catch-up --since",
    ],
)
def test_the_checker_rejects_broken_commands(command: str) -> None:
    with pytest.raises(click.ClickException):
        parse(command)
