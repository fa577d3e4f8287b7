"""`hf_xclip.utils`: the one copy of the argument checks, the peft unwrap, atomic writes and the prefetch engine."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest
from torch import nn

from hf_xclip.utils import (
    atomic_path,
    atomic_write_text,
    check_positive_int,
    check_positive_number,
    is_positive_number,
    prefetch,
    prefetch_map,
    unwrap_model,
)


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_int_accepts_integers_from_one(value):
    assert check_positive_int(value, "n") == int(value)


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "2", None])
def test_positive_int_names_the_argument(value):
    with pytest.raises(ValueError, match=r"`n` must be a positive integer, got"):
        check_positive_int(value, "n")


def test_positive_number():
    assert is_positive_number(0.5) and is_positive_number(np.float32(2))
    assert not any(is_positive_number(v) for v in (0, -1.0, float("inf"), float("nan"), True, "1"))
    assert check_positive_number(2, "window", "seconds") == 2.0
    with pytest.raises(ValueError, match="`window` must be a positive, finite number of seconds, got 0"):
        check_positive_number(0, "window", "seconds")


def test_unwrap_model_returns_the_base_of_a_wrapper():
    base = nn.Linear(2, 2)

    class Wrapper(nn.Module):
        def get_base_model(self):
            return base

    assert unwrap_model(Wrapper()) is base
    assert unwrap_model(base) is base


def test_atomic_write_replaces_whole_files_and_leaves_nothing_after_an_error(tmp_path):
    target = tmp_path / "sub" / "data.json"
    atomic_write_text(target, "one")
    assert target.read_text() == "one"
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "one"
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.json"]


def test_prefetch_keeps_order_and_runs_ahead_in_threads():
    started: list[int] = []

    def produce(item: int):
        started.append(item)
        time.sleep(0.01 * (5 - item))  # later items finish first
        yield from range(item)

    streams = prefetch(range(5), produce, workers=3, ahead=4, depth=2)
    with contextlib.closing(streams):
        assert [(item, list(stream)) for item, stream in streams] == [(i, list(range(i))) for i in range(5)]
    assert sorted(started) == list(range(5))
    assert list(prefetch_map(lambda x: x * x, range(6), workers=2, ahead=3)) == [0, 1, 4, 9, 16, 25]


def test_prefetch_raises_an_items_error_after_its_values_and_goes_on():
    def produce(item: int):
        yield item
        if item == 1:
            raise ValueError("broken item 1")

    results = []
    for item, stream in prefetch(range(3), produce, workers=2, ahead=2):
        try:
            results.extend(stream)
        except ValueError as err:
            results.append(str(err))
    assert results == [0, 1, "broken item 1", 2]


def test_closing_prefetch_stops_the_workers():
    produced = []

    def produce(item: int):
        for value in range(1000):
            produced.append(value)
            yield value

    before = threading.active_count()
    streams = prefetch([0], produce, depth=2)
    _, stream = next(streams)
    assert next(iter(stream)) == 0
    streams.close()  # the worker stops at its next value, the pool is joined
    assert len(produced) < 10
    assert threading.active_count() == before
