"""Run per-customer event streams on a pool of workers, each stream in order.

This is how ordered Pub/Sub delivery behaves: one customer's events one at a time, many
customers at once. Returns the wall time and every event's own duration.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def run_streams(
    streams: Sequence[Sequence[T]], fn: Callable[[T], object], workers: int
) -> tuple[float, list[float]]:
    pending: queue.SimpleQueue[Sequence[T]] = queue.SimpleQueue()
    for stream in streams:
        pending.put(stream)
    durations: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        mine: list[float] = []
        try:
            while True:
                try:
                    stream = pending.get_nowait()
                except queue.Empty:
                    break
                for item in stream:
                    started = time.perf_counter()
                    fn(item)
                    mine.append(time.perf_counter() - started)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        with lock:
            durations.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, durations
