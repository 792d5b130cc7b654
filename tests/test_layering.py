"""Imports point down: config.py is data and validation; the modules that build compiled
objects from it (runtime, engine, backtest) import it, never the other way round."""
import ast
from pathlib import Path

import orpflow

SRC = Path(orpflow.__file__).resolve().parent


def imported(module: str) -> set:
    tree = ast.parse((SRC / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):                       # function-level imports count too
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_config_imports_nothing_that_builds_from_it():
    up = {"orpflow.engine", "orpflow.runtime", "orpflow.backtest", "orpflow.features",
          "orpflow.signals", "orpflow.persistence", "orpflow.cli", "orpflow._core.engine",
          "orpflow._core.broker", "orpflow._core.risk"}
    assert not imported("config") & up


def test_engine_and_backtest_build_through_runtime():
    assert "orpflow.runtime" in imported("engine") and "orpflow.runtime" in imported("backtest")
    assert "orpflow.engine" not in imported("runtime")
