"""The one way a change reaches a customer: decide, commit, relay; and one failure rule.

Every caller (the subscriber, re-evaluation, reconcile, overrides) goes through
`Applier.apply`, and every job over many customers goes through
`functions.services.batch.per_customer`:

- The commit fails: TransientError propagates. Nothing was written; the whole operation
  may be retried (a message is redelivered, a job customer counts as failed).
- The commit succeeds but the relay fails: RelayDeferred (a TransientError) propagates,
  carrying what was committed. Nothing is lost: the outbox entry stays unsent and the
  redelivery (its duplicate still relays), the customer's next change or the sweep
  publishes it. A message handler lets it propagate; a job counts the customer as failed;
  an operator command reports "committed, publish deferred" from `committed`.
- In a job, one customer's failure is logged and counted and the others go on; the job
  reports an outage (HTTP 500) only when customers failed and none succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.errors import RelayDeferred
from functions.ports import ApplyResult, BillingRepository, DecideFn, Operation
from functions.services.relay import OutboxRelay


@dataclass(frozen=True)
class Applied:
    result: ApplyResult
    published: int = 0


class Applier:
    def __init__(
        self, repo: BillingRepository, relay: OutboxRelay, *, marker_ttl_days: int
    ) -> None:
        self._repo = repo
        self._relay = relay
        self._ttl = marker_ttl_days

    @property
    def repo(self) -> BillingRepository:
        return self._repo

    @property
    def relay(self) -> OutboxRelay:
        return self._relay

    def apply(self, op: Operation, decide: DecideFn | None) -> Applied:
        """Commit `decide` once per `op.op_id`, then publish what the customer has unsent.

        The relay also runs on a duplicate: a redelivery is how a failed relay gets
        another go.
        """
        result = self._repo.apply(op, decide, marker_ttl_days=self._ttl)
        if not op.customer_id:
            return Applied(result)
        try:
            published = self._relay.relay_customer(op.customer_id, result.pending)
        except Exception as exc:
            raise RelayDeferred(
                f"customer {op.customer_id}: {op.op_id} is committed, its publish is "
                f"deferred to the sweep: {type(exc).__name__}: {exc}",
                committed=Applied(result),
            ) from exc
        return Applied(result, published)
