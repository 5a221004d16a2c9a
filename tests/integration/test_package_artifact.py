"""The deploy artifact, built and run the way production runs it.

The wheel is built from the tree as it is at run time, installed with its dependencies in a
new virtualenv outside the checkout, and every entry point Terraform deploys (read from
infra/terraform with python-hcl2) is served by that virtualenv's functions-framework from
the installed main.py, against the emulators and the local Stripe server. Each function
gets a request that only its own code answers the way it does, and each process's import
trace must show that nothing came from the checkout.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest
import requests
from google.cloud import firestore

from infra.local.artifact import (
    ROOT,
    Built,
    Installed,
    InstalledFunction,
    build_wheel,
    clean_env,
    imported_from,
    install_clean,
    serve,
    wait_listening,
)
from infra.local.emulators import Emulators, free_port
from infra.local.topology import OBSERVER_STRIPE_EVENTS_SUBSCRIPTION
from tests.conftest import ProvisionedProject, provision_project
from tests.support.pubsub import pull_all
from tests.support.signing import encode, signed_headers, stripe_event
from tests.support.stripe_server import StripeServer

# Building, installing and starting eight servers precede the first test, and on a new
# machine the wheelhouse is first filled from the registry.
pytestmark = [pytest.mark.emulator, pytest.mark.timeout(300)]

TF_DIR = ROOT / "infra" / "terraform"
PACKAGES = ("functions", "statemachine", "schemas")
SUBSCRIBER = "process_stripe_event"
WEBHOOK_SECRET = "whsec_artifact" + "c" * 24
AUTH_SECRET = "artifact-auth-secret-" + "k" * 32

_EACH_VALUE = re.compile(r"^\$\{each\.value\.(\w+)\}$")
_LOCAL = re.compile(r"^\$\{local\.(\w+)\}$")


def _plain(value: Any) -> Any:
    # Recent python-hcl2 keeps the quotes of strings and keys and adds __marker__ keys.
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def deployed_entry_points() -> list[str]:
    """build_config.entry_point of every google_cloudfunctions2_function, for_each expanded."""
    locals_: dict[str, Any] = {}
    functions: list[dict[str, Any]] = []
    for path in sorted(TF_DIR.glob("*.tf")):
        doc = _plain(hcl2.loads(path.read_text()))
        for block in doc.get("locals", []):
            locals_.update(block)
        for block in doc.get("resource", []):
            functions += block.get("google_cloudfunctions2_function", {}).values()
    found: list[str] = []
    for body in functions:
        [build] = body["build_config"]
        entry = build["entry_point"]
        attribute = _EACH_VALUE.match(entry)
        if attribute is None:
            found.append(entry)
            continue
        source = _LOCAL.match(str(body.get("for_each")))
        assert source, f"cannot follow for_each = {body.get('for_each')!r} to the entry points"
        found += [spec[attribute.group(1)] for spec in locals_[source.group(1)].values()]
    return found


ENTRY_POINTS = deployed_entry_points()


@dataclass
class Deployment:
    project: ProvisionedProject
    installed: Installed
    functions: dict[str, InstalledFunction]
    env: dict[str, str]
    run_dir: Path
    stripe: StripeServer


def _report(config: pytest.Config, line: str) -> None:
    """Timings on the terminal: output during a fixture's setup is otherwise captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("artifact")
    # Inside the checkout, the checkout could be imported by accident and prove nothing.
    assert not path.resolve().is_relative_to(ROOT), f"{path} is inside the checkout"
    return path


@pytest.fixture(scope="module")
def built(work_dir: Path, request: pytest.FixtureRequest) -> Built:
    started = time.monotonic()
    result = build_wheel(work_dir / "build")
    _report(
        request.config, f"artifact: {result.wheel.name} built in {time.monotonic() - started:.1f} s"
    )
    return result


@pytest.fixture(scope="module")
def installed(built: Built, work_dir: Path, request: pytest.FixtureRequest) -> Installed:
    result = install_clean(built.wheel, work_dir / "venv")
    source = "refilled from the registry" if result.refilled_wheelhouse else "offline"
    _report(
        request.config,
        f"artifact: venv {result.seconds_venv:.1f} s, install {result.seconds_install:.1f} s"
        f" (dependencies {source})",
    )
    return result


@pytest.fixture(scope="module")
def stripe() -> Iterator[StripeServer]:
    server = StripeServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deployment(
    emulators: Emulators,
    installed: Installed,
    stripe: StripeServer,
    work_dir: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Deployment]:
    ports = {target: free_port() for target in ENTRY_POINTS}
    # The push subscription feeds the installed subscriber, as Terraform's feeds production.
    project = provision_project(emulators, push_endpoint=f"http://127.0.0.1:{ports[SUBSCRIBER]}/")
    env = clean_env(
        installed.venv,
        {
            **project.env,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_KEY": "sk_test_local",
            "STRIPE_API_BASE": stripe.url,
            "INTERNAL_AUTH_SECRET": AUTH_SECRET,
            # The installed probe posts to the installed webhook, as production's does.
            "PROBE_WEBHOOK_URL": f"http://127.0.0.1:{ports['stripe_webhook']}/",
            "PROBE_TIMEOUT_SECONDS": "30",
            "CHECKOUT_SUCCESS_URL": "https://app.dataface.test/billing/success",
            "CHECKOUT_CANCEL_URL": "https://app.dataface.test/billing/cancel",
            "PORTAL_RETURN_URL": "https://app.dataface.test/settings/billing",
        },
    )
    run_dir = work_dir / "run"
    run_dir.mkdir()
    functions: dict[str, InstalledFunction] = {}
    try:
        started = time.monotonic()
        for target in ENTRY_POINTS:
            # Named like the other function logs, so the session's log scan reads them too.
            _, log = tempfile.mkstemp(prefix=f"{target}-", suffix=".log")
            functions[target] = serve(
                installed.venv, target, ports[target], env, cwd=run_dir, log_path=Path(log)
            )
        wait_listening(list(functions.values()))
        _report(
            request.config,
            f"artifact: {len(functions)} functions listening in {time.monotonic() - started:.1f} s",
        )
        yield Deployment(project, installed, functions, env, run_dir, stripe)
    finally:
        for function in functions.values():
            function.stop()


# -- helpers ----------------------------------------------------------------------------


def _ignored_event() -> dict[str, Any]:
    # Not a type the state machine handles: the subscriber only records the marker.
    return stripe_event(
        "customer.updated",
        customer=None,
        object_id=f"cus_{uuid.uuid4().hex[:10]}",
        extra={"object": "customer"},
    )


@functools.cache
def _firestore(project: str) -> firestore.Client:
    return firestore.Client(project=project)


def _processed(project: str, event_id: str) -> bool:
    # Read directly, not through our repository: the installed code is what is under test.
    doc = _firestore(project).collection("processed_events").document(event_id)
    return bool(doc.get().exists)


def _wait(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.25)


def _json_logs(function: InstalledFunction) -> list[dict[str, Any]]:
    lines = []
    for line in function.output().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # functions-framework's and gunicorn's own plain-text lines
    return [line for line in lines if isinstance(line, dict)]


def _observed(project: str, event_id: str, seconds: float = 20) -> list[bytes]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = pull_all(project, OBSERVER_STRIPE_EVENTS_SUBSCRIPTION, deadline=2)
        mine = [m.data for m in got if m.attributes.get("event_id") == event_id]
        if mine:
            return mine
    return []


# -- what each function answers ----------------------------------------------------------

Probe = Callable[[Deployment, InstalledFunction], None]


def probe_webhook(d: Deployment, fn: InstalledFunction) -> None:
    assert requests.get(fn.url, timeout=10).status_code == 405
    unsigned = requests.post(
        fn.url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert (unsigned.status_code, unsigned.json()) == (400, {"error": "missing_signature"})

    event = _ignored_event()
    body = encode(event)
    signed = requests.post(
        fn.url, data=body, headers=signed_headers(body, [WEBHOOK_SECRET]), timeout=10
    )
    assert (signed.status_code, signed.json()) == (200, {"received": True})
    assert _observed(d.project.project, event["id"]) == [body]
    # Pushed on to the installed subscriber, which wrote its marker.
    _wait(lambda: _processed(d.project.project, event["id"]), 30, "the pushed event's marker")


def probe_subscriber(d: Deployment, fn: InstalledFunction) -> None:
    event = _ignored_event()
    project = d.project.project
    push = {
        "message": {
            "data": base64.b64encode(json.dumps(event).encode()).decode(),
            "attributes": {"event_id": event["id"], "event_type": event["type"]},
            "messageId": uuid.uuid4().hex,
        },
        "subscription": f"projects/{project}/subscriptions/stripe-events-subscriber",
    }
    headers = {
        "ce-id": uuid.uuid4().hex,
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/stripe-events",
    }
    response = requests.post(fn.url, json=push, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert _processed(project, event["id"])
    decisions = [
        line.get("decision")
        for line in _json_logs(fn)
        if line.get("message") == "event_processed" and line.get("event_id") == event["id"]
    ]
    assert decisions == ["ignored"]


def _scheduled(fn: InstalledFunction) -> Any:
    # Cloud Scheduler POSTs with an empty body (scheduler.tf).
    response = requests.post(fn.url, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def _fields(answer: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: answer.get(name) for name in names}


def probe_relay_sweep(d: Deployment, fn: InstalledFunction) -> None:
    assert _fields(_scheduled(fn), "customers", "published") == {"customers": 0, "published": 0}


def probe_reevaluate_due(d: Deployment, fn: InstalledFunction) -> None:
    assert _fields(_scheduled(fn), "checked", "changed") == {"checked": 0, "changed": 0}


def probe_reconcile_all(d: Deployment, fn: InstalledFunction) -> None:
    event = _ignored_event()
    d.stripe.seed_event(event, delivered=False)
    summary = _scheduled(fn)
    assert _fields(summary, "caught_up", "checked", "corrected", "failed") == {
        "caught_up": 1,
        "checked": 0,
        "corrected": 0,
        "failed": 0,
    }
    assert d.stripe.requests_to("GET", "/v1/events")
    # Caught up means published onto stripe-events: the installed subscriber gets it.
    _wait(lambda: _processed(d.project.project, event["id"]), 30, "the caught-up event's marker")


def probe_internal_api(d: Deployment, fn: InstalledFunction) -> None:
    response = requests.post(fn.url, json={"account_id": "acct_artifact"}, timeout=10)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def probe_synthetic_probe(d: Deployment, fn: InstalledFunction) -> None:
    # Through the installed webhook, subscriber and relay, back on the probe subscription.
    answer = _scheduled(fn)
    assert _fields(answer, "ok", "stage") == {"ok": True, "stage": "completed"}, answer
    assert answer["latency_ms"] > 0


def probe_entitlements_api(d: Deployment, fn: InstalledFunction) -> None:
    from functions.entrypoints.auth import READ_AUDIENCE, issue_token

    url = f"{fn.url.rstrip('/')}/v1/entitlements/acct_artifact_nobody"
    assert requests.get(url, timeout=10).status_code == 401
    token = issue_token("artifact", AUTH_SECRET, audience=READ_AUDIENCE)
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 404, response.text
    assert "acct_artifact_nobody" in response.json()["message"]


PROBES: dict[str, Probe] = {
    "stripe_webhook": probe_webhook,
    "process_stripe_event": probe_subscriber,
    "relay_sweep": probe_relay_sweep,
    "reevaluate_due": probe_reevaluate_due,
    "reconcile_all": probe_reconcile_all,
    "create_checkout_session": probe_internal_api,
    "create_portal_session": probe_internal_api,
    "change_subscription": probe_internal_api,
    "synthetic_probe": probe_synthetic_probe,
    "entitlements_api": probe_entitlements_api,
}


# -- tests --------------------------------------------------------------------------------


def test_wheel_holds_every_module_and_schema_and_no_tests(built: Built) -> None:
    names = set(zipfile.ZipFile(built.wheel).namelist())
    expected = {
        path.relative_to(built.source).as_posix()
        for package in PACKAGES
        for path in (built.source / package).rglob("*")
        if path.suffix in (".py", ".json")
    }
    assert "main.py" in names
    assert any(n.startswith("schemas/") and n.endswith(".json") for n in expected), expected
    assert sorted(expected - names) == []
    assert sorted(n for n in names if n.split("/")[0] in ("tests", "bench")) == []


def test_every_deployed_entry_point_has_a_probe() -> None:
    assert sorted(ENTRY_POINTS) == sorted(PROBES)


def test_clean_venv_imports_the_installed_package(deployment: Deployment) -> None:
    venv = deployment.installed.venv
    found = imported_from(venv, ["main", *PACKAGES], deployment.env, deployment.run_dir)
    outside = {m: f for m, f in found.items() if not Path(f).is_relative_to(venv.site_packages)}
    assert outside == {}


@pytest.mark.parametrize("target", ENTRY_POINTS)
def test_entry_point_answers_from_the_installed_package(
    deployment: Deployment, target: str
) -> None:
    probe = PROBES.get(target)
    if probe is None:
        pytest.fail(f"Terraform deploys {target}, which has no probe here")
    function = deployment.functions[target]
    try:
        probe(deployment, function)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n--- {target} output ---\n{function.output()[-4000:]}"
        ) from exc


def test_function_processes_loaded_nothing_from_the_checkout(deployment: Deployment) -> None:
    site = deployment.installed.venv.site_packages
    for target, function in deployment.functions.items():
        files = function.loaded_files()
        from_checkout = [str(f) for f in files if f.resolve().is_relative_to(ROOT)]
        assert from_checkout == [], target
        # The trace does cover our code: main.py and the functions package, installed.
        top = {f.relative_to(site).parts[0] for f in files if f.is_relative_to(site)}
        assert "functions" in top, (target, sorted(top))
        main = [
            f
            for f in files
            if f.parent in (site, site / "__pycache__") and f.stem.split(".")[0] == "main"
        ]
        assert main, target
