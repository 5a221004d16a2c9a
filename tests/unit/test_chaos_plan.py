"""The chaos suite's input is what its checks assume: each customer's events in their
in-order sequence, duplicates only after their original, the sizes issue 17 asks for,
the same every run; and a run with any bad count fails."""

from __future__ import annotations

from tests.support.chaos import FULL, QUICK, Counts, deliveries


def test_the_full_burst_is_2000_events_over_200_customers_with_duplicates() -> None:
    played, sequences, unique = deliveries(FULL)
    assert len(played) == len(sequences) == 200
    assert sum(len(s) for s in sequences.values()) == 2000
    assert 0 < unique < 2000
    assert {f.kind for f in FULL.faults} == {"worker", "master", "stall"}
    assert any(f.kind == "stall" and f.seconds == 20 for f in FULL.faults)


def test_originals_keep_their_order_and_duplicates_follow_them() -> None:
    played, sequences, _ = deliveries(QUICK)
    for scenario in played:
        sent = sequences[scenario.customer_id]
        firsts = [e["id"] for i, e in enumerate(sent) if e["id"] not in {x["id"] for x in sent[:i]}]
        assert firsts == [e["id"] for e in scenario.events]


def test_the_plan_is_the_same_every_run() -> None:
    assert deliveries(QUICK)[1] == deliveries(QUICK)[1]


def test_any_bad_count_is_a_problem() -> None:
    assert Counts().problems() == []
    for name in (
        "not_acked",
        "lost",
        "applied_twice",
        "version_gaps",
        "record_mismatches",
        "dead_letters",
    ):
        counts = Counts()
        setattr(counts, name, 1)
        assert len(counts.problems()) == 1, name
