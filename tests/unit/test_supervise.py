"""The local supervisor's bookkeeping (infra/local/supervise.py); the kills themselves are
tested on the real `make dev` process in tests/integration/test_dev_stack_supervision.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.local.stack import RunningFunction, free_port
from infra.local.supervise import Supervisor, children


def test_a_function_that_cannot_start_again_is_reported_and_retried_with_backoff(
    tmp_path: Path,
) -> None:
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    # A target main.py does not define: functions-framework exits at start-up every time.
    function = RunningFunction(
        "no_such_target", free_port(), tmp_path / "fn.log", exited, {"GOOGLE_CLOUD_PROJECT": "p"}
    )
    lines: list[str] = []
    supervisor = Supervisor([function], lines.append)

    supervisor.check()
    supervisor.check()  # inside the backoff: no second try yet

    assert [line for line in lines if "exited with 0; restarting" in line] != []
    failed = [line for line in lines if "did not start again" in line]
    assert len(failed) == 1 and "next try in 2s" in failed[0]
    assert supervisor.restarts == {}
    assert supervisor.functions == [function]  # still the dead one, to be tried again


def test_children_lists_a_process_s_children_and_nothing_for_a_missing_one() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert children(2**22 + 7) == set()
