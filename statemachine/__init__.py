"""The subscription lifecycle as a pure state machine (no infrastructure imports).

Public API used by the adapters: `decide`, `account_taken`, `reconcile`, `reevaluate`,
`set_override`, `entitlement_message`, `current_entitlements`, `is_handled_event_type`,
plus the readable tables `STATES` and `TRANSITIONS`. See `statemachine.ordering` for the
out-of-order rule.
"""

from statemachine.decision import Decision, Policy, Transition
from statemachine.domain import (
    HANDLED_EVENT_TYPES,
    account_taken,
    current_entitlements,
    decide,
    entitlement_message,
    is_handled_event_type,
    reconcile,
    reevaluate,
    set_override,
)
from statemachine.machine import TRANSITIONS, TransitionRow
from statemachine.states import MESSAGES, STATES, StateRow

__all__ = [
    "HANDLED_EVENT_TYPES",
    "MESSAGES",
    "STATES",
    "TRANSITIONS",
    "Decision",
    "Policy",
    "StateRow",
    "Transition",
    "TransitionRow",
    "account_taken",
    "current_entitlements",
    "decide",
    "entitlement_message",
    "is_handled_event_type",
    "reconcile",
    "reevaluate",
    "set_override",
]
