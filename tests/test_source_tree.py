"""A checkout's orpflow/ has no compiled modules: `import orpflow` from it (python started in
the checkout) fails at once with one ImportError that says where and what to do, instead of a
missing-module error from deep inside the package."""
from __future__ import annotations

import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES

import pytest

from helpers import REPO


def _python(cwd, code):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_import_from_the_source_tree_says_why(tmp_path):
    if any((REPO / "orpflow" / "_core" / f"types{s}").exists() for s in EXTENSION_SUFFIXES):
        pytest.skip("this checkout is built in place (pip install -e .): its orpflow imports")
    proc = _python(REPO, "import orpflow")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ImportError: orpflow is being imported from the source tree at {REPO},"), proc.stderr
    assert "run from another folder" in last and "pip install -e ." in last
    # from any other folder the installed package is the one imported
    proc = _python(tmp_path, "import orpflow, os; print(os.path.dirname(orpflow.__file__))")
    assert proc.returncode == 0, proc.stderr
    assert not proc.stdout.strip().startswith(str(REPO / "orpflow")), proc.stdout
