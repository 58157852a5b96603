"""``--shard I/N``: which part of the work one of N machines (or processes) takes.

N shards cover the whole and never do the same work twice:

- a search: shard I plays the playbook stories whose index is I-1 modulo N,
  and draws with a seed of its own (:meth:`Shard.seed`: derived from the
  run's seed, or from a fixed base under a derandomized profile, so shard 1
  and shard 2 of a ``ci`` run draw different scenarios, and the same ones
  every night);
- a load run: VU ``v`` belongs to shard I when ``v % N == I-1``, and the
  shard starts 1/N of an arrival rate (the load mode's
  ``LoadOptions.share``, which ``--workers`` uses within one machine).

Pure: parsing and arithmetic, so every bound is testable without a run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: The most shards a run may be split into (a CI matrix is far smaller).
MAX_SHARDS = 1024


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based, as people count matrix jobs) of ``count``."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count} is not I/N with "
                             f"1 <= I <= N <= {MAX_SHARDS}: write e.g. 1/4")

    @property
    def whole(self) -> bool:
        """Is this the whole run (1/1), not a part of one?"""
        return self.count == 1

    @property
    def share(self) -> tuple[int, int]:
        """The load mode's ``(mine, of)``: 0-based, as ``LoadOptions.share`` takes it."""
        return (self.index - 1, self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def take(self, items: Sequence[T]) -> list[T]:
        """This shard's items: every N-th, starting at the I-th (round robin, so each
        shard gets about as many, and together they are ``items`` exactly once)."""
        return [item for n, item in enumerate(items) if n % self.count == self.index - 1]

    def seed(self, seed: int | None) -> int | None:
        """The seed this shard draws with: ``seed`` itself for the whole run; for a
        part, one derived from ``seed`` and the shard (None: from 0, for a
        derandomized profile), so no two shards draw the same scenarios."""
        if self.whole:
            return seed
        digest = hashlib.sha256(f"payment-chaos/{seed or 0}/{self}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % 2**63

    def split(self, total: int) -> int:
        """This shard's part of ``total`` (the first ``total % N`` shards take one more)."""
        return total // self.count + (self.index - 1 < total % self.count)


def parse_shard(text: str) -> Shard:
    """``"2/4"`` -> ``Shard(2, 4)``; ValueError naming the fix."""
    index, sep, count = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError
        return Shard(int(index), int(count))
    except ValueError as exc:
        if str(exc).startswith("shard "):
            raise
        raise ValueError(f"{text!r} is not I/N: write e.g. 1/4 (the first of four shards)") \
            from None
