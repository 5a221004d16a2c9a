"""The offline infra checks: terraform fmt, terraform validate and the checkov scan.

Each runs the script under infra/checks/ that a developer runs by hand. Where a tool
cannot run here (no terraform binary, the google provider cannot be downloaded, checkov
cannot be installed) the test is skipped with the script's reason, which -ra prints;
nothing is passed silently. The *_fails_on_* tests prove each check can fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "infra" / "terraform"
CHECKS = ROOT / "infra" / "checks"
SKIPPED = 3  # the scripts' exit code for "could not run here"

# Checkov's first run installs it into .venv-checkov (about a minute); later runs take seconds.
CHECKOV_TIMEOUT = 600


def _run(
    script: str, *args: str, timeout: int = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CHECKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )


def _skip_if_unavailable(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode == SKIPPED:
        reason = " ".join(line for line in result.stderr.splitlines() if line.strip())
        pytest.skip(reason[:400])


def _copy_config(tmp_path: Path) -> Path:
    target = tmp_path / "terraform"
    shutil.copytree(TF_DIR, target, ignore=shutil.ignore_patterns(".terraform*"))
    return target


# --- terraform --------------------------------------------------------------------------


def test_terraform_fmt() -> None:
    result = _run("terraform.sh", "fmt")
    _skip_if_unavailable(result)
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_fmt_fails_on_unformatted_file(tmp_path: Path) -> None:
    copy = _copy_config(tmp_path)
    (copy / "outputs.tf").write_text('output "x" {\nvalue="y"\n}\n')
    result = _run("terraform.sh", "fmt", TF_DIR=str(copy))
    _skip_if_unavailable(result)
    assert result.returncode == 1
    assert "outputs.tf" in result.stdout


def test_terraform_validate() -> None:
    result = _run("terraform.sh", "validate")
    _skip_if_unavailable(result)
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_validate_fails_on_broken_config_even_offline(tmp_path: Path) -> None:
    """A syntax error must fail, not be mistaken for 'providers unavailable' and skipped."""
    if shutil.which("terraform") is None:
        pytest.skip("no terraform binary on PATH")
    copy = _copy_config(tmp_path)
    (copy / "broken.tf").write_text('resource "google_pubsub_topic" "x" {\n  name = \n}\n')
    result = _run("terraform.sh", "validate", TF_DIR=str(copy))
    assert result.returncode == 1, result.stdout + result.stderr


# --- checkov ----------------------------------------------------------------------------


def _checkov(directory: Path) -> dict[str, Any]:
    result = _run(
        "checkov.sh", "--output", "json", timeout=CHECKOV_TIMEOUT, CHECKOV_DIR=str(directory)
    )
    _skip_if_unavailable(result)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    return _checkov(TF_DIR)


@pytest.mark.timeout(CHECKOV_TIMEOUT)
def test_checkov_scan_passes(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in checkov_report["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    # The scan saw the stack, not an empty directory.
    assert summary["resource_count"] >= 50
    assert summary["passed"] > 0


def _skip_comments() -> dict[tuple[str, str], str]:
    """(check id, file) -> reason for every #checkov:skip comment in the Terraform."""
    found: dict[tuple[str, str], str] = {}
    pattern = re.compile(r"#\s*checkov:skip=(CKV_[A-Z0-9_]+):?(.*)")
    for path in sorted(TF_DIR.glob("*.tf")):
        for line in path.read_text().splitlines():
            match = pattern.search(line)
            if match:
                found[(match.group(1), path.name)] = match.group(2).strip()
    return found


@pytest.mark.timeout(CHECKOV_TIMEOUT)
def test_every_suppression_is_justified_and_used(checkov_report: dict[str, Any]) -> None:
    report = checkov_report
    comments = _skip_comments()
    assert comments, "expected the documented suppressions"
    for (check_id, path), reason in comments.items():
        assert len(reason) >= 40, f"{check_id} in {path}: suppression needs a real reason"
    skipped = {
        (c["check_id"], Path(c["file_path"]).name)
        for c in report["results"].get("skipped_checks", [])
    }
    # A suppression that suppresses nothing misleads the next reader; so does a skip
    # that did not come from a justified comment (e.g. a --skip-check flag).
    assert skipped == set(comments)


@pytest.mark.timeout(CHECKOV_TIMEOUT)
def test_checkov_fails_on_insecure_config(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'resource "google_storage_bucket" "open" {\n  name     = "x"\n  location = "US"\n}\n'
    )
    report = _checkov(tmp_path)
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    # Uniform bucket-level access and public access prevention are both missing.
    assert {"CKV_GCP_29", "CKV_GCP_114"} <= failed
