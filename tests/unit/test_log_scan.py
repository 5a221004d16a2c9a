"""The log scanner must be able to fail: it finds each kind of leak, and only those."""

from __future__ import annotations

from tests.log_scan import find_leaks, luhn_valid


def test_finds_secrets_signatures_and_card_numbers() -> None:
    line = (
        '{"secret": "whsec_abcdef123456", "header": "t=1767225600,v1=' + "ab" * 32 + '", '
        '"note": "card 4242 4242 4242 4242"}'
    )
    kinds = {leak.split()[0] for leak in find_leaks(line)}
    assert kinds == {"card-like", "secret", "signature"}
    assert find_leaks("v1=" + "0f" * 32) == ["signature v1=0f0f0f0f0..."]


def test_ordinary_log_lines_pass() -> None:
    line = (
        '{"message": "event_processed", "event_id": "evt_1PgcX", "created": 1767225600, '
        '"latency_ms": 12.5, "customer_id": "cus_QXg1o8vcGmoR32", "secret": "[redacted]"}'
    )
    assert find_leaks(line) == []


def test_luhn() -> None:
    assert luhn_valid("4242424242424242")
    assert not luhn_valid("4242424242424241")
