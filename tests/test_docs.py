"""User-facing text (README, docs/, the examples' READMEs and notebooks, the package's
docstrings and comments) refers only to what a user has: not to the project's internal design
document or the folder of full recordings beside the developers' checkouts."""
from __future__ import annotations

import re

import orpflow as of
from helpers import REPO

# the internal design document, by name or by section; the developers' data folder
FORBIDDEN = re.compile(r"\bDESIGN\b|shared/DESIGN|\.\./shared")
# README.md may tell developers where the real-data tests look (and that they skip without it)
ALLOWED = {("README.md", "../shared/data/")}
SOURCES = ("*.py", "*.pyx", "*.pxd", "*.pyi", "*.h")


def _user_facing():
    yield REPO / "README.md"
    yield from sorted((REPO / "docs").glob("*.md"))
    yield from sorted((REPO / "examples").rglob("README.md"))
    yield from sorted((REPO / "examples").rglob("*.ipynb"))
    for pattern in SOURCES:
        yield from sorted((REPO / "orpflow").rglob(pattern))


def test_no_reference_to_files_a_user_does_not_have():
    found = []
    for path in _user_facing():
        rel = path.relative_to(REPO).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in FORBIDDEN.finditer(line):
                if not any(rel == f and line[m.start():].startswith(a) for f, a in ALLOWED):
                    found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_package_docstring_names_what_exists():
    doc = of.__doc__
    for name in re.findall(r"``(\w+)\(", doc):
        assert callable(getattr(of, name)), name
    assert "orpflow.ml" in doc and of.ml.__name__ == "orpflow.ml"
    assert of.example_config("paper").is_file() and of.sample_path().is_file()
