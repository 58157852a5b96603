"""The load mode: sustained, k6-style load of real buyer journeys, with the invariants
checked while it runs (``payment-chaos load``).

- :mod:`chaos.load.profile`: stages of VUs or an arrival rate (pure).
- :mod:`chaos.load.mix`: a journey and its chaos: duplicates, races, reorders,
  forged signatures, refunds, sell-outs (pure).
- :mod:`chaos.load.metrics`: per endpoint and step, HDR histograms, checks.
- :mod:`chaos.load.thresholds`: ``http-p95{endpoint=webhook} < 500ms`` limits.
- :mod:`chaos.load.runner`: the VUs, the intervals, the checks (trio).
- :mod:`chaos.load.summary`: the JSON summary and the terminal table.
- :mod:`chaos.load.command`: the ``load`` command's options.
"""
