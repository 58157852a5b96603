"""The shape of a load run, as k6 writes it: stages of virtual users, or an arrival rate.

- ``--vus 50 --duration 30s``: 50 virtual users (VUs) from the start, for 30 s.
- ``--stages 10s:50,40s:50,10s:0``: k6's ``ramping-vus``: from 0, each stage
  moves the VU count linearly to its target over its duration (ramp up,
  hold, ramp down). A VU above the target finishes its journey, then stops.
- ``--rate 20 --duration 30s --vus 50``: k6's ``constant-arrival-rate``: 20
  journeys start each second whatever the answers' speed, on at most 50
  VUs; a journey that finds no free VU is *dropped* and counted.

Pure: parsing and arithmetic over time, no I/O, so every bound is testable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")

#: The longest run the tool accepts (a day), and the most VUs.
MAX_SECONDS = 86_400.0
MAX_VUS = 10_000


def parse_duration(text: str) -> float:
    """``"90s"``, ``"1m30s"``, ``"500ms"`` or a plain number of seconds -> seconds.

    Raises ValueError with the fix in its message.
    """
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{text!r} is not a duration: write e.g. 30s, 1m30s or 500ms") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"{text!r} is outside (0 s, 24 h]: give a positive duration up to 24h")
    return seconds


@dataclass(frozen=True)
class Stage:
    """Move to ``target`` VUs over ``seconds`` (linearly, from the previous target)."""

    seconds: float
    target: int


def parse_stages(text: str) -> tuple[Stage, ...]:
    """``"10s:50,40s:50,10s:0"`` -> stages; raises ValueError naming the bad stage."""
    stages = []
    for part in text.split(","):
        duration, sep, target = part.strip().partition(":")
        if not sep:
            raise ValueError(f"stage {part.strip()!r} is not DURATION:VUS (e.g. 10s:50)")
        try:
            vus = int(target)
        except ValueError:
            raise ValueError(f"stage {part.strip()!r}: {target!r} is not a whole number of VUs") \
                from None
        if not 0 <= vus <= MAX_VUS:
            raise ValueError(f"stage {part.strip()!r}: {vus} VUs is outside 0..{MAX_VUS}")
        stages.append(Stage(parse_duration(duration), vus))
    if sum(s.seconds for s in stages) > MAX_SECONDS:
        raise ValueError("the stages add up to more than 24h: shorten them")
    if not any(s.target for s in stages):
        raise ValueError(f"stages {text!r} never have a VU: give at least one stage a target above 0")
    return tuple(stages)


@dataclass(frozen=True)
class LoadProfile:
    """How many VUs run at each moment (``vus_at``), or how fast journeys start (``rate``).

    ``start_vus`` is the count at time 0 (0 for stages, the VU count for a
    constant run); ``rate`` (journeys per second) makes it an arrival-rate run
    on at most ``max_vus`` VUs.
    """

    stages: tuple[Stage, ...]
    start_vus: int = 0
    rate: float | None = None

    @classmethod
    def constant(cls, vus: int, seconds: float) -> LoadProfile:
        return cls(stages=(Stage(seconds, vus),), start_vus=vus)

    @classmethod
    def arrival_rate(cls, rate: float, seconds: float, max_vus: int) -> LoadProfile:
        return cls(stages=(Stage(seconds, max_vus),), start_vus=max_vus, rate=rate)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def max_vus(self) -> int:
        return max([self.start_vus, *(s.target for s in self.stages)])

    def vus_at(self, t: float) -> int:
        """The VU count ``t`` seconds into the run (0 once it is over)."""
        begin, previous = 0.0, self.start_vus
        for stage in self.stages:
            if t < begin + stage.seconds:
                share = (t - begin) / stage.seconds
                return round(previous + (stage.target - previous) * share)
            begin, previous = begin + stage.seconds, stage.target
        return 0

    def describe(self) -> str:
        """One line: ``stages 10s:50,40s:50,10s:0``, ``50 VUs for 30s`` or a rate."""
        if self.rate is not None:
            return f"{self.rate:g} journeys/s for {self.seconds:g}s on at most {self.max_vus} VUs"
        if self.start_vus and len(self.stages) == 1:
            return f"{self.start_vus} VUs for {self.seconds:g}s"
        return "stages " + ",".join(f"{s.seconds:g}s:{s.target}" for s in self.stages)

    def to_data(self) -> dict[str, object]:
        return {"stages": [{"seconds": s.seconds, "target": s.target} for s in self.stages],
                "start_vus": self.start_vus, "rate": self.rate, "seconds": self.seconds,
                "max_vus": self.max_vus, "describe": self.describe()}
