"""What happens to a subscription over time, with no API call: the clock's side of Stripe.

Per billing period (docs.stripe.com/billing/subscriptions/overview, /webhooks):
- `invoice.upcoming` Settings.upcoming_days before the renewal, a preview without an id,
  billing_reason "upcoming" (stripe/_invoice.py), only for a renewal that will invoice.
- At the period end: a subscription set to cancel ends (`customer.subscription.deleted`);
  a paused one does not advance; a schedule's next phase takes over the items (and a
  schedule whose last phase ended is released, end_behavior=release); otherwise the new
  period starts: `invoice.created` (draft, subscription_cycle) and
  `customer.subscription.updated` (the items' periods, latest_invoice), and about an hour
  later the invoice is finalized and charged (invoice.finalized, invoice.paid /
  invoice.payment_failed), see core.py.
- Trials (docs.stripe.com/billing/subscriptions/trials): `customer.subscription.trial_will_end`
  three days before the end; at the end, with a payment method the subscription turns
  active with a new period and a renewal invoice; without one,
  trial_settings.end_behavior.missing_payment_method decides: pause (status paused,
  `customer.subscription.updated` + `customer.subscription.paused`), cancel (deleted) or
  create_invoice (the invoice fails and the subscription is past_due).
- A first payment that fails leaves the subscription incomplete; 23 hours after creation
  the open invoice is voided and the status becomes incomplete_expired (stripe/
  _subscription.py, `status`). An unfinished Checkout Session expires after 24 hours.
"""

from __future__ import annotations

from tests.support.simulator.clock import DAY, HOUR
from tests.support.simulator.core import Core
from tests.support.simulator.objects import Invoice, Item, Line, Subscription

TRIAL_WILL_END_DAYS = 3
INCOMPLETE_EXPIRES_AFTER = 23 * HOUR
SESSION_EXPIRES_AFTER = 24 * HOUR


class Lifecycle(Core):
    # -- items -------------------------------------------------------------------------

    def _catalog_id(self, price_id: str) -> str:
        return self.world.prices[price_id].metadata.get("dataface_id", price_id)

    def _slot(self, price_id: str) -> str:
        """The item a price fills: "plan" for any plan, else the add-on's id."""
        ident = self._catalog_id(price_id)
        return "plan" if any(p.id == ident for p in self.catalog.plans) else ident

    def _items_for(self, sub: Subscription, target: list[tuple[str, int]]) -> list[Item]:
        """Items for `target` (price, quantity), keeping the id of an item whose slot stays
        (a plan change reprices the plan item, as functions/services/checkout.py asks)."""
        old = {self._slot(i.price): i for i in sub.items}
        items = []
        for price, qty in target:
            kept = old.pop(self._slot(price), None)
            item_id = kept.id if kept else self.ids.new("si", 14)
            created = kept.created if kept else self.now
            items.append(Item(item_id, price, qty, created))
        return items

    # -- per period --------------------------------------------------------------------

    def _plan_period(self, sub: Subscription) -> None:
        """Queue what the current period will bring."""
        end = sub.period_end
        if sub.status == "trialing" and sub.trial_end == end:
            warn = end - TRIAL_WILL_END_DAYS * DAY
            if warn > self.now:
                self.clock.at(
                    warn, f"trial_will_end {sub.id}", lambda: self._trial_warn(sub.id, end)
                )
        days = self.settings.upcoming_days
        if days is not None and end - days * DAY > self.now:
            self.clock.at(
                end - days * DAY, f"upcoming {sub.id}", lambda: self._upcoming(sub.id, end)
            )
        self.clock.at(end, f"period end {sub.id}", lambda: self._period_over(sub.id, end))

    def _trial_warn(self, sub_id: str, end: int) -> None:
        sub = self.world.subscriptions[sub_id]
        if sub.status == "trialing" and sub.trial_end == end:
            self.emitter.emit("customer.subscription.trial_will_end", sub)

    def _will_invoice(self, sub: Subscription, end: int) -> bool:
        if sub.status not in ("active", "trialing", "past_due") or sub.period_end != end:
            return False
        if sub.cancel_at_period_end or (sub.cancel_at is not None and sub.cancel_at <= end):
            return False
        if sub.pause_collection and sub.pause_collection[0] == "void":
            return False  # "Stripe won't send any upcoming invoice emails or webhooks"
        customer = self.world.customers[sub.customer]
        return not (
            sub.status == "trialing"
            and customer.card == "none"
            and sub.missing_payment_method != "create_invoice"
        )

    def _upcoming(self, sub_id: str, end: int) -> None:
        sub = self.world.subscriptions[sub_id]
        if not self._will_invoice(sub, end):
            return
        nxt = self._next_period(sub, end)
        phase = self._next_phase(sub, end)
        if phase is None:
            lines = self._period_lines(sub, end, nxt, prefix="il_tmp")
        else:
            lines = [self._line(p, q, end, nxt, None, "il_tmp") for p, q in phase]
        preview = Invoice(
            id="",
            customer=sub.customer,
            subscription=sub.id,
            billing_reason="upcoming",
            created=end,
            lines=[*sub.pending, *lines],
            period_start=sub.period_start,
            period_end=end,
            next_payment_attempt=end + HOUR,
        )
        self.emitter.emit("invoice.upcoming", preview, upcoming=True)

    def _next_phase(self, sub: Subscription, end: int) -> tuple[tuple[str, int], ...] | None:
        sched = self.world.schedules.get(sub.schedule or "")
        if sched is None or sched.status != "active" or sched.current + 1 >= len(sched.phases):
            return None
        return (
            sched.phases[sched.current + 1].items
            if sched.phases[sched.current].end == end
            else None
        )

    def _period_over(self, sub_id: str, end: int) -> None:
        sub = self.world.subscriptions[sub_id]
        if not sub.live or sub.period_end != end or sub.status == "paused":
            return
        if sub.cancel_at_period_end or (sub.cancel_at is not None and sub.cancel_at <= end):
            self._end(sub, reason="cancellation_requested")
        elif sub.status == "trialing":
            self._trial_over(sub)
        else:
            self._flip_schedule(sub, end)
            self._renew(sub, end)

    def _flip_schedule(self, sub: Subscription, end: int) -> None:
        sched = self.world.schedules.get(sub.schedule or "")
        if sched is None or sched.status != "active" or sched.phases[sched.current].end != end:
            return
        if sched.current + 1 < len(sched.phases):
            before = self.emitter.render(sched)
            sched.current += 1
            sub.items = self._items_for(sub, list(sched.phases[sched.current].items))
            self.emitter.emit("subscription_schedule.updated", sched, before=before)
            return
        sched.status, sched.released_at, sched.released_subscription = "released", self.now, sub.id
        sub.schedule = None
        self.emitter.emit("subscription_schedule.released", sched)

    def _renew(self, sub: Subscription, end: int) -> None:
        before = self.emitter.render(sub)
        previous_start = sub.period_start
        sub.period_start, sub.period_end = end, self._next_period(sub, end)
        lines: list[Line] = [
            *sub.pending,
            *self._period_lines(sub, sub.period_start, sub.period_end),
        ]
        sub.pending = []
        inv = self._new_invoice(sub, "subscription_cycle", lines, (previous_start, end))
        if not sub.pause_collection or sub.pause_collection[0] == "mark_uncollectible":
            inv.finalizes_at = self.now + HOUR
        self.emitter.emit("invoice.created", inv)
        self.emitter.emit("customer.subscription.updated", sub, before=before)
        self._collect_later(sub, inv)
        self._plan_period(sub)

    def _collect_later(self, sub: Subscription, inv: Invoice) -> None:
        """Pause collection (docs.stripe.com/billing/subscriptions/pause-payment): void
        voids at once, keep_as_draft leaves a draft, mark_uncollectible finalizes first."""
        pause = sub.pause_collection
        if pause and pause[0] == "void":
            self._finalize(inv)
            if inv.status == "open":
                self._void(inv)
        elif pause and pause[0] == "keep_as_draft":
            inv.auto_advance = False
        else:
            self._finalize_later(inv)

    # -- trials ------------------------------------------------------------------------

    def _trial_over(self, sub: Subscription) -> None:
        customer = self.world.customers[sub.customer]
        end = sub.period_end
        if customer.card != "none" or sub.missing_payment_method == "create_invoice":
            before = self.emitter.render(sub)
            self._flip_schedule(sub, end)
            sub.status, sub.period_start = "active", end
            sub.period_end = self._next_period(sub, end)
            lines = self._period_lines(sub, sub.period_start, sub.period_end)
            inv = self._new_invoice(sub, "subscription_cycle", lines, (sub.trial_start or end, end))
            inv.finalizes_at = self.now + HOUR
            self.emitter.emit("invoice.created", inv)
            self.emitter.emit("customer.subscription.updated", sub, before=before)
            self._finalize_later(inv)
            self._plan_period(sub)
        elif sub.missing_payment_method == "pause":
            before = self.emitter.render(sub)
            sub.status, sub.paused = "paused", ("trial_end_without_payment_method", self.now)
            self.emitter.emit("customer.subscription.updated", sub, before=before)
            self.emitter.emit("customer.subscription.paused", sub)
        else:
            self._end(sub, reason=None)

    # -- expiries ----------------------------------------------------------------------

    def _expire_incomplete(self, sub_id: str) -> None:
        sub = self.world.subscriptions[sub_id]
        if sub.status != "incomplete":
            return
        for inv in self._open_invoices(sub):
            self._void(inv)
        before = self.emitter.render(sub)
        sub.status, sub.ended_at, sub.canceled_at = "incomplete_expired", self.now, self.now
        self.emitter.emit("customer.subscription.updated", sub, before=before)

    def _expire_session(self, session_id: str) -> None:
        session = self.world.sessions[session_id]
        if session.status == "open":
            session.status = "expired"
            self.emitter.emit("checkout.session.expired", session)

    def _cancel_due(self, sub_id: str, at: int) -> None:
        sub = self.world.subscriptions[sub_id]
        if sub.live and sub.cancel_at == at:
            self._end(sub, reason="cancellation_requested")

    def _collection_resumes(self, sub_id: str, at: int) -> None:
        sub = self.world.subscriptions[sub_id]
        if sub.live and sub.pause_collection and sub.pause_collection[1] == at:
            before = self.emitter.render(sub)
            sub.pause_collection = None
            self.emitter.emit("customer.subscription.updated", sub, before=before)
