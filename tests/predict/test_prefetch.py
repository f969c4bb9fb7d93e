"""predict.sources.Prefetch: rendering starts at once, in order, errors in place, stops clean."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from detect.predict.sources import Prefetch


def test_results_come_in_order_and_production_starts_before_the_first_read():
    started = threading.Event()

    def items() -> Iterator[int]:
        started.set()
        yield from range(50)

    with Prefetch(items(), depth=4) as stream:
        assert started.wait(5.0)  # nothing has been read yet
        assert list(stream) == list(range(50))
        assert list(stream) == []  # stays exhausted


def test_an_error_is_raised_at_its_place_in_the_stream():
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("slice 3 is broken")

    with Prefetch(items(), depth=8) as stream:
        assert next(stream) == 1 and next(stream) == 2
        with pytest.raises(ValueError, match="slice 3 is broken"):
            next(stream)


def test_leaving_early_stops_the_thread_and_closes_the_iterator():
    closed = threading.Event()
    produced = []

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                produced.append(n)
                yield n
                n += 1
        finally:
            closed.set()

    with Prefetch(endless(), depth=3) as stream:
        assert next(stream) == 0
    assert closed.is_set()
    assert len(produced) <= 1 + 3 + 2  # bounded read-ahead, never the endless rest
