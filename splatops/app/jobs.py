"""Runs a blocking library call in a thread and streams its progress to a generator."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

_DONE = object()


def stream_job(work: Callable[[Callable[[Any], None]], Any]) -> Iterator[tuple[str, Any]]:
    """Runs ``work(report)`` in a background thread and yields what it reports.

    Args:
        work: a function taking a ``report(event)`` callback; its return value
            ends the stream.

    Yields:
        ``("progress", event)`` for each reported event, then ``("result", value)``
        or ``("error", exception)``.
    """
    events: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            events.put(("result", work(lambda e: events.put(("progress", e)))))
        except BaseException as exc:  # handed to the caller, never lost in the thread
            events.put(("error", exc))
        events.put((_DONE, None))

    threading.Thread(target=run, daemon=True).start()
    while True:
        kind, value = events.get()
        if kind is _DONE:
            return
        yield kind, value
