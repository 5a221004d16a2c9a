"""Operator actions behind `billing-ops`: dead letters, accounts, overrides, reconcile.

Kept out of functions/cli so the logic is testable without click and reusable by a
scheduled job; the CLI modules only parse options, confirm and print.
"""
