"""Terraform, the code's configuration and the local emulator topology must not drift.

infra/terraform is parsed with python-hcl2 and compared with functions/config.py (resource
names, environment variables per function), infra/local/topology.py (what `make dev`
provisions), the Firestore adapter (TTL field, indexed queries), main.py (entry points)
and the log lines the code emits (what the log-based metrics count).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
from pydantic_settings import BaseSettings

from functions import config
from functions.config import (
    CheckoutSettings,
    CommonSettings,
    ProbeSettings,
    ReadApiSettings,
    StripeApiSettings,
    SubscriberSettings,
    WebhookSettings,
)
from schemas.documents import FailureRecord, OutboxEntry, ProcessedEvent

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "infra" / "terraform"


def _function_settings() -> dict[str, tuple[type[BaseSettings], ...]]:
    """Which settings each deployed function loads (the *_settings() accessors it calls).

    Imported here, not at module level, so a broken function module fails these tests
    only. A function added to Terraform without an entry here fails
    test_every_function_has_known_settings.
    """
    from functions.entrypoints.auth import AuthSettings
    from functions.entrypoints.oidc import OidcSettings

    api = (CheckoutSettings, AuthSettings)
    return {
        "stripe_webhook": (WebhookSettings,),
        # StripeApiSettings: thin notifications are applied from a read of their object.
        "process_stripe_event": (SubscriberSettings, StripeApiSettings, OidcSettings),
        "relay_sweep": (SubscriberSettings, OidcSettings),
        "reevaluate_due": (SubscriberSettings, OidcSettings),
        "reconcile_all": (SubscriberSettings, StripeApiSettings, OidcSettings),
        "create_checkout_session": api,
        "create_portal_session": api,
        "change_subscription": api,
        "entitlements_api": (ReadApiSettings, AuthSettings),
        "synthetic_probe": (ProbeSettings,),
    }


SECRET_ENV = {"STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY", "INTERNAL_AUTH_SECRET"}

RUNBOOKS = {
    "dead-letter-backlog.md",
    "signature-failures.md",
    "webhook-5xx.md",
    "relay-lag.md",
    "anomalies.md",
    "synthetic-probe.md",
}

PUBSUB_MAX_MESSAGE_BYTES = 10_000_000
EVENTARC_MAX_EVENT_BYTES = 512 * 1024


def _clean(value: Any) -> Any:
    """Normalise python-hcl2 output across versions: unquote strings, drop markers."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse(path: Path) -> dict[str, Any]:
    try:
        from hcl2 import SerializationOptions

        opts = SerializationOptions(with_comments=False)
        return _clean(hcl2.loads(path.read_text(), serialization_options=opts))  # type: ignore[no-any-return]
    except ImportError:  # python-hcl2 < 7 has no options and strips quotes itself
        return _clean(hcl2.loads(path.read_text()))  # type: ignore[no-any-return]


@dataclass
class Terraform:
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)

    _REF = re.compile(r"^\$\{([a-z0-9_.\[\]\"]+)\}$")

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        return self.resources[rtype][name]

    def resolve(self, value: Any) -> Any:
        """Follow a bare reference (${local.a.b}, ${var.x}, ${type.name.attr}) to its value.

        Anything more complex is returned unchanged, so a comparison with the expected
        literal fails and shows the expression.
        """
        if not isinstance(value, str):
            return value
        match = self._REF.match(value)
        if not match:
            return value
        parts = match.group(1).split(".")
        if parts[0] == "local":
            node: Any = self.locals
            for part in parts[1:]:
                node = node[part]
            return self.resolve(node)
        if parts[0] == "var":
            return self.resolve(self.variables[parts[1]].get("default"))
        if len(parts) == 3 and parts[0] in self.resources:
            body = self.resources[parts[0]][parts[1]]
            # A topic's id and name both identify it for our comparisons.
            attr = "name" if parts[2] in ("id", "name") else parts[2]
            return self.resolve(body[attr])
        return value


def _load_terraform() -> Terraform:
    tf = Terraform()
    files = sorted(TF_DIR.glob("*.tf"))
    assert files, f"no Terraform files in {TF_DIR}"
    for path in files:
        doc = _parse(path)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    tf.resources.setdefault(rtype, {})[name] = body
        for block in doc.get("locals", []):
            tf.locals.update(block)
        for block in doc.get("variable", []):
            tf.variables.update(block)
    return tf


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return _load_terraform()


def _block(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    blocks = body.get(name)
    if not blocks:
        return None
    assert len(blocks) == 1, f"expected one {name} block"
    return blocks[0]  # type: ignore[no-any-return]


def _duration_seconds(value: str) -> int:
    assert value.endswith("s"), value
    return int(float(value[:-1]))


def _env_fields(*classes: type[BaseSettings]) -> dict[str, bool]:
    """Env var name -> whether the field is required, over the given settings classes."""
    fields: dict[str, bool] = {}
    for cls in classes:
        for name, info in cls.model_fields.items():
            fields[name.upper()] = fields.get(name.upper(), False) or info.is_required()
    return fields


# --- resource names -----------------------------------------------------------------


def test_topic_names_match_config(tf: Terraform) -> None:
    topics = {n: tf.resolve(b["name"]) for n, b in tf.resources["google_pubsub_topic"].items()}
    assert topics == {
        "stripe_events": config.DEFAULT_STRIPE_EVENTS_TOPIC,
        "entitlements": config.DEFAULT_ENTITLEMENTS_TOPIC,
        "dead_letter": config.DEFAULT_DEAD_LETTER_TOPIC,
    }
    subs = tf.resources["google_pubsub_subscription"]
    assert {tf.resolve(b["name"]) for b in subs.values()} == {
        config.DEFAULT_STRIPE_EVENTS_SUBSCRIPTION,
        config.DEFAULT_DEAD_LETTER_SUBSCRIPTION,
        config.DEFAULT_PROBE_SUBSCRIPTION,
    }


def test_terraform_topology_matches_local_topology(tf: Terraform) -> None:
    from infra.local.topology import desired_topology

    settings = CommonSettings(google_cloud_project="drift-test")
    local = desired_topology(settings, subscriber_push_endpoint="http://127.0.0.1:1/push")

    tf_topics = {tf.resolve(b["name"]) for b in tf.resources["google_pubsub_topic"].values()}
    assert tf_topics == {t.name for t in local.topics}

    local_subs = {s.name: s for s in local.subscriptions}
    tf_subs = {
        tf.resolve(b["name"]): b for b in tf.resources["google_pubsub_subscription"].values()
    }
    assert set(tf_subs) == set(local_subs)

    for name, body in tf_subs.items():
        want = local_subs[name]
        assert tf.resolve(body["topic"]) == want.topic, name
        assert bool(body.get("enable_message_ordering", False)) == want.enable_message_ordering, (
            name
        )
        assert body["ack_deadline_seconds"] == want.ack_deadline_seconds, name
        tf_filter = body.get("filter")
        assert (tf_filter.replace('\\"', '"') if tf_filter else None) == want.filter, name
        # Same delivery path in both places: push to the subscriber, or pull.
        assert (_block(body, "push_config") is not None) == (want.push_endpoint is not None), name

        dlp = _block(body, "dead_letter_policy")
        if want.dead_letter_topic is None:
            assert dlp is None, name
        else:
            assert dlp is not None, name
            assert tf.resolve(dlp["dead_letter_topic"]) == want.dead_letter_topic, name
            assert tf.resolve(dlp["max_delivery_attempts"]) == want.max_delivery_attempts, name

        retry = _block(body, "retry_policy")
        if want.minimum_backoff_seconds is None:
            assert retry is None, name
        else:
            assert retry is not None, name
            backoff = (
                _duration_seconds(retry["minimum_backoff"]),
                _duration_seconds(retry["maximum_backoff"]),
            )
            assert backoff == (want.minimum_backoff_seconds, want.maximum_backoff_seconds), name

        assert (
            _duration_seconds(body["message_retention_duration"]) == want.message_retention_seconds
        ), name


def test_local_stack_runs_the_same_entry_points(tf: Terraform) -> None:
    from infra.local.stack import SUBSCRIBER_TARGET, WEBHOOK_TARGET

    functions = tf.locals["functions"]
    assert functions["stripe_webhook"]["entry_point"] == WEBHOOK_TARGET
    assert functions["process_stripe_event"]["entry_point"] == SUBSCRIBER_TARGET


def test_push_subscription_targets_the_subscriber_with_oidc(tf: Terraform) -> None:
    sub = tf.resource("google_pubsub_subscription", "stripe_events")
    push = _block(sub, "push_config")
    assert push is not None
    assert 'fn["process_stripe_event"]' in push["push_endpoint"]
    oidc = _block(push, "oidc_token")
    assert oidc is not None
    # The subscriber's deterministic run.app URL, which it checks itself (row 10 below).
    assert oidc["audience"] == '${local.run_url["process_stripe_event"]}'
    # The push identity may invoke the subscriber and nothing else.
    invoker = tf.resource("google_cloud_run_v2_service_iam_member", "subscriber_push")
    assert invoker["member"] == "${google_service_account.pubsub_push.member}"
    assert oidc["service_account_email"] == "${google_service_account.pubsub_push.email}"


def test_largest_accepted_event_fits_the_push_path(tf: Terraform) -> None:
    """The documented topology choice: push (Pub/Sub's 10 MB limit), not Eventarc (512 KB)."""
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    assert "event_trigger" not in fn, "an Eventarc trigger would cap events at 512 KB"
    webhook_env = tf.locals["functions"]["stripe_webhook"]["env"]
    max_body = int(webhook_env["WEBHOOK_MAX_BODY_BYTES"])
    assert max_body == WebhookSettings.model_fields["webhook_max_body_bytes"].default
    assert max_body > EVENTARC_MAX_EVENT_BYTES  # why Eventarc is not an option
    assert max_body < PUBSUB_MAX_MESSAGE_BYTES


# --- functions and their environment -----------------------------------------------


def test_every_function_has_known_settings(tf: Terraform) -> None:
    assert set(tf.locals["functions"]) == set(_function_settings())


def test_function_env_vars_are_settings_fields(tf: Terraform) -> None:
    common_env = tf.locals["common_env"]
    settings = _function_settings()
    for fn, spec in tf.locals["functions"].items():
        known = _env_fields(*settings[fn])
        env = tf.resolve(spec["env"])
        provided = set(common_env) | set(env) | set(spec["secrets"])
        unknown = provided - set(known)
        assert not unknown, f"{fn}: env vars no settings class reads: {sorted(unknown)}"
        missing = {name for name, required in known.items() if required} - provided
        assert not missing, f"{fn}: required settings not provided: {sorted(missing)}"
        overlap = set(env) & set(spec["secrets"])
        assert not overlap, f"{fn}: set both as plain env and secret: {overlap}"


def test_secrets_are_never_plain_env(tf: Terraform) -> None:
    assert not SECRET_ENV & set(tf.locals["common_env"])
    for fn, spec in tf.locals["functions"].items():
        assert not SECRET_ENV & set(tf.resolve(spec["env"])), fn
        for env_name, secret_key in spec["secrets"].items():
            assert env_name in SECRET_ENV, (fn, env_name)
            assert secret_key in tf.locals["secrets"], (fn, secret_key)
    # Each function reads only the secrets it mounts.
    assert set(tf.locals["functions"]["stripe_webhook"]["secrets"]) == {"STRIPE_WEBHOOK_SECRET"}
    # The subscriber reads the objects thin notifications name, and nothing else secret.
    assert set(tf.locals["functions"]["process_stripe_event"]["secrets"]) == {"STRIPE_API_KEY"}


def test_common_env_names_resolve_to_config_defaults(tf: Terraform) -> None:
    env = tf.locals["common_env"]
    expected = {
        "STRIPE_EVENTS_TOPIC": config.DEFAULT_STRIPE_EVENTS_TOPIC,
        "ENTITLEMENTS_TOPIC": config.DEFAULT_ENTITLEMENTS_TOPIC,
        "DEAD_LETTER_TOPIC": config.DEFAULT_DEAD_LETTER_TOPIC,
        "STRIPE_EVENTS_SUBSCRIPTION": config.DEFAULT_STRIPE_EVENTS_SUBSCRIPTION,
        "DEAD_LETTER_SUBSCRIPTION": config.DEFAULT_DEAD_LETTER_SUBSCRIPTION,
    }
    assert {k: tf.resolve(env[k]) for k in expected} == expected


def test_delivery_attempts_agree_everywhere(tf: Terraform) -> None:
    from infra.local.topology import desired_topology

    sub = tf.resource("google_pubsub_subscription", "stripe_events")
    dlp = _block(sub, "dead_letter_policy")
    assert dlp is not None
    in_subscription = tf.resolve(dlp["max_delivery_attempts"])
    subscriber_env = tf.locals["functions"]["process_stripe_event"]["env"]
    in_env = tf.resolve(subscriber_env["MAX_DELIVERY_ATTEMPTS"])
    default = SubscriberSettings.model_fields["max_delivery_attempts"].default
    local = desired_topology(
        CommonSettings(google_cloud_project="drift-test"), subscriber_push_endpoint="http://x"
    )
    local_attempts = {s.max_delivery_attempts for s in local.subscriptions if s.dead_letter_topic}
    assert in_subscription == in_env == default
    assert local_attempts == {default}


def test_entry_points_exist_in_main(tf: Terraform) -> None:
    tree = ast.parse((ROOT / "main.py").read_text())
    defined = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    } | {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    wanted = {spec["entry_point"] for spec in tf.locals["functions"].values()}
    assert wanted <= defined, f"missing in main.py: {sorted(wanted - defined)}"


def test_only_the_webhook_is_public(tf: Terraform) -> None:
    """Compensating control for the CKV_GCP_124 skip on the for_each function block."""
    ingress = {fn: tf.resolve(spec["ingress"]) for fn, spec in tf.locals["functions"].items()}
    assert ingress.pop("stripe_webhook") == "ALLOW_ALL"
    assert set(ingress.values()) == {"ALLOW_INTERNAL_ONLY"}
    public = [
        name
        for rtype, named in tf.resources.items()
        if rtype.endswith("_iam_member")
        for name, body in named.items()
        if body.get("member") in ("allUsers", "allAuthenticatedUsers")
    ]
    assert public == ["webhook_public"]
    webhook_public = tf.resource("google_cloud_run_v2_service_iam_member", "webhook_public")
    assert 'fn["stripe_webhook"]' in webhook_public["name"]


def test_scheduled_functions_are_invoked_by_the_scheduler_only(tf: Terraform) -> None:
    scheduled = set(tf.locals["scheduled"])
    assert scheduled == {"relay_sweep", "reevaluate_due", "reconcile_all", "synthetic_probe"}
    invoker = tf.resource("google_cloud_run_v2_service_iam_member", "scheduler")
    assert invoker["for_each"] == "${local.scheduled}"
    assert invoker["member"] == "${google_service_account.scheduler.member}"
    job = tf.resource("google_cloud_scheduler_job", "job")
    assert job["for_each"] == "${local.scheduled}"
    # Nothing else invokes them: only Scheduler's identity is granted run.invoker.
    for name, body in tf.resources["google_cloud_run_v2_service_iam_member"].items():
        if name != "scheduler":
            assert not any(f'fn["{fn}"]' in body["name"] for fn in scheduled), name


def test_one_service_account_per_function(tf: Terraform) -> None:
    sa = tf.resource("google_service_account", "fn")
    assert sa["for_each"] == "${local.functions}"
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    service = _block(fn, "service_config")
    assert service is not None
    assert service["service_account_email"] == "${google_service_account.fn[each.key].email}"
    # No function SA gets a role at project level except Firestore, narrowed by condition.
    for name, body in tf.resources["google_project_iam_member"].items():
        if "google_service_account.fn" in body["member"]:
            assert name == "firestore"
            condition = _block(body, "condition")
            assert condition is not None
            assert "resource.name" in condition["expression"]


# --- Firestore --------------------------------------------------------------------------


def test_firestore_ttl_and_indexes_match_the_code(tf: Terraform) -> None:
    from functions.adapters import firestore_repository

    ttl = tf.resource("google_firestore_field", "processed_events_ttl")
    assert tf.resolve(ttl["collection"]) == firestore_repository.PROCESSED
    assert ttl["field"] in ProcessedEvent.model_fields
    assert _block(ttl, "ttl_config") is not None

    indexes = {
        (tf.resolve(b["collection"]), b["query_scope"]): [
            (f["field_path"], f["order"]) for f in b["fields"]
        ]
        for b in tf.resources["google_firestore_index"].values()
    }
    outbox = indexes[(firestore_repository.OUTBOX, "COLLECTION_GROUP")]
    assert outbox == [("sent", "ASCENDING"), ("created_at", "ASCENDING")]
    assert {f for f, _ in outbox} <= set(OutboxEntry.model_fields)
    failures = indexes[(firestore_repository.FAILURES, "COLLECTION")]
    assert failures == [("dead_lettered", "ASCENDING"), ("last_failed_at", "DESCENDING")]
    assert {f for f, _ in failures} <= set(FailureRecord.model_fields)


# --- monitoring ---------------------------------------------------------------------


def _code_log_vocabulary() -> tuple[set[str], set[str]]:
    """String constants and keyword-argument names used anywhere under functions/ and main.py."""
    strings: set[str] = set()
    keywords: set[str] = set()
    for path in [*sorted((ROOT / "functions").rglob("*.py")), ROOT / "main.py"]:
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
            elif isinstance(node, ast.keyword) and node.arg:
                keywords.add(node.arg)
    return strings, keywords


def test_log_metrics_count_lines_the_code_writes(tf: Terraform) -> None:
    filters = [spec["filter"] for spec in tf.locals["counters"].values()]
    filters += [spec["filter"] for spec in tf.locals["distributions"].values()]
    filters.append(tf.locals["webhook_logs"])
    filters.append(tf.locals["subscriber_logs"])
    text = " ".join(filters)
    text += " " + " ".join(
        field for spec in tf.locals["counters"].values() for field in spec["labels"].values()
    )
    text += " " + " ".join(spec["field"] for spec in tf.locals["distributions"].values())

    messages = set(re.findall(r'jsonPayload\.message=\\?"([a-z_]+)', text))
    fields = set(re.findall(r"jsonPayload\.([a-z_]+)", text)) - {"message"}
    assert messages == {
        "webhook_request",
        "event_processed",
        "event_failed",
        "anomaly_recorded",
        "anomaly_unresolved",
        "outbox_relayed",
        "outbox_relay_failed",
        "probe_completed",
    }
    strings, keywords = _code_log_vocabulary()
    assert messages <= strings, f"no code logs {sorted(messages - strings)}"
    vocabulary = strings | keywords
    assert fields <= vocabulary, f"no code logs fields {sorted(fields - vocabulary)}"


def test_every_alert_links_its_runbook(tf: Terraform) -> None:
    policies = tf.resources["google_monitoring_alert_policy"]
    linked = set()
    for name, body in policies.items():
        doc = _block(body, "documentation")
        assert doc is not None, name
        found = re.findall(r"\$\{local\.runbook\}/([a-z0-9-]+\.md)", doc["content"])
        assert len(found) == 1, f"{name} should link exactly one runbook"
        linked.add(found[0])
        assert body["notification_channels"] == "${var.notification_channels}", name
    assert linked == RUNBOOKS
    missing = sorted(n for n in linked if not (ROOT / "runbooks" / n).is_file())
    assert not missing, f"alerts link runbooks that do not exist: {missing}"
    assert set(policies) >= {
        "dead_letter_backlog",
        "oldest_unacked",
        "webhook_5xx",
        "webhook_4xx",
        "relay_lag",
        "anomalies",
    }


def test_pubsub_alerts_watch_the_right_subscriptions(tf: Terraform) -> None:
    def condition(policy: str) -> dict[str, Any]:
        body = tf.resource("google_monitoring_alert_policy", policy)
        cond = _block(body, "conditions")
        assert cond is not None
        threshold = _block(cond, "condition_threshold")
        assert threshold is not None
        return threshold

    dead = condition("dead_letter_backlog")
    assert "google_pubsub_subscription.dead_letter.name" in dead["filter"]
    assert "subscription/num_undelivered_messages" in dead["filter"]
    assert dead["threshold_value"] == 0
    old = condition("oldest_unacked")
    assert "google_pubsub_subscription.stripe_events.name" in old["filter"]
    assert "subscription/oldest_unacked_message_age" in old["filter"]


def test_every_pushed_or_scheduled_function_checks_the_token_its_caller_requests(
    tf: Terraform,
) -> None:
    """Issue 17 row 10: OIDC on by default in the deployed config, with the audience and
    service account the push subscription and the scheduler jobs put in their tokens."""
    from functions.entrypoints.oidc import OidcSettings

    accounts = tf.locals["invoker_accounts"]
    fields = {name.upper() for name in OidcSettings.model_fields}
    expected = {
        "process_stripe_event",
        "relay_sweep",
        "reevaluate_due",
        "reconcile_all",
        "synthetic_probe",
    }
    assert set(accounts) == expected
    # A for expression: python-hcl2 gives its text, which must set both fields per caller.
    oidc_env = tf.locals["oidc_env"]
    assert "for fn, account in local.invoker_accounts" in oidc_env
    assert "OIDC_AUDIENCE = local.run_url[fn]" in oidc_env
    assert "OIDC_SERVICE_ACCOUNTS = account" in oidc_env
    assert {"OIDC_AUDIENCE", "OIDC_SERVICE_ACCOUNTS"} <= fields
    run_url = tf.locals["run_url"]
    assert "for fn, f in local.functions" in run_url
    assert "https://${f.name}-${data.google_project.this.number}.${var.region}.run.app" in run_url
    push = _block(
        _block(tf.resource("google_pubsub_subscription", "stripe_events"), "push_config"),
        "oidc_token",
    )
    assert push is not None
    assert push["audience"] == '${local.run_url["process_stripe_event"]}'
    assert push["service_account_email"] == accounts["process_stripe_event"]
    jobs = [
        tf.resource("google_cloud_scheduler_job", name) for name in ("job", "reconcile_anomalies")
    ]
    for job in jobs:
        token = _block(_block(job, "http_target"), "oidc_token")
        assert token is not None
        assert token["audience"] in (
            "${local.run_url[each.key]}",
            '${local.run_url["reconcile_all"]}',
        )
        assert token["service_account_email"] == "${google_service_account.scheduler.email}"
    assert {accounts[k] for k in expected - {"process_stripe_event"}} == {
        "${google_service_account.scheduler.email}"
    }
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    env_expr = _block(fn, "service_config")["environment_variables"]  # type: ignore[index]
    assert "lookup(local.oidc_env, each.key, {})" in env_expr
