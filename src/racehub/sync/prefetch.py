"""Reading a provider's pages a page or two ahead, in a thread of its own.

A sync run stages page N while page N+1 is being fetched: on a provider answering each
request after a quarter of a second, the staging then costs no time of its own. The
caller still sees the pages one by one, in order, and an error of the read (a
ProviderError...) where the next page would have come, so it handles both exactly as if
it had read the pages itself.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Prefetch(Generic[T]):
    """The items of ``source()`` read by a thread of their own, at most ``depth`` ahead of
    the caller, who iterates them inside ``with``. An exception of the reader (a
    ProviderError...) is raised in the caller, where the next item would have come, so the
    caller handles it exactly as if it had read the pages itself; items read before it are
    all delivered first. Leaving the ``with`` early (an error while staging, a cancelled
    job) stops the reader after the request it is making and waits for it: nothing reads
    on once the caller has moved on (the adapter is closed after the ``with``)."""

    _ITEM, _END, _ERROR = "item", "end", "error"

    def __init__(self, source: Callable[[], Iterator[T]], *, depth: int) -> None:
        self._source = source
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        # The reader runs in a copy of the caller's context (structlog's bound values).
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._read,),
                                        name="sync-prefetch", daemon=True)

    def _put(self, message: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        items: Iterator[T] | None = None
        try:
            items = self._source()
            for item in items:
                if not self._put((self._ITEM, item)):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            self._put((self._ERROR, exc))
        finally:
            # A generator stopped early is closed here, in the thread that ran it.
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._items()

    def _items(self) -> Iterator[T]:
        while True:
            what, value = self._queue.get()
            if what == self._ERROR:
                raise value
            if what == self._END:
                return
            yield value

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
