"""The layers: ``openprimary`` (the composition root) over ``channels`` over ``bot`` over
``ballots``.  A module may import from its own layer and the ones below, never above."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Outermost first.
LAYERS = ("openprimary", "channels", "bot", "ballots")


def imports_of(path: Path) -> set[str]:
    """Every top-level package a module imports, anywhere in it (functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    wrong: list[str] = []
    for rank, layer in enumerate(LAYERS):
        above = set(LAYERS[:rank])
        for path in sorted((ROOT / layer).rglob("*.py")):
            for name in sorted(imports_of(path) & above):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from channels.gsm import to_gsm\n    return to_gsm\n")
    assert "channels" in imports_of(module)


#: Only the composition root parses a command line: the core and the channels are handed
#: what they need, never an ``argparse.Namespace``.
COMMAND_LINE = {"argparse", "getpass"}


def test_only_the_composition_root_reads_a_command_line() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for layer in LAYERS[1:]
        for path in sorted((ROOT / layer).rglob("*.py"))
        for name in sorted(imports_of(path) & COMMAND_LINE)
    ]
    assert wrong == []


def test_the_check_sees_argparse_below_the_root(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import argparse\n")
    assert imports_of(module) & COMMAND_LINE == {"argparse"}


def test_one_composition_root_builds_the_core() -> None:
    """``openprimary.app`` alone wires the core: no other module makes a Router, a
    Conversation, a reminder Worker or a RateLimiter for serving (the tests' own aside)."""
    makers = ("Router(", "Conversation(", "Worker(", "limiter_for(", "build_senders(")
    found = [
        f"{path.relative_to(ROOT)}: {maker}"
        for layer in LAYERS
        for path in sorted((ROOT / layer).rglob("*.py"))
        for maker in makers
        if maker in path.read_text()
        and f"def {maker}" not in path.read_text()
        and f"class {maker[:-1]}" not in path.read_text()
    ]
    assert sorted(found) == [
        "openprimary/app.py: Conversation(",
        "openprimary/app.py: Router(",
        "openprimary/app.py: Worker(",
        "openprimary/app.py: build_senders(",
        "openprimary/app.py: limiter_for(",
        "openprimary/remind_cli.py: limiter_for(",  # (remind's process: its one limiter)
    ], found
