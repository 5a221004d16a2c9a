"""The transition table, and the `transitions` Machine built from it.

Every row is (trigger, sources, destination, guard). The domain turns a subscription
snapshot into a trigger with `trigger_for(current, target)`; a move the table does not
list raises `MachineError`, which the domain records as an anomaly.

Notes a reviewer should check against Stripe's lifecycle:
- `none` may go anywhere: the first snapshot we see of a subscription can be in any state
  (events lost before we existed, or the `created` event is still in flight).
- Nothing returns to `incomplete` once it left (the peers' late-`created` rollback bug).
- `canceled` and `incomplete_expired` are terminal for a subscription id. Only a NEW
  subscription id restarts the customer at `none` (`new_subscription`, guarded): a newer
  one after an ended one, or any paid or newer one replacing an unpaid signup.
- Skips are allowed where a snapshot in between may arrive late or be dropped as stale
  (active -> unpaid without the past_due in between, trialing -> past_due at trial end,
  incomplete -> past_due or unpaid when the activating snapshot comes later: Stripe never
  moves incomplete there directly, so a newer past_due snapshot proves it was active).
- Pause and resume follow Stripe: trial end without a card, the Pause endpoint or the
  dunning setting pause a trialing, active or past_due subscription; resuming returns to
  active, or to past_due while an invoice is still open.
- `update` is the reflexive move for a changed snapshot with the same status (items,
  quantities, cancel-at-period-end). `reconcile` may set any state: it is Stripe's
  current object, read on purpose to resolve anomalies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from transitions import Machine, MachineError

from statemachine.states import STATES

ALL_STATES: tuple[str, ...] = tuple(row.status for row in STATES)
LIVE = ("trialing", "active", "past_due", "unpaid", "paused")


@dataclass(frozen=True)
class TransitionRow:
    trigger: str
    sources: tuple[str, ...]
    dest: str
    guard: str | None = None


TRANSITIONS: tuple[TransitionRow, ...] = (
    TransitionRow("begin", ("none",), "incomplete"),
    TransitionRow("start_trial", ("none", "incomplete", "active"), "trialing"),
    TransitionRow("activate", ("none", "incomplete", "trialing", "past_due", "unpaid"), "active"),
    TransitionRow("resume", ("paused",), "active"),
    # Resuming with an invoice still open comes back past due (Stripe's resume endpoint).
    TransitionRow("resume_past_due", ("paused",), "past_due"),
    TransitionRow("payment_failed", ("none", "incomplete", "trialing", "active"), "past_due"),
    TransitionRow(
        "mark_unpaid", ("none", "incomplete", "trialing", "active", "past_due"), "unpaid"
    ),
    # Trial end without a card, the Pause endpoint, or "pause" as the dunning outcome.
    TransitionRow("pause", ("none", "trialing", "active", "past_due"), "paused"),
    TransitionRow("expire", ("none", "incomplete"), "incomplete_expired"),
    TransitionRow("cancel", ("none", "incomplete", *LIVE), "canceled"),
    TransitionRow("update", ("incomplete", *LIVE), "="),
    TransitionRow(
        "new_subscription",
        ("canceled", "incomplete_expired", "incomplete"),
        "none",
        guard="is_newer_subscription",
    ),
    *(TransitionRow("reconcile", ("*",), dest, guard="is_target") for dest in ALL_STATES),
)

# The trigger that moves a subscription into each status (besides update/resume/reconcile).
TRIGGER_FOR_STATUS: dict[str, str] = {
    "incomplete": "begin",
    "trialing": "start_trial",
    "active": "activate",
    "past_due": "payment_failed",
    "unpaid": "mark_unpaid",
    "paused": "pause",
    "incomplete_expired": "expire",
    "canceled": "cancel",
    "none": "new_subscription",
}


def trigger_for(current: str, target: str) -> str:
    if current == target:
        return "update"
    if current == "paused" and target == "active":
        return "resume"
    if current == "paused" and target == "past_due":
        return "resume_past_due"
    return TRIGGER_FOR_STATUS[target]


class _Model:
    # Both are attached by transitions.Machine.
    state: str
    trigger: Callable[..., bool]


def _is_target(dest: str, **kwargs: Any) -> bool:
    return bool(kwargs.get("target") == dest)


def _is_newer(**kwargs: Any) -> bool:
    return bool(kwargs.get("newer_subscription"))


def _guard(row: TransitionRow) -> list[Callable[..., bool]]:
    if row.guard == "is_target":
        return [partial(_is_target, row.dest)]
    if row.guard == "is_newer_subscription":
        return [_is_newer]
    return []


def _build() -> tuple[Machine, _Model]:
    model = _Model()
    machine = Machine(
        model=model,
        states=list(ALL_STATES),
        transitions=[
            {
                "trigger": row.trigger,
                "source": row.sources[0] if row.sources == ("*",) else list(row.sources),
                "dest": row.dest,
                "conditions": _guard(row),
            }
            for row in TRANSITIONS
        ],
        initial="none",
        auto_transitions=False,
        ignore_invalid_triggers=False,
        send_event=False,
    )
    return machine, model


_local = threading.local()


def fire(current: str, trigger: str, **facts: Any) -> str:
    """Run `trigger` from `current`; return the new state or raise MachineError.

    One Machine per thread, reused: building it costs more than a decision.
    """
    built: tuple[Machine, _Model] | None = getattr(_local, "built", None)
    if built is None:
        built = _build()
        _local.built = built
    machine, model = built
    machine.set_state(current, model=model)
    if not model.trigger(trigger, **facts):
        raise MachineError(f"guard refused {trigger} from {current} ({facts})")
    return model.state


__all__ = ["TRANSITIONS", "MachineError", "TransitionRow", "fire", "trigger_for"]
