"""payment-chaos: a property-based chaos and idempotency tester for payment flows.

The library API: describe a target, run a search, replay a case, read the report.

    import chaos

    config = chaos.load_config("chaos.toml", overrides=["target.base_url=http://127.0.0.1:8000"])
    # or in Python, the same model: chaos.target_config(chaos.Target(...), database_url=...)
    report = chaos.run_search(chaos.RunOptions(examples=30, seed=1), config=config)
    report.verdict                             # "pass" / "fail" / "error"
    for finding in report.found:               # chaos.Finding: invariant, status, scenario,
        print(finding.invariant, finding.scenario.render(), finding.violations)  # evidence
    print(chaos.summary(report.to_data()))     # the text the command line prints
    replayed = chaos.replay_cases(chaos.ReplayOptions(files=(Path("chaos-failures"),)))

``run_search`` and ``replay_cases`` are ``chaos.lifecycle.run`` and ``replay``, what
``payment-chaos run`` and ``replay`` call (``chaos.run`` and ``chaos.replay`` are
modules of the tool, hence the longer names); errors are :class:`ChaosError` subclasses whose one-line
message names the fix. Invariants of your own: :class:`SqlInvariant` (a query that must
return no rows) or :class:`PythonInvariant` (a function of :class:`ExampleData`), in
``Target.invariants`` or a config's ``[[invariants]]`` (``python = "module:function"``).
In tests: :mod:`chaos.testing` (``search``, ``running_target``, the fake Stripe) and the
pytest plugin's fixtures (``fake_stripe``, ``chaos_search``, ``chaos_target``).

Names load on first use (``import chaos`` imports nothing of the tool's machinery).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Every public name, and the module that defines it.
_EXPORTS = {
    "ChaosError": "chaos.errors",
    "UsageError": "chaos.errors",
    "InfrastructureError": "chaos.errors",
    "TargetError": "chaos.errors",
    "Target": "chaos.target",
    "SqlInvariant": "chaos.target",
    "PythonInvariant": "chaos.target",
    "ExampleData": "chaos.target",
    "Promises": "chaos.promises",
    "Config": "chaos.config",
    "load_config": "chaos.config",
    "target_config": "chaos.config",
    "RunOptions": "chaos.lifecycle",
    "run_search": "chaos.lifecycle",
    "ReplayOptions": "chaos.lifecycle",
    "Replayed": "chaos.lifecycle",
    "replay_cases": "chaos.lifecycle",
    "Report": "chaos.report",
    "summary": "chaos.report",
    "Finding": "chaos.search",
    "ExampleResult": "chaos.example",
    "Observation": "chaos.observation",
    "History": "chaos.history",
    "Violation": "chaos.invariants",
}
#: Names exported under another name in their module.
_ALIASES = {"load_config": "load", "run_search": "run", "replay_cases": "replay"}

#: The same names as _EXPORTS (tests/test_api.py holds them equal).
__all__ = [
    "__version__",
    "ChaosError",
    "UsageError",
    "InfrastructureError",
    "TargetError",
    "Target",
    "SqlInvariant",
    "PythonInvariant",
    "ExampleData",
    "Promises",
    "Config",
    "load_config",
    "target_config",
    "RunOptions",
    "run_search",
    "ReplayOptions",
    "Replayed",
    "replay_cases",
    "Report",
    "summary",
    "Finding",
    "ExampleResult",
    "Observation",
    "History",
    "Violation",
]

if TYPE_CHECKING:
    from chaos.config import Config, target_config
    from chaos.config import load as load_config
    from chaos.errors import ChaosError, InfrastructureError, TargetError, UsageError
    from chaos.example import ExampleResult
    from chaos.history import History
    from chaos.invariants import Violation
    from chaos.lifecycle import Replayed, ReplayOptions, RunOptions
    from chaos.lifecycle import replay as replay_cases
    from chaos.lifecycle import run as run_search
    from chaos.observation import Observation
    from chaos.promises import Promises
    from chaos.report import Report, summary
    from chaos.search import Finding
    from chaos.target import ExampleData, PythonInvariant, SqlInvariant, Target


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562), so ``import chaos`` stays cheap."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chaos' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
