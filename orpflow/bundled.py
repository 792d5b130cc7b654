"""What an installed orpflow carries beside its code: the sample recording and the example configs.

The repository keeps one copy of each, under ``examples/``; the build copies them into the
package as ``orpflow/examples/`` (same names, same layout: setup.py ``PACKAGED_EXAMPLES``), so
``examples/paper.toml``'s relative data path holds in both places and nothing can drift. An
in-place install of a checkout (``pip install -e .``) has no copy: there they are read from
the checkout's ``examples/``.
"""
from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Union

SAMPLE_NAME = "binance_spot_btcusdt_sample.gz"
CONFIGS = ("paper", "live")
# the one line of examples/paper.toml that names its data (rewritten by `orpflow init`)
_PATHS_LINE = re.compile(r'^paths = \["data/' + re.escape(SAMPLE_NAME) + r'"\]$', re.M)
_RUN_LINE = "#   orpflow run examples/paper.toml"


def _bundled(rel: str) -> Path:
    """The file ``examples/<rel>`` as shipped in the package, else in the checkout beside it."""
    packaged = resources.files("orpflow").joinpath("examples").joinpath(*rel.split("/"))
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[1] / "examples" / rel
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(f"{rel} is not part of this orpflow installation (looked for "
                            f"{packaged} and {checkout}): reinstall orpflow")


def sample_path() -> Path:
    """The bundled recording: the first 30,000 lines (about 4 m 20 s, 2024-08-08 23:54 UTC) of
    real Binance spot BTCUSDT market data (depth@100ms diffs, trades, bookTicker, one REST
    depth snapshot), as ``<local_recv_ns> <json>`` lines, gzip. Read it with
    ``orpflow.read_binance(orpflow.sample_path(), instrument)``."""
    return _bundled(f"data/{SAMPLE_NAME}")


def example_config(name: str = "paper") -> Path:
    """An example engine config: ``"paper"`` (a paper-trading session over the bundled sample;
    its data path resolves from where it lies) or ``"live"`` (Binance's live streams, set up
    for the loopback exchange: ``orpflow serve-replay``)."""
    stem = name[:-5] if name.endswith(".toml") else name
    if stem not in CONFIGS:
        raise ValueError(f"no example config {name!r}: there are {', '.join(CONFIGS)}")
    return _bundled(f"{stem}.toml")


def _toml_string(text: str) -> str:
    # a TOML basic string: JSON's escapes (\" \\ \n \t \uXXXX) are TOML's, and ensure_ascii=False
    # leaves non-ASCII characters as they are (JSON's surrogate pairs are not valid TOML)
    return json.dumps(text, ensure_ascii=False)


def starter_config(folder: Union[str, "os.PathLike[str]"] = ".") -> str:
    """``examples/paper.toml`` for a config file in ``folder``: its data path made the absolute
    path of the bundled sample (so the file works wherever it is moved), the run command in
    its header made the one for ``folder``."""
    text = example_config("paper").read_text(encoding="utf-8")
    if not _PATHS_LINE.search(text) or _RUN_LINE not in text:
        raise RuntimeError("the bundled paper.toml no longer has the lines `orpflow init` rewrites "
                           f"({_PATHS_LINE.pattern!r}, {_RUN_LINE!r}): update orpflow/bundled.py")
    target = os.path.join(os.fspath(folder), "paper.toml")
    from orpflow import __version__
    text = _PATHS_LINE.sub(lambda _: (
        "# the real Binance recording that comes with orpflow (orpflow.sample_path()); list your\n"
        "# own recordings instead (relative paths are taken from this file's folder)\n"
        f"paths = [{_toml_string(str(sample_path()))}]"), text, count=1)
    text = text.replace(_RUN_LINE, f"#   orpflow run {target}", 1)
    return f"# Written by `orpflow init` (orpflow {__version__}) from orpflow's example config.\n" + text


def init_folder(folder: Union[str, "os.PathLike[str]"], force: bool = False) -> Path:
    """Write ``folder/paper.toml`` (``starter_config``), creating the folder; an existing file is
    kept (FileExistsError) unless ``force``. Returns the file's path."""
    target = Path(folder) / "paper.toml"
    text = starter_config(folder)
    Path(folder).mkdir(parents=True, exist_ok=True)
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists (--force overwrites it)")
    target.write_text(text, encoding="utf-8")
    return target
