"""The release pipeline as code: its gates in order, what it calls exists, and the deploy
script's candidate, probe and rollback logic.

The script runs here against stub `gcloud`, `terraform` and `billing-ops` executables that
record their arguments and answer like the real ones (no Google Cloud project is reachable
from this machine); what the stubs answer is the documented output format of the commands.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_infra_drift import Terraform, _block, _load_terraform

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "infra/release/cloudbuild.json"
DEPLOY = ROOT / "infra/release/deploy.sh"
GATES = [
    "ci-image",
    "test",
    "soak",
    "bench-gate",
    "terraform-checks",
    "deploy-candidate",
    "probe-candidate",
    "shift-traffic",
    "probe-live",
]


def _steps() -> list[dict[str, object]]:
    return json.loads(PIPELINE.read_text())["steps"]  # type: ignore[no-any-return]


def test_the_gates_run_in_order_and_deploy_comes_last() -> None:
    assert [step["id"] for step in _steps()] == GATES


def test_every_command_the_pipeline_runs_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    script_steps = set(re.findall(r"^\s+([a-z-]+)\)$", DEPLOY.read_text(), re.M))
    for step in _steps():
        args = [str(a) for a in step.get("args", [])]  # type: ignore[attr-defined]
        entry = str(step.get("entrypoint", ""))
        if entry == "make":
            assert re.search(rf"^{args[0]}:", makefile, re.M), args
        elif entry.startswith("infra/"):
            assert os.access(ROOT / entry, os.X_OK), entry
            assert args[0] in script_steps, args
        for path in re.findall(r"(infra/[\w/.-]+\.(?:sh|Dockerfile))", " ".join(args)):
            assert (ROOT / path).exists(), path
        for module in re.findall(r"-m (bench\.\w+)", " ".join(args)):
            assert (ROOT / (module.replace(".", "/") + ".py")).exists(), module


def test_terraform_deploys_by_commit_and_holds_traffic_for_a_candidate() -> None:
    tf: Terraform = _load_terraform()
    assert {"release", "shift_traffic"} <= set(tf.variables)
    obj = tf.resource("google_storage_bucket_object", "source")
    assert "${var.release}" in obj["name"]
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    service = _block(fn, "service_config")
    assert service is not None
    assert service["all_traffic_on_latest_revision"] == "${var.shift_traffic}"
    outputs = (ROOT / "infra/terraform/outputs.tf").read_text()
    assert 'output "function_names"' in outputs


def test_deploy_md_says_how_to_roll_back() -> None:
    text = (ROOT / "infra/terraform/DEPLOY.md").read_text()
    section = text[text.index("## Rolling back") :]
    for needed in ("infra/release/deploy.sh rollback", "in-flight", "Firestore", "schemas/compat"):
        assert needed in section, needed


# --- deploy.sh against recording stubs ---------------------------------------------------

STUB = (ROOT / "tests/support/release_stub.sh").read_text()


@pytest.fixture
def stubs(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("gcloud", "terraform", "billing-ops"):
        path = bin_dir / name
        path.write_text(STUB)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STUB_LOG": str(tmp_path / "log"),
        "STUB_STORE": str(tmp_path / "store"),
        "BILLING_OPS": str(bin_dir / "billing-ops"),
        "REGION": "europe-west1",
        "PROJECT_ID": "billing-prod",
        "TF_STATE_BUCKET": "state",
    }


def deploy(env: dict[str, str], *args: str, probe_exit: int = 0) -> tuple[int, list[str]]:
    log = Path(env["STUB_LOG"])
    log.write_text("")
    run = subprocess.run(
        ["bash", str(DEPLOY), *args],
        env={**env, "PROBE_EXIT": str(probe_exit)},
        capture_output=True,
        text=True,
        check=False,
    )
    return run.returncode, log.read_text().splitlines()


def test_candidate_records_the_serving_revisions_then_applies_without_traffic(
    stubs: dict[str, str],
) -> None:
    code, calls = deploy(stubs, "candidate", "0123abc")
    assert code == 0
    assert Path(stubs["STUB_STORE"]).read_text().splitlines() == [
        "stripe-webhook stripe-webhook-00001-old",
        "synthetic-probe synthetic-probe-00001-old",
    ]
    applies = [c for c in calls if " apply " in c]
    assert applies and applies[0].endswith("-var release=0123abc -var shift_traffic=false")
    assert calls.index(next(c for c in calls if c.startswith("gcloud storage cp"))) < calls.index(
        applies[0]
    )


def test_the_candidate_probe_goes_to_the_new_revision_and_untags_it(stubs: dict[str, str]) -> None:
    code, calls = deploy(stubs, "probe-candidate", "0123abc")
    assert code == 0
    assert "PROBE_WEBHOOK_URL=https://candidate---stripe-webhook-abc-ew.a.run.app" in calls
    assert any("--update-tags candidate=stripe-webhook-00002-new" in c for c in calls)
    assert calls[-1].endswith("--remove-tags candidate")
    failed, calls = deploy(stubs, "probe-candidate", "0123abc", probe_exit=1)
    assert failed == 1 and calls[-1].endswith("--remove-tags candidate")


def test_a_failing_live_probe_rolls_every_function_back(stubs: dict[str, str]) -> None:
    deploy(stubs, "candidate", "0123abc")
    code, calls = deploy(stubs, "probe-live", "0123abc", probe_exit=1)
    assert code == 1
    moves = [c for c in calls if "update-traffic" in c]
    assert moves == [
        "gcloud run services update-traffic stripe-webhook --region europe-west1"
        " --to-revisions stripe-webhook-00001-old=100",
        "gcloud run services update-traffic synthetic-probe --region europe-west1"
        " --to-revisions synthetic-probe-00001-old=100",
    ]
    passed, calls = deploy(stubs, "probe-live", "0123abc")
    assert passed == 0 and not [c for c in calls if "update-traffic" in c]


def test_rollback_is_one_command_and_refuses_without_a_record(stubs: dict[str, str]) -> None:
    Path(stubs["STUB_STORE"]).write_text("")
    code, _ = deploy(stubs, "rollback")
    assert code == 1
    deploy(stubs, "candidate", "0123abc")
    code, calls = deploy(stubs, "rollback")
    assert code == 0 and len([c for c in calls if "update-traffic" in c]) == 2
