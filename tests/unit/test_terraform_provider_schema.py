"""infra/terraform against the google and archive provider schemas (infra/checks/).

The first run downloads the pinned @cdktf/provider-* packages with `npm pack` into
.cache/provider-schema (about 30 MB, seconds); later runs read the cache. Without npm or
registry access these tests fail with what to install: the check is never skipped.

Each *_fails test breaks a copy of infra/terraform in one way and asserts the report names
the file, line, resource address and the bad name, so the check is shown able to fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.checks import provider_schema
from infra.checks.provider_schema import PACKAGES, SchemaStore, SchemaUnavailable
from infra.checks.terraform_schema import Finding, Report, check_directory, satisfies

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "infra" / "terraform"

# The first test may download the packages; the default per-test timeout is for code alone.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore()


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "terraform"
    shutil.copytree(TF_DIR, target, ignore=shutil.ignore_patterns(".terraform*"))
    return target


def _edit(path: Path, old: str, new: str) -> int:
    """Replaces the first occurrence of old; returns its 1-based line in the edited file."""
    text = path.read_text()
    assert old in text, f"{old!r} no longer in {path.name}; update the test"
    at = text.index(old)
    path.write_text(text[:at] + new + text[at + len(old) :])
    return text.count("\n", 0, at) + 1


def _only(report: Report, address: str) -> Finding:
    assert len(report.findings) == 1, "\n".join(map(str, report.findings))
    finding = report.findings[0]
    assert finding.address.startswith(address), finding
    return finding


def test_our_terraform_matches_the_provider_schemas(store: SchemaStore) -> None:
    report = check_directory(TF_DIR, store)

    assert report.findings == [], "\n".join(map(str, report.findings))
    # Every block in the files was held against a schema; none was passed by skipping it.
    header = re.compile(r'^(resource|data|provider) "([^"]+)"(?: "([^"]+)")?', re.M)
    expected = set()
    for path in TF_DIR.glob("*.tf"):
        for kind, type_name, name in header.findall(path.read_text()):
            prefix = "data." if kind == "data" else ""
            expected.add(
                f'provider "{type_name}"' if kind == "provider" else f"{prefix}{type_name}.{name}"
            )
    assert set(report.checked) == expected
    assert set(report.providers) == {"hashicorp/google", "hashicorp/archive"}


def test_misspelt_argument_fails(tmp_path: Path, store: SchemaStore) -> None:
    tf = _copy(tmp_path)
    line = _edit(
        tf / "pubsub.tf",
        'message_retention_duration = "86400s"',
        'message_retention_durations = "86400s"',
    )

    finding = _only(check_directory(tf, store), "google_pubsub_topic.stripe_events")

    assert (finding.path.name, finding.line) == ("pubsub.tf", line)
    assert "unknown argument message_retention_durations" in finding.message
    assert "did you mean message_retention_duration" in finding.message


@pytest.mark.parametrize(
    ("file", "old", "new", "address", "where"),
    [
        (
            "pubsub.tf",
            "oidc_token {",
            "oidc_tokn {",
            "google_pubsub_subscription.stripe_events",
            "(push_config)",
        ),
        (
            "functions.tf",
            "storage_source {",
            "storage_sources {",
            "google_cloudfunctions2_function.fn",
            "(build_config.source)",
        ),
    ],
)
def test_misspelt_nested_block_fails(
    tmp_path: Path, store: SchemaStore, file: str, old: str, new: str, address: str, where: str
) -> None:
    tf = _copy(tmp_path)
    line = _edit(tf / file, old, new)
    bad = new.split(maxsplit=1)[0]

    report = check_directory(tf, store)

    # A misspelt required block also leaves the real one missing; both are reported.
    unknown = [f for f in report.findings if f"unknown block {bad}" in f.message]
    assert len(unknown) == 1, "\n".join(map(str, report.findings))
    assert unknown[0].address == f"{address} {where}"
    assert (unknown[0].path.name, unknown[0].line) == (file, line)
    assert f"did you mean {old.split(maxsplit=1)[0]}" in unknown[0].message


def test_misspelt_argument_inside_dynamic_content_fails(tmp_path: Path, store: SchemaStore) -> None:
    tf = _copy(tmp_path)
    _edit(tf / "functions.tf", "project_id = var.project_id", "projectid  = var.project_id")

    report = check_directory(tf, store)

    messages = sorted(f.message for f in report.findings)
    assert messages == [
        "required argument project_id is missing",
        "unknown argument projectid; did you mean project_id?",
    ], "\n".join(map(str, report.findings))
    assert {f.address for f in report.findings} == {
        "google_cloudfunctions2_function.fn (service_config.secret_environment_variables)"
    }


def test_unknown_resource_and_data_types_fail(tmp_path: Path, store: SchemaStore) -> None:
    tf = _copy(tmp_path)
    (tf / "extra.tf").write_text(
        'resource "google_pubsub_topik" "extra" {\n  name = "x"\n}\n\n'
        'data "google_projekt" "extra" {}\n'
    )

    report = check_directory(tf, store)

    found = {f.address: f for f in report.findings}
    assert set(found) == {"google_pubsub_topik.extra", "data.google_projekt.extra"}
    topic = found["google_pubsub_topik.extra"]
    assert (topic.path.name, topic.line) == ("extra.tf", 1)
    assert "unknown resource type google_pubsub_topik" in topic.message
    assert "did you mean google_pubsub_topic" in topic.message
    assert "unknown data type google_projekt" in found["data.google_projekt.extra"].message


def test_missing_required_argument_fails(tmp_path: Path, store: SchemaStore) -> None:
    tf = _copy(tmp_path)
    _edit(tf / "pubsub.tf", "  topic = google_pubsub_topic.dead_letter.id\n", "")

    finding = _only(check_directory(tf, store), "google_pubsub_subscription.dead_letter")

    assert finding.message == "required argument topic is missing"


def test_block_written_as_argument_fails(tmp_path: Path, store: SchemaStore) -> None:
    tf = _copy(tmp_path)
    _edit(
        tf / "functions.tf",
        "versioning {\n    enabled = true\n  }",
        "versioning = { enabled = true }",
    )

    finding = _only(check_directory(tf, store), "google_storage_bucket.source")

    assert "versioning is a block" in finding.message


def test_provider_block_is_checked(tmp_path: Path, store: SchemaStore) -> None:
    tf = _copy(tmp_path)
    _edit(tf / "versions.tf", "default_labels =", "default_label =")

    finding = _only(check_directory(tf, store), 'provider "google"')

    assert "unknown argument default_label; did you mean default_labels" in finding.message


def test_provider_without_a_pinned_schema_is_reported(tmp_path: Path, store: SchemaStore) -> None:
    tf = _copy(tmp_path)
    (tf / "extra.tf").write_text('resource "random_id" "suffix" {\n  byte_length = 4\n}\n')

    finding = _only(check_directory(tf, store), "random_id.suffix")

    assert "hashicorp/random has no pinned schema package" in finding.message


def test_provider_constraint_must_admit_the_pinned_schema(
    tmp_path: Path, store: SchemaStore
) -> None:
    tf = _copy(tmp_path)
    _edit(tf / "versions.tf", '"~> 6.0"', '"~> 7.0"')

    finding = _only(check_directory(tf, store), "required_providers.google")

    assert finding.path.name == "versions.tf"
    assert '"~> 7.0" excludes hashicorp/google 6.' in finding.message


def test_command_line_exit_codes(tmp_path: Path, store: SchemaStore) -> None:
    store.for_source("hashicorp/google")  # the download, if any, happens under the fixture
    tf = _copy(tmp_path)
    line = _edit(tf / "scheduler.tf", "time_zone ", "timezone  ")

    def run(directory: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "infra.checks.terraform_schema", str(directory)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    good, bad = run(TF_DIR), run(tf)

    assert good.returncode == 0, good.stderr
    assert "terraform_schema: ok" in good.stdout
    assert bad.returncode == 1
    assert f"scheduler.tf:{line}: google_cloud_scheduler_job.job: unknown argument timezone" in (
        bad.stderr
    )


def test_schema_reads_nested_blocks_and_required_names(store: SchemaStore) -> None:
    google = store.for_source("registry.terraform.io/hashicorp/google")
    bucket = google.schema("resource", "google_storage_bucket")
    assert bucket is not None
    rule = bucket.blocks["lifecycle_rule"]
    assert rule.required == {"action", "condition"}
    assert "age" in rule.blocks["condition"].arguments
    assert {"name", "location"} <= bucket.required
    assert "force_destroy" in bucket.arguments and "self_link" not in bucket.names  # computed
    assert google.schema("resource", "google_no_such_thing") is None

    archive = store.for_source("hashicorp/archive").schema("data", "archive_file")
    assert archive is not None
    assert {"type", "output_path"} <= archive.required


def test_without_npm_the_download_fails_naming_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no npm on it

    with pytest.raises(SchemaUnavailable, match=r"npm is not on PATH.*apt-get install npm"):
        provider_schema.ensure_package(PACKAGES["hashicorp/archive"], tmp_path)


@pytest.mark.parametrize(
    ("version", "constraint", "expected"),
    [
        ("6.50.0", "~> 6.0", True),
        ("7.0.0", "~> 6.0", False),
        ("2.7.1", "~> 2.4", True),
        ("2.3.9", "~> 2.4", False),
        ("1.2.9", "~> 1.2.3", True),
        ("1.3.0", "~> 1.2.3", False),
        ("6.50.0", ">= 6.1, < 6.51", True),
        ("6.50.0", ">= 6.1, != 6.50.0", False),
        ("6.50.0", "6.50.0", True),
    ],
)
def test_version_constraints(version: str, constraint: str, expected: bool) -> None:
    assert satisfies(version, constraint) is expected
