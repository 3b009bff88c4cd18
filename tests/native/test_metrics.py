"""The C request meter (csrc/metrics through mcp_edge.native._metrics): counts, bucket placement at and around
the bounds, refusals, clearing, and every bad argument refused with a clear error."""

from __future__ import annotations

import pytest

from mcp_edge.native._metrics import MAX_BOUNDS, MAX_SERIES, Meter

BOUNDS = (1_000, 10_000, 100_000)


def test_a_call_lands_in_the_first_bucket_whose_bound_is_not_below_it() -> None:
    m = Meter(2, BOUNDS)
    for ns in (0, 999, 1_000, 1_001, 10_000, 99_999, 100_001, 10**12):
        m.record(0, ns, False)
    calls, errors, refused, total, buckets = m.read(0)
    assert (calls, errors, refused) == (8, 0, 0)
    assert total == sum((0, 999, 1_000, 1_001, 10_000, 99_999, 100_001, 10**12))
    assert buckets == (3, 2, 1, 2)  # <=1 µs, <=10 µs, <=100 µs, +Inf
    assert m.read(1) == (0, 0, 0, 0, (0, 0, 0, 0))  # rows are independent


def test_errors_and_refusals_are_counted_apart() -> None:
    m = Meter(1, BOUNDS)
    m.record(0, 5, True)
    m.record(0, 5, False)
    m.refuse(0)
    m.refuse(0)
    calls, errors, refused, total, buckets = m.read(0)
    assert (calls, errors, refused, total, sum(buckets)) == (2, 1, 2, 10, 2)


def test_clear_zeroes_one_row() -> None:
    m = Meter(2, BOUNDS)
    m.record(0, 1, False)
    m.record(1, 1, True)
    m.clear(0)
    assert m.read(0)[0] == 0 and m.read(1)[:2] == (1, 1)


def test_a_slot_past_the_last_row_is_an_index_error() -> None:
    m = Meter(3, BOUNDS)
    for call in (lambda: m.record(3, 1, False), lambda: m.refuse(3), lambda: m.read(3), lambda: m.clear(3)):
        with pytest.raises(IndexError, match=r"slot 3 out of range \(0\.\.2\)"):
            call()
    with pytest.raises(OverflowError):
        m.record(-1, 1, False)
    with pytest.raises(OverflowError):
        m.record(0, -1, False)  # a negative duration is a caller's bug


@pytest.mark.parametrize(("series", "bounds", "match"), [
    (0, BOUNDS, "1 to"),
    (MAX_SERIES + 1, BOUNDS, "1 to"),
    (1, (), "1 to"),
    (1, range(1, MAX_BOUNDS + 2), "1 to"),
    (1, (5, 5), "strictly ascending"),
    (1, (10, 5), "strictly ascending"),
    (1, (0, 5), "positive"),
])
def test_bad_sizes_and_bounds_are_refused(series: int, bounds: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Meter(series, bounds)


def test_the_meter_says_its_shape() -> None:
    m = Meter(7, BOUNDS)
    assert m.series == 7 and m.bounds_ns == BOUNDS
