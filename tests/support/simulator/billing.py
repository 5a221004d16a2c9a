"""The simulator's API: what a customer, our backend or an operator does, and what it shows.

Every action happens at `now` and emits, in one second, the events Stripe emits for it;
`advance`/`advance_to` then run what the clock brings (lifecycle.py). Plans and add-ons
are named by catalog id ("team", "lineage"); `seats` is the extra-seat quantity.
Impossible actions raise SimulatorError, as Stripe answers 400.

Sources, per action:
- subscribe: Checkout in subscription mode (docs.stripe.com/payments/checkout/free-trials,
  /billing/subscriptions/overview): the subscription starts incomplete, its first invoice is
  finalized and charged at once and a paid one makes it active; a trial starts trialing with
  a $0 invoice; payment_method_collection=if_required lets a trial start without a card.
- pause / resume: the Pause endpoint (docs.stripe.com/billing/subscriptions/pause; changelog
  2026-09-30.endive): status paused, status_details.paused, customer.subscription.paused and
  .updated; resume defaults to billing_cycle_anchor=now with a resumption invoice charged at
  once: paid -> active, failed -> past_due (payment_behavior=resume_on_payment_attempt).
- pause_collection: status stays active (docs.stripe.com/billing/subscriptions/pause-payment).
- change_items / upgrade: proration_behavior=always_invoice invoices the proration at once
  (billing_reason subscription_update), create_prorations adds it to the next invoice
  (docs.stripe.com/api/subscriptions/update).
- downgrade_at_period_end: a subscription schedule from the subscription, phase two holds the
  target with proration_behavior=none, end_behavior=release (functions/services/checkout.py).
- cancel: cancel_at_period_end / cancel_at end the subscription then; cancel_now at once;
  all emit customer.subscription.deleted when it ends (docs.stripe.com/billing/subscriptions/
  cancel). `canceled_at` is the request time with cancel_at_period_end (stripe/
  _subscription.py, `canceled_at`); the simulator does the same for cancel_at (a choice).
- transfer_price: a new Price takes the lookup key (transfer_lookup_key=true), the old one
  keeps billing its subscriptions with lookup_key null and is archived (active=false).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from schemas.catalog import Catalog
from statemachine.catalog import CATALOG
from tests.support.simulator.lifecycle import (
    INCOMPLETE_EXPIRES_AFTER,
    SESSION_EXPIRES_AFTER,
    Lifecycle,
)
from tests.support.simulator.objects import (
    Card,
    CheckoutSession,
    CollectionPause,
    Customer,
    Invoice,
    Line,
    MissingPaymentMethod,
    Phase,
    Price,
    Proration,
    Schedule,
    Settings,
    Shape,
    SimulatorError,
    Subscription,
)
from tests.support.simulator.serve import load_into, serve
from tests.support.simulator.shapes import Json

if TYPE_CHECKING:
    from tests.support.stripe_server import State, StripeServer

START = 1_767_225_600  # 2026-01-01T00:00:00Z, as infra/local/scenarios.py


class Simulator(Lifecycle):
    def __init__(
        self,
        *,
        seed: int = 0,
        start: int = START,
        shape: Shape = "current",
        settings: Settings | None = None,
        catalog: Catalog = CATALOG,
    ) -> None:
        super().__init__(
            seed=seed, start=start, shape=shape, settings=settings or Settings(), catalog=catalog
        )

    # -- time --------------------------------------------------------------------------

    def advance(self, seconds: int) -> None:
        self.clock.run_until(self.now + seconds)

    def advance_to(self, when: int) -> None:
        self.clock.run_until(when)

    def call_at(self, when: int, label: str, fn: Callable[[], None]) -> None:
        """Run `fn` at simulated time `when` (a story's next step, say)."""
        self.clock.at(when, label, fn)

    # -- customers and cards -----------------------------------------------------------

    def create_customer(self, account_id: str, email: str | None = None) -> str:
        customer = Customer(
            id=self.ids.new("cus", 14),
            account_id=account_id,
            created=self.now,
            email=email or f"billing+{account_id}@example.com",
            invoice_prefix=self.ids.new("x", 8)[2:].upper(),
        )
        self.world.customers[customer.id] = customer
        with self.emitter.api_request():
            self.emitter.emit("customer.created", customer)
        return customer.id

    def _give_card(self, customer: Customer, card: Card) -> None:
        before = self.emitter.render(customer)
        customer.card = card
        customer.payment_method = None if card == "none" else self.ids.new("pm")
        self.emitter.emit("customer.updated", customer, before=before)

    def set_card(self, customer_id: str, ok: bool | None) -> None:
        """A new default payment method that pays (True), declines (False), or none (None)."""
        customer = self._customer(customer_id)
        with self.emitter.api_request():
            self._give_card(customer, "none" if ok is None else ("ok" if ok else "declines"))

    def pay_open_invoices(self, customer_id: str) -> list[str]:
        """Pay every open invoice now (Pay Invoice / the hosted invoice page); the paid ids."""
        self._customer(customer_id)
        open_ = [i for i in self.world.invoices.values() if i.customer == customer_id]
        paid = []
        with self.emitter.api_request():
            for inv in [i for i in open_ if i.status == "open"]:
                if self._attempt(inv, automatic=False):
                    paid.append(inv.id)
        return paid

    # -- signing up --------------------------------------------------------------------

    def _target(self, plan: str, add_ons: Sequence[str], seats: int) -> list[tuple[str, int]]:
        try:
            keys = [(self.catalog.plan(plan).lookup_key, 1)]
            keys += [(self.catalog.add_on(a).lookup_key, 1) for a in add_ons]
        except KeyError as exc:
            raise SimulatorError(f"unknown plan or add-on {exc}") from exc
        seat = self.catalog.seat_add_on()
        if seats and seat is not None:
            keys.append((seat.lookup_key, seats))
        return [(self.price_id(key), qty) for key, qty in keys]

    def subscribe(
        self,
        customer_id: str,
        plan: str,
        add_ons: Sequence[str] = (),
        seats: int = 0,
        *,
        trial_days: int = 0,
        card: bool = True,
        missing_payment_method: MissingPaymentMethod = "pause",
    ) -> str:
        """Checkout (mode=subscription, client_reference_id=account id) completed by the
        customer. Without `card` and without a trial, the card given declines."""
        customer = self._customer(customer_id)
        prices = self._target(plan, add_ons, seats)
        session = CheckoutSession(
            id=self.ids.new("cs_test", 58),
            customer=customer.id,
            account_id=customer.account_id,
            created=self.now,
            expires_at=self.now + SESSION_EXPIRES_AFTER,
            trial_days=trial_days,
            payment_method_collection="if_required" if trial_days and not card else "always",
        )
        self.world.sessions[session.id] = session
        if card or not trial_days:
            self._give_card(customer, "ok" if card else "declines")
        sub = self._new_subscription(
            customer, prices, "trialing" if trial_days else "incomplete", trial_days
        )
        sub.missing_payment_method = missing_payment_method
        session.subscription = sub.id
        lines = self._period_lines(sub, sub.period_start, sub.period_end)
        if sub.status == "trialing":
            for line in lines:
                line.amount, line.description = 0, f"Trial period for {line.description}"
        inv = self._new_invoice(sub, "subscription_create", lines, (self.now, self.now))
        inv.retries = False
        self.emitter.emit("customer.subscription.created", sub)
        self._first_invoice(sub, inv, session)
        self._plan_period(sub)
        return sub.id

    def _first_invoice(self, sub: Subscription, inv: Invoice, session: CheckoutSession) -> None:
        self.emitter.emit("invoice.created", inv)
        self._finalize(inv)
        if inv.status == "open" and not self._attempt(inv, automatic=True):
            expire = sub.created + INCOMPLETE_EXPIRES_AFTER
            self.clock.at(expire, f"expire {sub.id}", lambda: self._expire_incomplete(sub.id))
            self.clock.at(
                session.expires_at, f"expire {session.id}", lambda: self._expire_session(session.id)
            )
            return
        session.status, session.amount_total = "complete", inv.total
        session.payment_status = "paid" if inv.total else "no_payment_required"
        self.emitter.emit("checkout.session.completed", session)

    # -- pausing -----------------------------------------------------------------------

    def pause(self, sub_id: str) -> None:
        sub = self._sub(sub_id)
        if sub.status not in ("active", "trialing", "past_due"):
            raise SimulatorError(f"cannot pause a subscription in status {sub.status}")
        if sub.schedule or sub.pause_collection:
            raise SimulatorError("cannot pause a subscription with a schedule or paused collection")
        with self.emitter.api_request():
            before = self.emitter.render(sub)
            sub.status, sub.paused = "paused", ("pause_requested", self.now)
            self.emitter.emit("customer.subscription.updated", sub, before=before)
            self.emitter.emit("customer.subscription.paused", sub)

    def resume(self, sub_id: str) -> None:
        sub = self._sub(sub_id)
        if sub.status != "paused":
            raise SimulatorError(f"cannot resume a subscription in status {sub.status}")
        with self.emitter.api_request():
            before = self.emitter.render(sub)
            sub.anchor = sub.period_start = self.now
            sub.period_end = self._next_period(sub, self.now)
            lines = self._period_lines(sub, sub.period_start, sub.period_end)
            inv = self._new_invoice(sub, "subscription_cycle", lines, (self.now, self.now))
            inv.retries = False
            self.emitter.emit("invoice.created", inv)
            self._finalize(inv)
            if inv.status == "open":
                self._attempt(inv, automatic=True)
            sub.paused = None
            sub.status = "past_due" if self._open_invoices(sub) else "active"
            self.emitter.emit("customer.subscription.resumed", sub)
            self.emitter.emit("customer.subscription.updated", sub, before=before)
            self._plan_period(sub)

    def pause_collection(
        self, sub_id: str, behavior: CollectionPause = "void", resumes_at: int | None = None
    ) -> None:
        sub = self._live(sub_id)
        with self.emitter.api_request():
            before = self.emitter.render(sub)
            sub.pause_collection = (behavior, resumes_at)
            self.emitter.emit("customer.subscription.updated", sub, before=before)
        if resumes_at is not None:
            self.clock.at(
                resumes_at,
                f"collect {sub.id}",
                lambda: self._collection_resumes(sub.id, resumes_at),
            )

    def resume_collection(self, sub_id: str) -> None:
        sub = self._live(sub_id)
        with self.emitter.api_request():
            before = self.emitter.render(sub)
            sub.pause_collection = None
            self.emitter.emit("customer.subscription.updated", sub, before=before)

    # -- plan changes ------------------------------------------------------------------

    def _live(self, sub_id: str) -> Subscription:
        sub = self._sub(sub_id)
        if not sub.live:
            raise SimulatorError(f"subscription {sub_id} is {sub.status}")
        return sub

    def composition(self, sub_id: str) -> tuple[str | None, tuple[str, ...], int]:
        """(plan id, add-on ids, extra seats) of a subscription's current items."""
        plan, add_ons, seats = None, [], 0
        seat = self.catalog.seat_add_on()
        for item in self._sub(sub_id).items:
            ident = self._catalog_id(item.price)
            if any(p.id == ident for p in self.catalog.plans):
                plan = ident
            elif seat is not None and ident == seat.id:
                seats = item.quantity
            else:
                add_ons.append(ident)
        return plan, tuple(add_ons), seats

    def change_items(
        self,
        sub_id: str,
        *,
        plan: str | None = None,
        add_ons: Sequence[str] | None = None,
        seats: int | None = None,
        proration_behavior: Proration = "always_invoice",
    ) -> None:
        """Update the subscription's items now (an upgrade, or seats and add-ons)."""
        sub = self._live(sub_id)
        if sub.schedule:
            raise SimulatorError("The subscription is managed by a subscription schedule.")
        if sub.status in ("incomplete", "paused"):
            raise SimulatorError(f"cannot update items of a {sub.status} subscription")
        now_plan, now_add_ons, now_seats = self.composition(sub_id)
        wanted = self._target(
            plan or now_plan or "",
            now_add_ons if add_ons is None else add_ons,
            now_seats if seats is None else seats,
        )
        # An item that stays keeps its price, even one whose lookup key moved on.
        kept = {self._catalog_id(i.price): i.price for i in sub.items}
        target = [(kept.get(self._catalog_id(p), p), q) for p, q in wanted]
        with self.emitter.api_request():
            before = self.emitter.render(sub)
            old = [(i.price, i.quantity) for i in sub.items]
            sub.items = self._items_for(sub, target)
            prorate = sub.status != "trialing" and proration_behavior != "none"
            lines = self._prorations(sub, old, target) if prorate else []
            if lines and proration_behavior == "create_prorations":
                sub.pending.extend(lines)
            inv = None
            if lines and proration_behavior == "always_invoice":
                inv = self._new_invoice(sub, "subscription_update", lines, (self.now, self.now))
            self.emitter.emit("customer.subscription.updated", sub, before=before)
            if inv is not None:
                self.emitter.emit("invoice.created", inv)
                self._finalize(inv)
                if inv.status == "open":
                    self._attempt(inv, automatic=True)

    def upgrade(self, sub_id: str, plan: str, **changes: Any) -> None:
        self.change_items(sub_id, plan=plan, **changes)

    def _prorations(
        self, sub: Subscription, old: list[tuple[str, int]], new: list[tuple[str, int]]
    ) -> list[Line]:
        span, left = sub.period_end - sub.period_start, sub.period_end - self.now
        if span <= 0 or left <= 0:
            return []
        lines = []
        for (price_id, qty), sign, what in [
            *((o, -1, "Unused") for o in old if o not in new),
            *((n, 1, "Remaining") for n in new if n not in old),
        ]:
            line = self._line(price_id, qty, self.now, sub.period_end, None)
            line.amount = sign * round(line.amount * left / span)
            line.proration, line.description = True, f"{what} time on {line.description}"
            lines.append(line)
        return lines

    def downgrade_at_period_end(
        self, sub_id: str, plan: str, add_ons: Sequence[str] = (), seats: int = 0
    ) -> str:
        """Schedule the target for the next period; returns the schedule id."""
        sub = self._live(sub_id)
        target = tuple(self._target(plan, add_ons, seats))
        with self.emitter.api_request():
            sched = self.world.schedules.get(sub.schedule or "")
            if sched is None:
                sched = self._schedule_from(sub)
            before = self.emitter.render(sched)
            end = self._next_period(sub, sub.period_end)
            current = Phase(
                sub.period_start, sub.period_end, tuple((i.price, i.quantity) for i in sub.items)
            )
            sched.phases, sched.current = [current, Phase(sub.period_end, end, target, "none")], 0
            self.emitter.emit("subscription_schedule.updated", sched, before=before)
        return sched.id

    def _schedule_from(self, sub: Subscription) -> Schedule:
        items = tuple((i.price, i.quantity) for i in sub.items)
        sched = Schedule(
            id=self.ids.new("sub_sched"),
            customer=sub.customer,
            subscription=sub.id,
            phases=[Phase(sub.period_start, sub.period_end, items)],
            created=self.now,
        )
        self.world.schedules[sched.id] = sched
        self.emitter.emit("subscription_schedule.created", sched)
        before = self.emitter.render(sub)
        sub.schedule = sched.id
        self.emitter.emit("customer.subscription.updated", sub, before=before)
        return sched

    def release_schedule(self, sub_id: str) -> None:
        sub = self._sub(sub_id)
        sched = self.world.schedules.get(sub.schedule or "")
        if sched is None:
            raise SimulatorError("the subscription has no schedule")
        with self.emitter.api_request():
            sched.status, sched.released_at, sched.released_subscription = (
                "released",
                self.now,
                sub.id,
            )
            before = self.emitter.render(sub)
            sub.schedule = None
            self.emitter.emit("subscription_schedule.released", sched)
            self.emitter.emit("customer.subscription.updated", sub, before=before)

    # -- cancelling --------------------------------------------------------------------

    def cancel_at_period_end(self, sub_id: str, cancel: bool = True) -> None:
        sub = self._live(sub_id)
        with self.emitter.api_request():
            before = self.emitter.render(sub)
            sub.cancel_at_period_end = cancel
            sub.cancel_at = sub.period_end if cancel else None
            sub.canceled_at = self.now if cancel else None
            self.emitter.emit("customer.subscription.updated", sub, before=before)

    def cancel_at(self, sub_id: str, when: int) -> None:
        sub = self._live(sub_id)
        if when <= self.now:
            raise SimulatorError("cancel_at must be in the future")
        with self.emitter.api_request():
            before = self.emitter.render(sub)
            sub.cancel_at, sub.cancel_at_period_end, sub.canceled_at = when, False, self.now
            self.emitter.emit("customer.subscription.updated", sub, before=before)
        self.clock.at(when, f"cancel {sub.id}", lambda: self._cancel_due(sub.id, when))

    def cancel_now(self, sub_id: str) -> None:
        sub = self._live(sub_id)
        with self.emitter.api_request():
            sub.canceled_at = self.now
            self._end(sub, reason="cancellation_requested")

    # -- catalog -----------------------------------------------------------------------

    def transfer_price(self, lookup_key: str, new_amount: int) -> str:
        """A new price for `lookup_key` (transfer_lookup_key=true), the old one archived."""
        old = self.world.prices[self.price_id(lookup_key)]
        new = Price(
            id=self.ids.new("price"),
            product=old.product,
            unit_amount=new_amount,
            currency=old.currency,
            lookup_key=lookup_key,
            nickname=old.nickname,
            metadata=dict(old.metadata),
            created=self.now,
        )
        with self.emitter.api_request():
            before = self.emitter.render(old)
            old.lookup_key = None
            self.world.prices[new.id] = new
            self.emitter.emit("price.created", new)
            self.emitter.emit("price.updated", old, before=before)
        with self.emitter.api_request():
            before = self.emitter.render(old)
            old.active = False
            self.emitter.emit("price.updated", old, before=before)
        return new.id

    # -- what Stripe shows -------------------------------------------------------------

    @property
    def events(self) -> list[Json]:
        """Every event emitted so far, in order (a copy of the list)."""
        return list(self.emitter.events)

    def customers(self) -> list[Json]:
        return [self.emitter.render(c) for c in self.world.customers.values()]

    def subscriptions_of(self, customer_id: str) -> list[Json]:
        subs = self.world.subscriptions.values()
        return [self.emitter.render(s) for s in subs if s.customer == customer_id]

    def invoices_of(self, customer_id: str) -> list[Json]:
        invs = self.world.invoices.values()
        return [self.emitter.render(i) for i in invs if i.customer == customer_id]

    def schedules_of(self, customer_id: str) -> list[Json]:
        scheds = self.world.schedules.values()
        return [self.emitter.render(s) for s in scheds if s.customer == customer_id]

    def prices(self) -> list[Json]:
        return [self.emitter.render(p) for p in self.world.prices.values()]

    def products(self) -> list[Json]:
        return [self.emitter.render(p) for p in self.world.products.values()]

    def sessions_of(self, customer_id: str) -> list[Json]:
        sessions = self.world.sessions.values()
        return [self.emitter.render(s) for s in sessions if s.customer == customer_id]

    def serve(self, state: State, undelivered: Iterable[str] = ()) -> State:
        """Write this Stripe into a StripeServer `State` (see serve.py)."""
        return serve(self.world, self.emitter, state, undelivered)

    def load_into(self, server: StripeServer, undelivered: Iterable[str] = ()) -> None:
        """Write this Stripe into a running StripeServer, under its lock."""
        load_into(self.world, self.emitter, server, undelivered)

    def latest_subscription(self, customer_id: str) -> str | None:
        subs = [s for s in self.world.subscriptions.values() if s.customer == customer_id]
        return subs[-1].id if subs else None
