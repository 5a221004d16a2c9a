"""Unit tests read log lines from stdout; an earlier CLI test may have routed them to stderr."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from functions.log import log_to_stderr


@pytest.fixture(autouse=True)
def _logs_on_stdout() -> Iterator[None]:
    log_to_stderr(False)
    yield
