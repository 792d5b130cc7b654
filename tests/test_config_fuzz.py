"""Config fuzz: a few hundred mutated TOML files through `orpflow run` and `orpflow backtest`.

Each mutation is derived deterministically (seeded) from examples/paper.toml: wrong types,
bool for numbers, 0, -1, huge ints, floats, NaN/inf, empty strings, unknown and removed keys,
wrong section types, duplicated tables and invalid TOML. Every one must either run or exit 2
with exactly one "orpflow:" line on stderr; never a traceback.
"""
import contextlib
import gzip
import io
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from orpflow.cli import main
from helpers import REPO, SAMPLE

try:
    import tomllib
except ImportError:                       # pragma: no cover - Python < 3.11
    import tomli as tomllib

SEED = 20261130
N_MUTATIONS = 300
VALUES = [0, -1, 1, 3, 2 ** 31, 2 ** 63, 2 ** 64, -2 ** 63 - 1, True, False, 0.5, -2.5, 1e300,
          math.nan, math.inf, -math.inf, "nan", "inf", "", "x", "1e999999999", "-0", [], [1, "a"],
          {}, {"a": 1}]


def _keys():
    """Every key of every section (the fuzz also sets keys paper.toml leaves out)."""
    import dataclasses
    from orpflow import config as C
    keys = {name: [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("features", "extension")]
            for name, cls in C._SECTIONS.items()}
    keys["instruments"] = [f.name for f in dataclasses.fields(C.InstrumentConfig)]
    keys["strategy"] = ["id", "spin_us"]
    return keys


KEYS = _keys()


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(data: dict) -> str:
    """Enough of a TOML writer for a config: top-level values, tables, arrays of tables."""
    out = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, (dict, list))
           or (isinstance(v, list) and not all(isinstance(x, dict) for x in v)) or v == []]
    for k, v in data.items():
        if isinstance(v, dict):
            out.append(f"[{k}]")
            out += [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for t in v:
                out.append(f"[[{k}]]")
                out += [f"{kk} = {_toml_value(vv)}" for kk, vv in t.items()]
    return "\n".join(out) + "\n"


def base_config(data: Path) -> dict:
    cfg = tomllib.loads((REPO / "examples" / "paper.toml").read_text())
    cfg["instruments"][0]["paths"] = [str(data)]
    cfg["metrics"]["port"] = 0
    cfg["feed"].update(market_ring=4096, out_ring=4096)     # ring sizes are not fuzzed upwards
    return cfg


def mutate(cfg: dict, rng: random.Random) -> str:
    """One mutated config file text."""
    import copy
    c = copy.deepcopy(cfg)
    kind = rng.choice(["value"] * 6 + ["remove", "unknown", "section", "instruments", "duplicate",
                                       "invalid"])
    tables = [k for k, v in c.items() if isinstance(v, dict)] + ["instruments"]
    name = rng.choice(tables)
    table = c["instruments"][0] if name == "instruments" else c[name]
    if kind == "value":
        for _ in range(rng.choice([1, 1, 2, 3])):
            key = rng.choice(sorted(set(table) | set(KEYS.get(name, ()))))
            value = rng.choice(VALUES)
            if name == "metrics" and key == "enabled":
                value = False                       # a busy or privileged port is another test's
            if name == "feed" and key in ("market_ring", "out_ring") and isinstance(value, int) \
                    and not isinstance(value, bool) and 1024 <= value:
                value = 1 << 30                     # refused: the fuzz never allocates big rings
            table[key] = value
    elif kind == "remove" and table:
        del table[rng.choice(sorted(table))]
    elif kind == "unknown":
        table["no_such_key"] = rng.choice(VALUES)
    elif kind == "section":
        c[rng.choice(tables + ["nonsense"])] = rng.choice([1, "x", [1, 2], True])
    elif kind == "instruments":
        c["instruments"] = rng.choice([[], [1], {"symbol": "BTCUSDT"}, [{}], c["instruments"] * 2,
                                       [{**c["instruments"][0], "symbol": "ETHUSDT"}]])
    text = to_toml(c)
    if kind == "duplicate":
        text += f"[{rng.choice(tables[:-1])}]\n"
    elif kind == "invalid":
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice(["=", "[", "\"", "\x00", "]]", "\n= 1\n", "\xff"]) + text[i + 1:]
    return text


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The first 600 lines of the bundled sample: a snapshot and a few hundred messages."""
    path = tmp_path_factory.mktemp("fuzzdata") / "small.gz"
    lines = gzip.decompress(SAMPLE.read_bytes()).splitlines()[:600]
    path.write_bytes(gzip.compress(b"".join(l + b"\n" for l in lines)))
    return path


def _argv(command: str, path: Path):
    if command == "run":
        return ["run", str(path), "--no-db", "--duration", "1"]
    return ["backtest", str(path)]


def check(rc, out: str, err: str, text: str) -> None:
    where = f"\n--- config ---\n{text}\n--- stderr ---\n{err}"
    assert rc in (0, 2), f"exit {rc}" + where
    assert "Traceback" not in out + err, where
    if rc == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("orpflow:"), where
    else:
        # log lines (orpflow.logs, text format): warnings and the run's info records
        assert all(l.startswith(("orpflow: warning:", "orpflow: info:")) for l in err.splitlines()), where


def test_mutated_configs_never_show_a_traceback(tmp_path, data):
    rng = random.Random(SEED)
    cfg = base_config(data)
    outcomes = {0: 0, 2: 0}
    for i in range(N_MUTATIONS):
        text = mutate(cfg, rng)
        path = tmp_path / f"m{i}.toml"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        for command in ("run", "backtest"):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = main(_argv(command, path))
                except SystemExit as exc:          # argparse; never expected here
                    rc = exc.code
            check(rc, out.getvalue(), err.getvalue(), text)
            outcomes[rc] += 1
    # the mutations exercise both outcomes: a test that only ever saw errors would prove little
    assert outcomes[0] > 20 and outcomes[2] > 200, outcomes


def test_mutated_configs_through_the_console_script(tmp_path, data):
    """A handful through real processes: the same path a user's shell takes."""
    rng = random.Random(SEED + 1)
    cfg = base_config(data)
    texts = [mutate(cfg, rng) for _ in range(3)] + [to_toml(cfg)]
    texts.append(to_toml({**cfg, "signal": {**cfg["signal"], "persistence": 2 ** 64}}))
    for i, text in enumerate(texts):
        path = tmp_path / f"p{i}.toml"
        path.write_text(text)
        for command in ("run", "backtest"):
            r = subprocess.run([sys.executable, "-m", "orpflow", *_argv(command, path)],
                               capture_output=True, text=True, cwd=tmp_path, timeout=120)
            check(r.returncode, r.stdout, r.stderr, text)
    # the unmutated config runs; persistence = 2**64 is refused by name
    assert "[signal] persistence" in r.stderr and r.returncode == 2
