"""sweep(): one backtest per (parameter set, data slice), on dask.distributed, as one DataFrame.

Each data slice is converted once in the caller's process and saved as ``.npy`` in a work
folder; a task receives the file's path and maps it (``np.load(mmap_mode="r")``), so event
arrays are never pickled to workers and a slice's pages are shared by the workers on one
machine. Every parameter set is validated (as the TOML loader does) before any task runs.
dask and pandas are imported when a sweep runs, never by ``import orpflow``.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from orpflow.config import ConfigError, EngineConfig, _check_resolves, _one_line, load_config

__all__ = ["sweep", "apply_overrides", "parse_grid_value", "run_task", "run_batch", "STAT_COLUMNS", "TIMING_COLUMNS"]

#: Per-instrument statistics (backtest.statistics) and counts in every row, in column order.
STAT_COLUMNS = ("pnl", "realised", "fees", "sharpe", "sharpe_reason", "max_drawdown", "win_rate", "avg_trade", "trade_count",
                "round_trips", "final_position", "final_equity", "events", "signals", "orders", "fills",
                "risk_rejections", "breaker_trips")
#: Columns that vary from run to run (wall-clock time); drop them to compare two sweeps.
TIMING_COLUMNS = ("seconds",)
#: Sections a grid key may name ([persistence], [metrics] and [feed] do not act in a backtest).
GRID_SECTIONS = ("features", "signal", "risk", "broker", "execution", "strategy")

DataSlice = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]


# ------------------------------------------------------------------ parameters

def parse_grid_value(text: str) -> Any:
    """A grid value written on the command line, read as a TOML value (``0.2`` -> float,
    ``3`` -> int, ``true`` -> bool, ``"0.05"`` -> str); anything else is the text itself
    (``market`` -> "market")."""
    try:
        import tomllib
    except ImportError:                      # pragma: no cover - 3.9/3.10
        import tomli as tomllib              # type: ignore[no-redef]
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def _section_fields(cls: Any) -> List[str]:
    return sorted(f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("extension", "features"))


def _split_key(key: Any) -> Tuple[str, str]:
    if not isinstance(key, str) or "." not in key:
        raise ConfigError(f"grid key {key!r}: expected \"section.key\" (e.g. \"signal.threshold\")")
    section, name = key.split(".", 1)
    if section not in GRID_SECTIONS:
        raise ConfigError(f"grid key {key!r}: unknown or unused section [{section}]; "
                          f"a sweep can vary {list(GRID_SECTIONS)}")
    return section, name


def check_grid_keys(cfg: EngineConfig, keys: Sequence[str]) -> None:
    """ConfigError naming the first key no section of `cfg` has."""
    from orpflow.config import _SECTIONS
    for key in keys:
        section, name = _split_key(key)
        if section == "strategy":
            if not name.startswith("params.") or not name[len("params."):]:
                raise ConfigError(f"grid key {key!r}: a sweep varies [strategy] params only "
                                  "(\"strategy.params.NAME\")")
            if cfg.strategy_class is None:
                raise ConfigError(f"grid key {key!r}: the config has no [strategy] class to take params")
            continue
        allowed = _section_fields(_SECTIONS[section])
        if name not in allowed:
            raise ConfigError(f"grid key {key!r}: [{section}] has no key {name!r}; expected one of {allowed}")


def apply_overrides(cfg: EngineConfig, overrides: Mapping[str, Any]) -> EngineConfig:
    """`cfg` with {"section.key": value} set, validated like a config file: a bad key or
    value is a ConfigError naming it (``[strategy] params`` keys: "strategy.params.NAME")."""
    check_grid_keys(cfg, list(overrides))
    by: Dict[str, Dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = _split_key(key)
        by.setdefault(section, {})[name] = value

    def fail(section: str, exc: BaseException) -> ConfigError:
        what = ", ".join(f"{section}.{k} = {v!r}" for k, v in by[section].items())
        return ConfigError(f"{what}: {_one_line(exc)}")

    parts: Dict[str, Any] = {}
    signal = cfg.signal
    for section in ("features", "signal"):
        if section in by:
            try:
                if section == "features":
                    signal = dataclasses.replace(signal, features=dataclasses.replace(signal.features, **by[section]))
                else:
                    signal = dataclasses.replace(signal, **by[section])
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise fail(section, exc) from None
    if signal is not cfg.signal:
        parts["signal"] = signal
    for section in ("risk", "broker", "execution"):
        if section in by:
            try:
                parts[section] = dataclasses.replace(getattr(cfg, section), **by[section])
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise fail(section, exc) from None
    if "strategy" in by:
        parts["strategy_params"] = {**cfg.strategy_params,
                                    **{k[len("params."):]: v for k, v in by["strategy"].items()}}
    try:
        out = dataclasses.replace(cfg, **parts)
        _check_resolves(out)        # every value converts for every instrument (grids, integers)
    except ConfigError as exc:
        raise ConfigError(f"{', '.join(f'{k} = {v!r}' for k, v in overrides.items())}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ConfigError(f"{', '.join(f'{k} = {v!r}' for k, v in overrides.items())}: {_one_line(exc)}") from None
    return out


def grid_points(grid: Optional[Mapping[str, Sequence[Any]]]) -> List[Dict[str, Any]]:
    """The cartesian product of `grid`, in order (the last key varies fastest)."""
    if not grid:
        return [{}]
    keys = list(grid)
    values = []
    for k in keys:
        v = grid[k]
        try:
            if isinstance(v, (str, bytes, Mapping)):
                raise TypeError
            vs = [x.item() if isinstance(x, np.generic) else x for x in v]   # np.linspace -> floats
        except TypeError:
            vs = []
        if not vs:
            raise ConfigError(f"grid key {k!r}: expected a non-empty list of values, got {v!r}")
        values.append(vs)
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


# ------------------------------------------------------------------ data

def _slices(data: Optional[Sequence[DataSlice]]) -> List[Tuple[str, Optional[List[str]]]]:
    """[(label, files or None for the config's own data)]; a missing file is an error now."""
    if data is None:
        return [("config", None)]
    if isinstance(data, (str, os.PathLike)):
        raise ConfigError("data must be a list of slices (a path, or a list of paths per slice), "
                          "e.g. data=[\"day1.gz\", \"day2.gz\"]")
    out: List[Tuple[str, Optional[List[str]]]] = []
    for item in data:
        files = [os.fspath(item)] if isinstance(item, (str, os.PathLike)) else [os.fspath(p) for p in item]
        if not files:
            raise ConfigError("data: an empty slice (a slice is a path or a non-empty list of paths)")
        for f in files:
            if not os.path.isfile(f):
                raise FileNotFoundError(f"data file not found: {f}")
        out.append((",".join(files), files))
    if not out:
        raise ConfigError("data: no slice given (omit data to use the config's own files)")
    return out


def _convert(cfg: EngineConfig, slices: List[Tuple[str, Optional[List[str]]]], folder: str,
             progress: bool) -> List[str]:
    """Each slice as one event array saved to `folder`; returns the .npy paths."""
    from orpflow.engine import load_engine_events, repeat_events
    from orpflow.progress import Progress
    insts = cfg.make_instruments()
    paths = []
    with Progress(len(slices), "convert", "slices", enabled=progress and len(slices) > 1) as bar:
        for i, (_, files) in enumerate(slices):
            events, _report = load_engine_events(cfg, insts, files)
            events = repeat_events(events, cfg.feed.repeat)
            path = os.path.join(folder, f"slice{i:04d}.npy")
            np.save(path, events)
            paths.append(path)
            del events
            bar.update()
    return paths


# ------------------------------------------------------------------ one task

def run_task(config: EngineConfig, events_path: str, strategy: Any = None) -> List[Dict[str, Any]]:
    """One backtest of `config` over the events saved at `events_path` (mapped, not read):
    one row per instrument with STAT_COLUMNS, ``error`` ("" or "Type: message") and
    ``seconds``. Never raises for a failing run: the error is the row's."""
    from orpflow.backtest import backtest, risk_rejections
    t0 = time.perf_counter()
    symbols = [ic.symbol for ic in config.instruments]
    try:
        events = np.load(events_path, mmap_mode="r")
        res = backtest(events, config, strategy=strategy, log_events=False)
    except Exception as exc:                # the sweep goes on; the row says what happened
        return _error_rows(symbols, exc, time.perf_counter() - t0)
    c = res.counters
    rows = []
    for sym in res.symbols:
        row = dict(res.stats[sym])
        row.update(events=int(c["events"]), signals=int(c["signals"]), orders=int(len(res.orders[sym])),
                   fills=int(len(res.fills[sym])),
                   risk_rejections=int(sum(risk_rejections([res.risk[sym]]).values())),
                   breaker_trips=sum(1 for t in res.breaker_trips if t.symbol == sym))
        rows.append({"symbol": sym, **{k: row[k] for k in STAT_COLUMNS}, "error": "",
                     "seconds": time.perf_counter() - t0})
    return rows


def run_batch(items: Sequence[Tuple[EngineConfig, str]], strategy: Any = None) -> List[List[Dict[str, Any]]]:
    """run_task for each (config, events path): one dask task carries several backtests, so
    the scheduler's cost (a few ms a task) is paid once per batch, not once per backtest."""
    return [run_task(c, p, strategy) for c, p in items]


def _error_rows(symbols: Sequence[str], exc: BaseException, seconds: float) -> List[Dict[str, Any]]:
    err = f"{type(exc).__name__}: {_one_line(exc)}"
    return [{"symbol": s, **{k: float("nan") for k in STAT_COLUMNS}, "error": err, "seconds": seconds}
            for s in symbols]


# ------------------------------------------------------------------ the sweep

def _need(what: str) -> Any:
    import importlib
    try:
        return importlib.import_module(what)
    except ImportError:
        raise ImportError(f"sweep needs {what.split('.')[0]} ({what} is not installed): "
                          "pip install 'orpflow[sweep]'") from None


def sweep(config: Union[EngineConfig, str], grid: Optional[Mapping[str, Sequence[Any]]] = None,
          data: Optional[Sequence[DataSlice]] = None, client: Any = None, *,
          n_workers: Optional[int] = None, work_dir: Optional[str] = None,
          progress: bool = True, strategy: Any = None, batch: Optional[int] = None) -> Any:
    """One backtest per (parameter set, data slice); a pandas DataFrame, one row per task
    and instrument, in grid order then data order (whatever order the tasks finish in).

    Parameters
    ----------
    config
        An EngineConfig or the path of its TOML file.
    grid
        {"section.key": [values, ...]}, e.g. {"signal.threshold": [0.2, 0.3, 0.5],
        "risk.max_position": ["0.01", "0.05"]}; every combination is run (the last key varies
        fastest). Sections: features, signal, risk, broker, execution, and
        "strategy.params.NAME" for a config with a [strategy] class. Each combination is
        validated like a config file before any task runs (ConfigError naming the key).
    data
        Data slices: each a file path or a list of files (one slice, e.g. a day in parts);
        default: the config's own files. A slice replaces the files of a single-instrument
        config. Each slice is converted once and saved as .npy in `work_dir`.
    client
        None: a LocalCluster of `n_workers` processes (default: the CPU count), one thread
        each, started and closed here. A ``distributed.Client``: used and left open (its
        workers must see `work_dir`). "serial": every task in this process, without dask.
    work_dir
        Folder for the converted slices (kept); default: a temporary folder removed after.
    progress
        A progress bar (orpflow.progress) as tasks finish.
    strategy
        Passed to backtest() in every task (it must pickle to reach the workers).
    batch
        Backtests per dask task (default: about 8 tasks per worker, at most 64 backtests
        each): fewer, larger tasks spend less time in the scheduler; 1 gives one task each.

    Returns
    -------
    pandas.DataFrame
        The grid keys as columns, ``data`` (the slice's files joined by ","), ``symbol``,
        STAT_COLUMNS, ``error`` ("" for a run that finished, else "Type: message") and
        ``seconds`` (the task's wall time; TIMING_COLUMNS differ between identical sweeps).
    """
    import shutil
    import tempfile
    pd = _need("pandas")
    serial = isinstance(client, str) and client == "serial"
    if isinstance(client, str) and not serial:
        raise ValueError(f"client must be None, a distributed.Client or \"serial\", got {client!r}")
    if not serial:
        _need("distributed")
    cfg = load_config(config) if isinstance(config, (str, os.PathLike)) else config
    if not isinstance(cfg, EngineConfig):
        raise TypeError("config must be an EngineConfig or a path to a TOML file")
    if n_workers is not None and not (isinstance(n_workers, int) and 1 <= n_workers <= 1024):
        raise ValueError(f"n_workers must be a whole number in [1, 1024], got {n_workers!r}")
    if batch is not None and not (isinstance(batch, int) and batch >= 1):
        raise ValueError(f"batch must be a whole number >= 1, got {batch!r}")
    points = grid_points(grid)
    if grid:
        check_grid_keys(cfg, list(grid))
    configs = [apply_overrides(cfg, p) if p else cfg for p in points]     # all checked before any run
    slices = _slices(data)
    if data is not None and len(cfg.instruments) != 1:
        raise ConfigError("data slices need a config with exactly one instrument")

    own_dir = work_dir is None
    folder = tempfile.mkdtemp(prefix="orpflow-sweep-") if work_dir is None else os.fspath(work_dir)
    try:
        os.makedirs(folder, exist_ok=True)
        paths = _convert(cfg, slices, folder, progress)
        tasks = [(pi, si) for pi in range(len(points)) for si in range(len(slices))]
        results: List[Optional[List[Dict[str, Any]]]] = [None] * len(tasks)
        with _progress(len(tasks), progress) as bar:
            if serial:
                for k, (pi, si) in enumerate(tasks):
                    results[k] = run_task(configs[pi], paths[si], strategy)
                    bar.update()
            else:
                _run_dask(client, n_workers, batch, tasks, configs, paths, strategy, results, bar)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)

    symbols = [ic.symbol for ic in cfg.instruments]
    keys = list(grid or {})
    rows = []
    for (pi, si), task_rows in zip(tasks, results):
        for r in task_rows or _error_rows(symbols, RuntimeError("no result"), float("nan")):
            rows.append({**points[pi], "data": slices[si][0], **r})
    columns = keys + ["data", "symbol", *STAT_COLUMNS, "error", *TIMING_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _progress(total: int, enabled: bool) -> Any:
    from orpflow.progress import Progress
    return Progress(total, "sweep", "backtests", enabled=enabled)


def _run_dask(client: Any, n_workers: Optional[int], batch: Optional[int], tasks: List[Tuple[int, int]],
              configs: List[EngineConfig], paths: List[str], strategy: Any, results: List[Any], bar: Any) -> None:
    import logging
    import uuid
    from distributed import Client, LocalCluster, as_completed
    cluster = None
    own = client is None
    if own:
        cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        if batch is None:
            workers = n_workers if own else len(client.scheduler_info().get("workers", {}))
            batch = max(1, min(64, -(-len(tasks) // (8 * max(1, workers or 1)))))
        tag = uuid.uuid4().hex[:12]
        futures = []
        index = {}
        for b, start in enumerate(range(0, len(tasks), batch)):
            ks = list(range(start, min(len(tasks), start + batch)))
            # paths travel, never arrays; pure=False: a rerun is a new task
            items = [(configs[tasks[k][0]], paths[tasks[k][1]]) for k in ks]
            f = client.submit(run_batch, items, strategy, key=f"orpflow-sweep-{tag}-{b}", pure=False)
            futures.append(f)
            index[f.key] = ks
        symbols = [ic.symbol for ic in configs[0].instruments]
        for f in as_completed(futures):
            ks = index[f.key]
            try:
                rows = f.result()
            except Exception as exc:        # a worker lost, a task that could not be sent
                rows = [_error_rows(symbols, exc, float("nan")) for _ in ks]
            for k, r in zip(ks, rows):
                results[k] = r
            f.release()
            bar.update(len(ks))
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
