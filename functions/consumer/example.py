"""An example downstream service: cold start from the read API, then follow the stream.

    python -m functions.consumer.example --project P --read-api URL [--seconds 30]

It creates its own ordered subscription (as a new service would), loads every customer,
prints one line per change it applies, and a summary per account at the end. Needs
INTERNAL_AUTH_SECRET (to mint read tokens) and, locally, the emulator host variables
`make dev` prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Mapping

from functions.consumer import Applied, EntitlementsCache, ReadApiClient, follow
from functions.entrypoints.auth import READ_AUDIENCE, issue_token


class PrintingCache(EntitlementsCache):
    def apply_message(self, data: bytes, attributes: Mapping[str, str]) -> Applied:
        outcome = super().apply_message(data, attributes)
        customer = attributes.get("customer_id", "?")
        print(f"{outcome.value:9} {customer} v{attributes.get('version', '?')}", flush=True)
        return outcome


def subscribe(project: str, topic: str) -> str:
    from google.cloud import pubsub_v1  # noqa: PLC0415 - the example's own subscription

    client = pubsub_v1.SubscriberClient()
    name = f"example-consumer-{uuid.uuid4().hex[:8]}"
    client.create_subscription(
        request={
            "name": client.subscription_path(project, name),
            "topic": f"projects/{project}/topics/{topic}",
            "enable_message_ordering": True,
        }
    )
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--read-api", required=True, help="base URL of entitlements-api")
    parser.add_argument("--topic", default="entitlement-changed")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to follow")
    args = parser.parse_args(argv)
    secret = os.environ.get("INTERNAL_AUTH_SECRET")
    if not secret:
        print("INTERNAL_AUTH_SECRET is not set (the read API's token key)", file=sys.stderr)
        return 2
    cache = PrintingCache()
    stream = follow(args.project, subscribe(args.project, args.topic), cache)
    reader = ReadApiClient(
        args.read_api, lambda: issue_token("example-consumer", secret, audience=READ_AUDIENCE)
    )
    print(f"loaded {cache.load(reader.every())} customers from the read API", flush=True)
    time.sleep(args.seconds)
    stream.cancel()
    for state in sorted(cache.states(), key=lambda s: s.customer_id):
        who = state.account_id or f"({state.customer_id}, not linked)"
        plan = state.entitlements.plan or "-"
        print(
            f"{who:32} v{state.version:<3} {state.access.value:10} {plan:9} "
            f"seats={state.entitlements.limits.seats} slack={cache.can(who, 'slack_alerts')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
