"""Bounded per-key state: an LRU table and time windows, so memory stays flat under any traffic."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class LruTable(Generic[V]):
    """At most ``capacity`` entries; the least recently used one is dropped to make room."""

    def __init__(self, capacity: int, factory: Callable[[], V]) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._factory = factory
        self._items: OrderedDict[str, V] = OrderedDict()
        self.evicted = 0

    def get(self, key: str) -> V:
        """The entry for ``key``, created when missing, marked most recently used."""
        items = self._items
        value = items.get(key)
        if value is None:
            value = self._factory()
            items[key] = value
            if len(items) > self.capacity:
                items.popitem(last=False)
                self.evicted += 1
        else:
            items.move_to_end(key)
        return value

    def peek(self, key: str) -> V | None:
        """The entry for ``key`` or None, without touching its recency."""
        return self._items.get(key)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)


class TimeWindow:
    """Timestamps (with an optional flag each) from the last ``span_s`` seconds, at most ``limit`` kept."""

    __slots__ = ("_items", "span_s")

    def __init__(self, span_s: float, limit: int) -> None:
        self.span_s = span_s
        self._items: deque[tuple[float, bool]] = deque(maxlen=limit)

    def add(self, ts: float, flag: bool = True) -> None:
        self._items.append((ts, flag))
        self.expire(ts)

    def expire(self, now: float) -> None:
        items, horizon = self._items, now - self.span_s
        while items and items[0][0] <= horizon:
            items.popleft()

    def count(self) -> int:
        return len(self._items)

    def flagged(self) -> int:
        return sum(1 for _, flag in self._items if flag)

    def clear(self) -> None:
        self._items.clear()


class CountWindow:
    """The flags of the last ``size`` events."""

    __slots__ = ("_flags", "_true")

    def __init__(self, size: int) -> None:
        self._flags: deque[bool] = deque(maxlen=size)
        self._true = 0

    def add(self, flag: bool) -> None:
        flags = self._flags
        if len(flags) == flags.maxlen and flags[0]:
            self._true -= 1
        flags.append(flag)
        self._true += int(flag)

    @property
    def size(self) -> int:
        return len(self._flags)

    @property
    def full(self) -> bool:
        return len(self._flags) == self._flags.maxlen

    @property
    def flagged(self) -> int:
        return self._true

    def fraction(self) -> float:
        return self._true / len(self._flags) if self._flags else 0.0

    def clear(self) -> None:
        self._flags.clear()
        self._true = 0
