"""State, catalog and the invoice machinery every action and every renewal shares.

Invoice lifecycle (docs.stripe.com/billing/invoices/subscription, /invoicing/overview):
draft -> open (finalized) -> paid | void | uncollectible. A subscription's first invoice
and an update invoiced at once are finalized and attempted immediately; a renewal
invoice waits one hour as a draft (`automatically_finalizes_at`), then is finalized and
attempted. A $0 invoice is paid when finalized.

Payment: the customer's card is "ok" (pays), "declines" (a payment method that fails) or
"none". A failed automatic attempt schedules the next retry from Settings.retry_days
(`next_payment_attempt`; null after the last one) unless there is no payment method at
all ("Stripe doesn't retry payments if no payment methods are available",
docs.stripe.com/billing/revenue-recovery/smart-retries). Manual attempts after the first
do not count (`attempt_count`, stripe/_invoice.py). When the last retry fails, the
subscription is canceled, marked unpaid or left past_due (Settings.after_retries).
"""

from __future__ import annotations

from functions.services.catalog_sync import price_fields, product_fields
from schemas.catalog import AddOn, Catalog, Plan
from tests.support.simulator.clock import DAY, HOUR, Clock, Ids, add_months
from tests.support.simulator.events import Emitter
from tests.support.simulator.objects import (
    Customer,
    Invoice,
    Item,
    Line,
    Price,
    Product,
    Settings,
    Shape,
    SimulatorError,
    Subscription,
    World,
)


class Core:
    def __init__(
        self, *, seed: int, start: int, shape: Shape, settings: Settings, catalog: Catalog
    ) -> None:
        self.world = World(settings=settings)
        self.settings = settings
        self.catalog = catalog
        self.clock = Clock(start)
        self.ids = Ids(seed)
        self.emitter = Emitter(self.world, self.clock, self.ids, shape)
        self._seed_catalog(start - 30 * DAY)

    @property
    def now(self) -> int:
        return self.clock.now

    def _seed_catalog(self, created: int) -> None:
        """The catalog as catalog sync leaves it (functions/services/catalog_sync.py)."""
        entries: tuple[Plan | AddOn, ...] = (*self.catalog.plans, *self.catalog.add_ons)
        for entry in entries:
            want = product_fields(entry, self.catalog)
            product = Product(self.ids.new("prod", 14), want["name"], want["metadata"], created)
            self.world.products[product.id] = product
            fields = price_fields(entry, self.catalog)
            price = Price(
                id=self.ids.new("price"),
                product=product.id,
                unit_amount=fields["unit_amount"],
                currency=fields["currency"],
                lookup_key=fields["lookup_key"],
                nickname=fields["nickname"],
                metadata=dict(fields["metadata"]),
                created=created,
            )
            self.world.prices[price.id] = price

    # -- lookups -----------------------------------------------------------------------

    def _customer(self, customer_id: str) -> Customer:
        if customer_id not in self.world.customers:
            raise SimulatorError(f"No such customer: '{customer_id}'")
        return self.world.customers[customer_id]

    def _sub(self, sub_id: str) -> Subscription:
        if sub_id not in self.world.subscriptions:
            raise SimulatorError(f"No such subscription: '{sub_id}'")
        return self.world.subscriptions[sub_id]

    def price_id(self, lookup_key: str) -> str:
        """The active price holding `lookup_key` now."""
        for price in self.world.prices.values():
            if price.lookup_key == lookup_key and price.active:
                return price.id
        raise SimulatorError(f"No active price with lookup_key '{lookup_key}'")

    def _open_invoices(self, sub: Subscription) -> list[Invoice]:
        return [
            i
            for i in self.world.invoices.values()
            if i.subscription == sub.id and i.status == "open"
        ]

    # -- lines -------------------------------------------------------------------------

    def _line(
        self,
        price_id: str,
        quantity: int,
        start: int,
        end: int,
        item: str | None,
        prefix: str = "il",
    ) -> Line:
        price = self.world.prices[price_id]
        amount = price.unit_amount
        return Line(
            id=self.ids.new(prefix),
            price=price_id,
            quantity=quantity,
            amount=price.unit_amount * quantity,
            start=start,
            end=end,
            proration=False,
            item=item,
            # Stripe's own wording of a subscription line.
            description=f"{quantity} × {price.nickname} (at ${amount / 100:.2f} / month)",  # noqa: RUF001
        )

    def _period_lines(
        self, sub: Subscription, start: int, end: int, prefix: str = "il"
    ) -> list[Line]:
        return [self._line(i.price, i.quantity, start, end, i.id, prefix) for i in sub.items]

    def _next_period(self, sub: Subscription, start: int) -> int:
        months = 1
        while add_months(sub.anchor, months) <= start:
            months += 1
        return add_months(sub.anchor, months)

    # -- invoices ----------------------------------------------------------------------

    def _new_invoice(
        self, sub: Subscription, reason: str, lines: list[Line], period: tuple[int, int]
    ) -> Invoice:
        inv = Invoice(
            id=self.ids.new("in"),
            customer=sub.customer,
            subscription=sub.id,
            billing_reason=reason,
            created=self.now,
            lines=lines,
            period_start=period[0],
            period_end=period[1],
        )
        self.world.invoices[inv.id] = inv
        sub.latest_invoice = inv.id
        return inv

    def _finalize(self, inv: Invoice) -> None:
        customer = self.world.customers[inv.customer]
        inv.status, inv.finalized_at, inv.finalizes_at = "open", self.now, None
        inv.number = f"{customer.invoice_prefix}-{customer.next_invoice_sequence:04d}"
        customer.next_invoice_sequence += 1
        self.emitter.emit("invoice.finalized", inv)
        if inv.total <= 0:
            self._mark_paid(inv)

    def _mark_paid(self, inv: Invoice) -> None:
        inv.status, inv.paid_at, inv.auto_advance = "paid", self.now, False
        inv.attempted, inv.next_payment_attempt = True, None
        self.emitter.emit("invoice.paid", inv)
        self.emitter.emit("invoice.payment_succeeded", inv)

    def _void(self, inv: Invoice) -> None:
        inv.status, inv.voided_at, inv.auto_advance, inv.next_payment_attempt = (
            "void",
            self.now,
            False,
            None,
        )
        self.emitter.emit("invoice.voided", inv)

    def _set_delinquent(self, customer: Customer, value: bool) -> None:
        if customer.delinquent != value:
            before = self.emitter.render(customer)
            customer.delinquent = value
            self.emitter.emit("customer.updated", customer, before=before)

    def _attempt(self, inv: Invoice, *, automatic: bool) -> bool:
        """One payment attempt on an open invoice; True when it paid."""
        customer = self.world.customers[inv.customer]
        sub = self.world.subscriptions[inv.subscription or ""]
        before = self.emitter.render(inv)
        if automatic or not inv.attempted:
            inv.attempt_count += 1
        inv.attempted = True
        if customer.card == "ok":
            self._mark_paid(inv)
            self._set_delinquent(customer, False)
            self._after_paid(sub)
            return True
        final = self._schedule_retry(inv, customer) if automatic else False
        self.emitter.emit("invoice.payment_failed", inv)
        self.emitter.emit("invoice.updated", inv, before=before)
        if automatic:
            self._set_delinquent(customer, True)
        self._after_failed(sub, inv, final=final)
        return False

    def _schedule_retry(self, inv: Invoice, customer: Customer) -> bool:
        """Queue the next automatic retry; True when the schedule is exhausted."""
        inv.first_failure = inv.first_failure or self.now
        inv.next_payment_attempt = None
        if not inv.retries or customer.card == "none":
            return False
        retries_done = inv.attempt_count - 1
        if retries_done >= len(self.settings.retry_days):
            return True
        when = inv.first_failure + self.settings.retry_days[retries_done] * DAY
        inv.next_payment_attempt = when
        self.clock.at(when, f"retry {inv.id}", lambda: self._retry(inv.id, when))
        return False

    def _retry(self, invoice_id: str, when: int) -> None:
        inv = self.world.invoices[invoice_id]
        if inv.status != "open" or inv.next_payment_attempt != when:
            return
        with_sub = self.world.subscriptions[inv.subscription or ""]
        if with_sub.status in ("canceled", "incomplete_expired"):
            return
        self._attempt(inv, automatic=True)

    def _after_paid(self, sub: Subscription) -> None:
        if sub.status in ("past_due", "unpaid", "incomplete") and not self._open_invoices(sub):
            before = self.emitter.render(sub)
            sub.status = "active"
            self.emitter.emit("customer.subscription.updated", sub, before=before)

    def _after_failed(self, sub: Subscription, inv: Invoice, *, final: bool) -> None:
        if sub.status in ("active", "trialing") and inv.billing_reason != "subscription_create":
            before = self.emitter.render(sub)
            sub.status = "past_due"
            self.emitter.emit("customer.subscription.updated", sub, before=before)
        if not final or sub.status != "past_due":
            return
        if self.settings.after_retries == "cancel":
            self._end(sub, reason="payment_failed")
        elif self.settings.after_retries == "unpaid":
            before = self.emitter.render(sub)
            sub.status = "unpaid"
            self.emitter.emit("customer.subscription.updated", sub, before=before)

    # -- endings -----------------------------------------------------------------------

    def _end(self, sub: Subscription, *, reason: str | None) -> None:
        """The subscription is canceled now: customer.subscription.deleted."""
        sub.status, sub.ended_at = "canceled", self.now
        sub.canceled_at = sub.canceled_at or self.now
        sub.cancel_reason = reason
        for inv in self._open_invoices(sub):
            inv.next_payment_attempt, inv.auto_advance = None, False
        sched = self.world.schedules.get(sub.schedule or "")
        if sched is not None and sched.status == "active":
            sched.status, sched.canceled_at = "canceled", self.now
            self.emitter.emit("subscription_schedule.canceled", sched)
        self.emitter.emit("customer.subscription.deleted", sub)

    # -- subscriptions -----------------------------------------------------------------

    def _new_subscription(
        self, customer: Customer, prices: list[tuple[str, int]], status: str, trial_days: int
    ) -> Subscription:
        sub_id = self.ids.new("sub")
        items = [Item(self.ids.new("si", 14), price, qty, self.now) for price, qty in prices]
        trial_end = self.now + trial_days * DAY if trial_days else None
        sub = Subscription(
            id=sub_id,
            customer=customer.id,
            status=status,
            created=self.now,
            items=items,
            anchor=trial_end or self.now,
            period_start=self.now,
            period_end=trial_end or add_months(self.now, 1),
            metadata={"account_id": customer.account_id},
            trial_start=self.now if trial_days else None,
            trial_end=trial_end,
        )
        self.world.subscriptions[sub_id] = sub
        return sub

    def _finalize_later(self, inv: Invoice) -> None:
        """Queue the draft's finalization for `finalizes_at` (an hour from now by default)."""
        inv.finalizes_at = inv.finalizes_at or self.now + HOUR
        self.clock.at(inv.finalizes_at, f"finalize {inv.id}", lambda: self._finalize_due(inv.id))

    def _finalize_due(self, invoice_id: str) -> None:
        inv = self.world.invoices[invoice_id]
        sub = self.world.subscriptions[inv.subscription or ""]
        if inv.status != "draft" or not inv.auto_advance:
            return
        self._finalize(inv)
        if inv.status != "open":
            return
        pause = sub.pause_collection
        if pause and pause[0] == "mark_uncollectible":
            inv.status, inv.uncollectible_at, inv.auto_advance = "uncollectible", self.now, False
            self.emitter.emit("invoice.marked_uncollectible", inv)
        elif sub.status == "unpaid":
            # "Invoices continue to be generated, but payments aren't attempted."
            inv.auto_advance = False
        elif sub.live:
            self._attempt(inv, automatic=True)
