"""Fake time for the retry loop: a clock that moves only when something sleeps."""

from __future__ import annotations


class FakeTime:
    """``clock()`` and ``sleep()`` for the loop; ``slept`` records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
