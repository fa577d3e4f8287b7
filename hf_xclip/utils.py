"""Small helpers every part of hf_xclip shares, one copy each: argument checks, the model behind a peft wrapper,
atomic file writes, reading a JSON file and background prefetching.

Shipped with the model code (the label core and the pipeline use it), so it imports nothing from hf_xclip.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
Y = TypeVar("Y")

# ----------------------------------------------------------------------------------------------------------------
# Argument checks


def is_positive_number(value: Any) -> bool:
    """A finite real number above zero (not a bool)."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and 0 < value < math.inf


def check_positive_int(value: Any, name: str) -> int:
    """`value` as an int when it is an integer >= 1.

    Raises:
        ValueError: naming `name`, for anything else (bools, floats, zero, negative numbers).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def check_positive_number(value: Any, name: str, unit: str = "") -> float:
    """`value` as a float when it is a finite number > 0; `unit` (e.g. ``"seconds"``) completes the message.

    Raises:
        ValueError: naming `name`, for anything else.
    """
    if not is_positive_number(value):
        kind = f"positive, finite number of {unit}" if unit else "positive number"
        raise ValueError(f"`{name}` must be a {kind}, got {value!r}.")
    return float(value)


# ----------------------------------------------------------------------------------------------------------------
# Models


def unwrap_model(model: Any) -> Any:
    """The base model of a peft wrapper (`get_base_model()`), else `model` itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


# ----------------------------------------------------------------------------------------------------------------
# Files


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """A temporary path next to `path` (``.<name>.partial``) to write to: when the block ends without an error it
    is renamed over `path` (`os.replace`, atomic: a reader sees the old file or the new one, never half of one),
    after flushing it to disk with ``fsync=True``; after an error it is removed. The parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
        if fsync:
            _fsync(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # only still there after an error


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """An empty hidden staging folder next to `path` to write a whole folder into: when the block ends without an
    error it takes the place of `path` (an existing `path` is moved aside, then deleted); after an error it is
    deleted and `path` is left as it was."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = None
    if path.exists():
        previous = path.with_name(f".{path.name}.previous-{staging.name.rsplit('-', 1)[-1]}")
        path.rename(previous)
    staging.rename(path)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> Path:
    """Write `text` (UTF-8) to `path` atomically (see [`atomic_path`])."""
    with atomic_path(path, fsync=fsync) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)


def read_json_file(
    path: Path, missing: str, invalid: Callable[[json.JSONDecodeError], str], encoding: str = "utf-8"
) -> Any:
    """The JSON value in the file `path`.

    Raises:
        FileNotFoundError: with the message `missing`, when `path` is not a file.
        ValueError: with the message `invalid(error)`, when the file is not valid JSON.
    """
    if not path.is_file():
        raise FileNotFoundError(missing)
    try:
        return json.loads(path.read_text(encoding=encoding))
    except json.JSONDecodeError as err:
        raise ValueError(invalid(err)) from None


def _fsync(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    except OSError:  # not every filesystem syncs
        pass


# ----------------------------------------------------------------------------------------------------------------
# Background prefetching

_END = object()


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class PrefetchStream:
    """The values one item produces, handed from its worker thread through a queue of at most `depth` values.
    Iterating raises, after the values before it, what the producer raised."""

    def __init__(self, depth: int, stop: threading.Event) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = stop

    def put(self, value: Any) -> bool:
        """Hand `value` over, waiting for room; False once the consumer has stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            value = self._queue.get()
            if value is _END:
                return
            if isinstance(value, _Raised):
                raise value.error
            yield value


def prefetch(
    items: Iterable[T],
    produce: Callable[[T], Iterable[Y]],
    *,
    workers: int = 1,
    ahead: int = 1,
    depth: int = 1,
    name: str = "xclip-prefetch",
) -> Iterator[tuple[T, PrefetchStream]]:
    """``(item, stream of produce(item))`` in the order of `items`, produced by `workers` threads ahead of the
    caller: at most `ahead` items are in flight and each holds at most `depth` produced values. An error of
    `produce` is raised by its stream (after the values before it); the other items go on. Closing the generator
    (``contextlib.closing``, or the end of the iteration) stops the workers at their next value and joins them.

    The one prefetch engine of hf_xclip: the pipeline (one preprocessed video per item, [`prefetch_map`]), the
    timeline (one stream of window batches) and the index (the rows of each video) run on it.
    """
    stop = threading.Event()

    def work(item: T, stream: PrefetchStream) -> None:
        if stop.is_set():
            return
        try:
            for value in produce(item):
                if not stream.put(value):
                    return
            stream.put(_END)
        except BaseException as err:  # handed to the consumer, raised there
            stream.put(_Raised(err))

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
    pending: collections.deque[tuple[T, PrefetchStream]] = collections.deque()
    source = iter(items)
    try:
        while True:
            while len(pending) < max(1, ahead):
                item = next(source, _END)
                if item is _END:
                    break
                stream = PrefetchStream(depth, stop)
                pool.submit(work, item, stream)
                pending.append((item, stream))
            if not pending:
                return
            yield pending.popleft()
    finally:  # also when the caller stops early: queued items are dropped, running ones stop at their next value
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def prefetch_map(
    func: Callable[[T], Y], items: Iterable[T], *, workers: int = 1, ahead: int = 1, name: str = "xclip-prefetch"
) -> Iterator[Y]:
    """``func(item)`` for each item, in order, computed by `workers` threads up to `ahead` items ahead."""
    with contextlib.closing(
        prefetch(items, lambda item: (func(item),), workers=workers, ahead=ahead, name=name)
    ) as streams:
        for _, stream in streams:
            yield from stream


__all__ = [
    "PrefetchStream",
    "atomic_directory",
    "atomic_path",
    "atomic_write_text",
    "check_positive_int",
    "check_positive_number",
    "is_positive_number",
    "prefetch",
    "prefetch_map",
    "unwrap_model",
]
