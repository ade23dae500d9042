"""Pages read ahead in a thread of their own: delivered in order, an error of the read
raised where the next page would have come, and a caller leaving early stops the read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from racehub.providers.errors import ProviderDown
from racehub.sync.prefetch import Prefetch


def test_every_item_comes_in_order() -> None:
    with Prefetch(lambda: iter(range(7)), depth=2) as items:
        assert list(items) == list(range(7))


def test_an_error_of_the_read_comes_after_the_items_read_before_it() -> None:
    def pages() -> Iterator[str]:
        yield "page 1"
        yield "page 2"
        raise ProviderDown("RunSignUp answered 500 on page 3")

    got = []
    with pytest.raises(ProviderDown, match="page 3"), Prefetch(pages, depth=1) as items:
        for page in items:
            got.append(page)
    assert got == ["page 1", "page 2"]


def test_a_caller_leaving_early_stops_the_read_and_closes_it() -> None:
    produced: list[int] = []
    closed = []

    def pages() -> Iterator[int]:
        try:
            for number in range(1000):
                produced.append(number)
                yield number
        finally:
            closed.append(True)

    with pytest.raises(RuntimeError, match="staging failed"), \
            Prefetch(pages, depth=2) as items:
        for number in items:
            if number == 1:
                raise RuntimeError("staging failed")

    # The reader was joined when the block ended: closed, at most a few pages ahead.
    assert closed == [True]
    assert len(produced) <= 2 + 2 + 1
