"""Configuration: frozen dataclasses, validated on construction with clear errors.

Each config resolves, for one instrument, into the plain dict of integers and floats the
compiled core and its pure-Python twin both consume (``resolve(inst)``), so the two can never
read a setting differently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from typing import Any, Dict, Mapping, Optional, Tuple

from orpflow._core.features import FEATURE_GROUPS as _GROUP_BITS, FeatureExtension
from orpflow._core.signals import SignalGenerator
from orpflow.feed_config import FEED_SOURCES, MARKET_RING_MAX, OUT_RING_MAX, FeedConfig, check_live
from orpflow.validate import INT64_MAX, MAX_MS, _check_cpu, _check_float, _check_int, _ms_to_ns
from orpflow.feature_names import FEATURE_NAMES
from orpflow.model_config import OnnxSignal
from orpflow.instrument import DecimalLike, Instrument

#: Feature group names, in column order; their bits come from the compiled enum.
FEATURE_GROUPS = tuple(_GROUP_BITS)
MAX_LEVELS = 256
SIGNAL_GENERATORS = ("imbalance", "linear")
@dataclass(frozen=True)
class FeatureConfig:
    """Feature windows and switches (docs/features.md has every formula).

    Parameters
    ----------
    window_ms
        Time window W of the time-window features, in exchange-time milliseconds.
    volatility_window
        Mids in the volatility window (its log returns number one fewer).
    zscore_window, zscore_min_history
        Values in the volatility_z and imbalance_z windows, and how many must exist first.
    momentum_window, imbalance_momentum_window
        Mids for ``momentum`` and imbalances for ``imbalance_momentum``.
    imbalance_levels, weighted_levels, weighted_decay, depth_ratio_levels, pressure_levels
        Book levels read by each book-state feature (at most 256).
    volume_surge_windows
        ``volume_surge`` compares the volume in W with the mean per W over this many windows.
    vpin_bucket_volume, vpin_buckets
        VPIN bucket size in the instrument's size units of account (e.g. "0.5" BTC) and the
        number of buckets averaged. ``None`` switches ``toxicity`` off (NaN).
    groups
        Feature groups computed: any of "book", "history", "trades", "windows", "toxicity".
        Columns of a group that is off are NaN.
    extension
        A ``FeatureExtension`` (Cython) adding up to 8 columns, or None.

    Raises
    ------
    TypeError, ValueError
        A value of the wrong type or out of range.
    """

    window_ms: float = 1000.0
    volatility_window: int = 20
    zscore_window: int = 100
    zscore_min_history: int = 20
    momentum_window: int = 10
    imbalance_momentum_window: int = 10
    imbalance_levels: int = 5
    weighted_levels: int = 10
    weighted_decay: float = 0.9
    depth_ratio_levels: int = 20
    pressure_levels: int = 5
    volume_surge_windows: int = 60
    vpin_bucket_volume: Optional[DecimalLike] = None
    vpin_buckets: int = 50
    groups: Tuple[str, ...] = FEATURE_GROUPS
    extension: Any = None

    def __post_init__(self) -> None:
        _check_float("window_ms", self.window_ms, 0.0, MAX_MS, lo_open=True)
        _ms_to_ns("window_ms", self.window_ms)
        _check_int("volatility_window", self.volatility_window, 3, 100_000)
        _check_int("zscore_window", self.zscore_window, 2, 100_000)
        _check_int("zscore_min_history", self.zscore_min_history, 1, self.zscore_window)
        _check_int("momentum_window", self.momentum_window, 2, 100_000)
        _check_int("imbalance_momentum_window", self.imbalance_momentum_window, 2, 100_000)
        for name in ("imbalance_levels", "weighted_levels", "depth_ratio_levels", "pressure_levels"):
            _check_int(name, getattr(self, name), 1, MAX_LEVELS)
        _check_float("weighted_decay", self.weighted_decay, 0.0, 1.0, lo_open=True)
        _check_int("volume_surge_windows", self.volume_surge_windows, 1, 1_000_000)
        _check_int("vpin_buckets", self.vpin_buckets, 1, 100_000)
        if self.vpin_bucket_volume is not None:
            _decimal("vpin_bucket_volume", self.vpin_bucket_volume)
        groups = (self.groups,) if isinstance(self.groups, str) else self.groups
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) for g in groups):
            raise TypeError(f"groups must be a list of group names (some of {FEATURE_GROUPS}), "
                            f"got {self.groups!r}")
        groups = tuple(groups)
        unknown = [g for g in groups if g not in FEATURE_GROUPS]
        if unknown:
            raise ValueError(f"unknown feature groups {unknown}; expected some of {FEATURE_GROUPS}")
        object.__setattr__(self, "groups", groups)
        if self.extension is not None:
            if not isinstance(self.extension, FeatureExtension):
                raise TypeError("extension must be a FeatureExtension (a cdef class subclass)")
            if not 1 <= len(self.extension.names) <= 8:
                raise ValueError("a FeatureExtension must name between 1 and 8 columns")

    def resolve(self, inst: Instrument) -> Dict[str, Any]:
        """The integer/float parameters for `inst` (sizes in its units)."""
        bucket = 0
        if self.vpin_bucket_volume is not None:
            try:
                bucket = inst.size_to_units(self.vpin_bucket_volume)
            except ValueError as exc:
                raise ValueError(f"vpin_bucket_volume: {exc}") from None
            if bucket <= 0:
                raise ValueError("vpin_bucket_volume must be positive")
        groups = 0
        for g in self.groups:
            groups |= _GROUP_BITS[g]
        return {
            "window_ns": _ms_to_ns("window_ms", self.window_ms),
            "volatility_window": self.volatility_window,
            "zscore_window": self.zscore_window,
            "zscore_min": self.zscore_min_history,
            "momentum_window": self.momentum_window,
            "imbalance_momentum_window": self.imbalance_momentum_window,
            "imbalance_levels": self.imbalance_levels,
            "weighted_levels": self.weighted_levels,
            "weighted_decay": float(self.weighted_decay),
            "depth_ratio_levels": self.depth_ratio_levels,
            "pressure_levels": self.pressure_levels,
            "surge_windows": self.volume_surge_windows,
            "vpin_bucket": bucket,
            "vpin_buckets": self.vpin_buckets,
            "groups": groups,
        }


@dataclass(frozen=True)
class SignalConfig:
    """Signal generator and position rules (docs/signals.md).

    Parameters
    ----------
    generator
        "imbalance" (ORPFlow's rules), "linear" (tanh of weights . features), an ``OnnxSignal``
        (an ONNX model; ``generator = "onnx"`` and a ``[signal.onnx]`` table in a config file),
        a Python callable ``f(row) -> strength or None`` (slow: takes the GIL per row), or a
        ``SignalGenerator`` instance compiled from your own ``.pyx``.
    max_spread_bps, threshold, persistence, min_confidence, momentum_confirmation,
    momentum_threshold
        The imbalance generator's rules 2, 4, 5, 6 and 7.
    base_position_pct, equity
        Size = equity * base_position_pct / mid (rule 9), rounded down to the lot.
    min_interval_ms
        Minimum time between two entry signals (enter or add); reversals and exits are exempt.
    exit_on_holding
        Close the position when its holding period lapses without a renewing signal.
    weights, bias, entry_threshold, holding_ms
        Linear and callable generators: strength = tanh(sum w_i * feature_i + bias); a signal
        when |strength| >= entry_threshold, held for holding_ms. ONNX models in score mode use
        entry_threshold and holding_ms too.
    features
        The FeatureConfig the signals read.

    Raises
    ------
    TypeError, ValueError
        A value of the wrong type or out of range, or an unknown feature name in ``weights``.
    """

    generator: Any = "imbalance"
    max_spread_bps: float = 10.0
    threshold: float = 0.3
    persistence: int = 3
    min_confidence: float = 0.6
    momentum_confirmation: bool = True
    momentum_threshold: float = 1e-4
    base_position_pct: float = 0.1
    equity: float = 10_000.0
    min_interval_ms: float = 1000.0
    exit_on_holding: bool = True
    weights: Mapping[str, float] = field(default_factory=dict)
    bias: float = 0.0
    entry_threshold: float = 0.5
    holding_ms: float = 1000.0
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def __post_init__(self) -> None:
        g = self.generator
        if isinstance(g, str):
            if g == "onnx":
                raise ValueError("generator 'onnx' needs the model: pass an OnnxSignal (in a config "
                                 "file, a [signal.onnx] table)")
            if g not in SIGNAL_GENERATORS:
                raise ValueError(f"unknown generator {g!r}; expected one of {SIGNAL_GENERATORS + ('onnx',)}, "
                                 "a callable or a SignalGenerator")
        elif isinstance(g, OnnxSignal):
            columns = feature_columns(self.features)
            for name in g.inputs:
                if name not in columns:
                    raise ValueError(f"onnx inputs: unknown feature {name!r}; expected names from {columns}")
        elif not callable(g):
            if not isinstance(g, SignalGenerator):
                raise TypeError("generator must be a name, a callable or a SignalGenerator")
        _check_float("max_spread_bps", self.max_spread_bps, 0.0)
        _check_float("threshold", self.threshold, 0.0, lo_open=True)
        _check_int("persistence", self.persistence, 1, 1_000_000)
        _check_float("min_confidence", self.min_confidence, 0.0, 1.0)
        if not isinstance(self.momentum_confirmation, bool):
            raise TypeError("momentum_confirmation must be a bool")
        _check_float("momentum_threshold", self.momentum_threshold)
        _check_float("base_position_pct", self.base_position_pct, 0.0, lo_open=True)
        _check_float("equity", self.equity, 0.0, lo_open=True)
        _check_float("min_interval_ms", self.min_interval_ms, 0.0, MAX_MS)
        if not isinstance(self.exit_on_holding, bool):
            raise TypeError("exit_on_holding must be a bool")
        _check_float("bias", self.bias)
        _check_float("entry_threshold", self.entry_threshold, 0.0, 1.0)
        _check_float("holding_ms", self.holding_ms, 0.0, MAX_MS)
        if not isinstance(self.features, FeatureConfig):
            raise TypeError("features must be a FeatureConfig")
        if not isinstance(self.weights, Mapping):
            raise TypeError(f"weights must be a table of feature = weight, got {type(self.weights).__name__}")
        weights = dict(self.weights)
        names = feature_columns(self.features)
        for k, v in weights.items():
            if k not in names:
                raise ValueError(f"weights: unknown feature {k!r}; expected one of {names}")
            _check_float(f"weights[{k!r}]", v)
        object.__setattr__(self, "weights", weights)

    def resolve(self, inst: Instrument) -> Dict[str, Any]:
        names = feature_columns(self.features)
        return {
            "max_spread_bps": float(self.max_spread_bps),
            "threshold": float(self.threshold),
            "persistence": self.persistence,
            "min_confidence": float(self.min_confidence),
            "momentum_confirmation": int(self.momentum_confirmation),
            "momentum_threshold": float(self.momentum_threshold),
            "base_position_pct": float(self.base_position_pct),
            "equity": float(self.equity),
            "min_interval_ns": _ms_to_ns_or_zero(self.min_interval_ms),
            "exit_on_holding": int(self.exit_on_holding),
            "weights": [float(self.weights.get(n, 0.0)) for n in names],
            "bias": float(self.bias),
            "entry_threshold": float(self.entry_threshold),
            "holding_ms": float(self.holding_ms),
            "lot_units": inst.lot_units,
            "qty_num": inst.size_scale[0],
            "qty_den": inst.size_scale[1],
        }


def _ms_to_ns_or_zero(ms: float) -> int:
    return 0 if ms == 0 else _ms_to_ns("min_interval_ms", ms)


def feature_columns(config: FeatureConfig) -> Tuple[str, ...]:
    """Every feature column for `config`: the built-in ones, then the extension's."""
    ext = config.extension
    return FEATURE_NAMES + (tuple(ext.names) if ext is not None else ())



# ---------------------------------------------------------------- broker and risk

QUEUE_MODELS = ("risk_averse", "prob_power", "prob_power2", "prob_power3", "prob_log", "prob_log2")
QTY_POLICIES = ("reject", "clip")
ON_BREAKER = ("reduce_only", "halt", "flatten")      # by their value in the core
EXACT = Context(prec=80)     # money arithmetic: far beyond any int128 value, so never rounds
FEE_SCALE = 10 ** 8          # fee rates are whole multiples of 1e-8 (0.01 bp)
MAX_FEE_RATE = Decimal("0.05")
MAX_DECIMAL_EXP = 30         # decimal settings (money, sizes, rates) within 1e-30 .. 1e30


def _decimal(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise TypeError(f"{name} must be a number or a decimal string, got {type(value).__name__}")
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
    except ArithmeticError:
        raise ValueError(f"{name}: {value!r} is not a decimal number") from None
    if not d.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if d and not -MAX_DECIMAL_EXP <= d.adjusted() <= MAX_DECIMAL_EXP:
        # keeps every later product exact and far from the decimal module's overflow
        raise ValueError(f"{name} must be 0 or within 1e-{MAX_DECIMAL_EXP} .. 1e{MAX_DECIMAL_EXP} "
                         f"in magnitude, got {value!r}")
    return d


def _rate_e8(name: str, value: Any) -> int:
    d = _decimal(name, value)
    if abs(d) > MAX_FEE_RATE:
        raise ValueError(f"{name} must be within +-{MAX_FEE_RATE} (a fraction: 0.001 = 10 bp), got {value!r}")
    scaled = d * FEE_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{name} must be a whole multiple of 1e-8, got {value!r}")
    return int(scaled)


@dataclass(frozen=True)
class Fees:
    """Maker and taker fee rates as fractions of notional (0.001 = 10 bp); a negative maker
    rate is a rebate. Exact multiples of 1e-8."""

    maker: DecimalLike = "0.0001"
    taker: DecimalLike = "0.0004"

    def __post_init__(self) -> None:
        _rate_e8("fees.maker", self.maker)
        _rate_e8("fees.taker", self.taker)


@dataclass(frozen=True)
class Latency:
    """Order latency in nanoseconds: an order sent at local time t reaches the simulated venue
    at t + entry and its response returns at arrival + response.

    ``Latency(entry_ns, response_ns)`` is constant; ``Latency.recorded(request, exchange,
    response)`` interpolates both legs linearly in the request time from recorded timestamp
    arrays (clamped at their ends). ``jitter_ns`` adds a uniform [0, jitter_ns] delay to each
    entry leg, drawn from the broker's seeded generator (deterministic).
    """

    entry_ns: int = 0
    response_ns: int = 0
    jitter_ns: int = 0
    request: Tuple[int, ...] = ()
    exchange: Tuple[int, ...] = ()
    response: Tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_int("latency.entry_ns", self.entry_ns, 0, 10 ** 12)
        _check_int("latency.response_ns", self.response_ns, 0, 10 ** 12)
        _check_int("latency.jitter_ns", self.jitter_ns, 0, 10 ** 12)
        rows = [tuple(int(x) for x in a) for a in (self.request, self.exchange, self.response)]
        if len({len(r) for r in rows}) != 1:
            raise ValueError("latency: request, exchange and response arrays must have the same length")
        for i in range(len(rows[0])):
            if not rows[0][i] <= rows[1][i] <= rows[2][i]:
                raise ValueError(f"latency row {i}: need request <= exchange <= response timestamps")
            if i and rows[0][i] < rows[0][i - 1]:
                raise ValueError("latency: request timestamps must be sorted ascending")
        for name, r in zip(("request", "exchange", "response"), rows):
            object.__setattr__(self, name, r)

    @classmethod
    def recorded(cls, request: Any, exchange: Any, response: Any, jitter_ns: int = 0) -> "Latency":
        return cls(jitter_ns=jitter_ns, request=tuple(int(x) for x in request),
                   exchange=tuple(int(x) for x in exchange), response=tuple(int(x) for x in response))

    @classmethod
    def of(cls, value: Any) -> "Latency":
        """A Latency, an int (both legs, ns) or an (entry_ns, response_ns) pair."""
        if isinstance(value, Latency):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value, value)
        if isinstance(value, tuple) and len(value) == 2:
            return cls(*value)
        raise TypeError("latency must be a Latency, an int of nanoseconds or an (entry_ns, response_ns) pair")


class MoneyScale:
    """Exact conversions between quote-currency Decimals and the core's integer money unit,
    1 money = 1 tick x 1 size unit x 1e-8 (so fees at 1e-8 rates stay whole numbers)."""

    def __init__(self, inst: Instrument) -> None:
        self.num = inst.tick[0] * inst.size_unit[0]      # money unit = num * 10**-exp quote
        self.exp = inst.tick[1] + inst.size_unit[1] + 8

    def to_money(self, name: str, value: Any, floor: bool = True) -> int:
        try:
            with localcontext(EXACT):
                d = _decimal(name, value).scaleb(self.exp)
                q, r = divmod(d, self.num)
        except ArithmeticError:           # beyond 80 digits: far outside the int128 range
            raise ValueError(f"{name} {value!r} is out of range") from None
        if r != 0 and not floor:
            raise ValueError(f"{name} {value!r} is not a whole number of ticks x size units")
        m = int(q) if r == 0 or d >= 0 else int(q) - 1
        if not -2 ** 120 < m < 2 ** 120:
            raise ValueError(f"{name} {value!r} is out of range")
        return m

    def to_decimal(self, money: int) -> Decimal:
        with localcontext(EXACT):
            return (Decimal(money) * self.num).scaleb(-self.exp)


def broker_params(inst: Instrument, *, cash: Any = 10_000, fees: Any = None, latency: Any = 0,
                  queue_model: str = "prob_power2", queue_power: float = 3.0, seed: int = 0) -> Dict[str, Any]:
    """Validated PaperBroker settings as the integers the core and its twin both read."""
    if not isinstance(inst, Instrument):
        raise TypeError("inst must be an orpflow.Instrument")
    if fees is None:
        fees = Fees()
    elif isinstance(fees, tuple) and len(fees) == 2:
        fees = Fees(*fees)
    elif isinstance(fees, Mapping):
        fees = Fees(**fees)
    elif not isinstance(fees, Fees):
        raise TypeError("fees must be a Fees, a (maker, taker) pair or a {'maker', 'taker'} dict")
    lat = Latency.of(latency)
    if queue_model not in QUEUE_MODELS:
        raise ValueError(f"unknown queue_model {queue_model!r}; expected one of {QUEUE_MODELS}")
    _check_float("queue_power", queue_power, 0.0, 100.0, lo_open=True)
    _check_int("seed", seed, 0, 2 ** 64 - 1)
    scale = MoneyScale(inst)
    cash_money = scale.to_money("cash", cash, floor=False)
    if cash_money < 0:
        raise ValueError("cash must be >= 0")
    return {
        "cash": cash_money,
        "maker_e8": _rate_e8("fees.maker", fees.maker),
        "taker_e8": _rate_e8("fees.taker", fees.taker),
        "entry_ns": lat.entry_ns, "response_ns": lat.response_ns, "jitter_ns": lat.jitter_ns,
        "lat_request": lat.request, "lat_exchange": lat.exchange, "lat_response": lat.response,
        "queue_model": QUEUE_MODELS.index(queue_model),
        "queue_power": float(queue_power),
        "seed": seed,
        "lot_units": inst.lot_units,
    }


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits and circuit breakers (docs/risk.md). ``None`` switches a check off.

    Sizes are in the instrument's base quantity, money in its quote currency, both exact
    decimals. Checks run in this order and the first failure is the order's reason: kill
    switch, book in sync, breakers, rate limits, max_order_qty, max_order_notional,
    max_position, max_gross_exposure, price_band_bps, max_open_orders, min_balance. A modify
    is checked as the order it would become (a pure size cut is exempt); cancels never are.

    Parameters
    ----------
    max_order_qty, max_position
        Largest order, and largest |position + open orders on the order's side + order|.
    max_order_notional, max_gross_exposure
        Largest qty x price of one order, and of that projected position.
    price_band_bps
        Largest distance of a limit price from mid, in basis points (2 decimals).
    max_open_orders
        Orders open at the venue or in flight to it.
    min_balance
        Smallest equity; and for a buy, the cash left after its notional and that of the buys
        already open, both valued at its price.
    rate_per_second, rate_per_minute, rate_per_hour
        Token buckets (ORPFlow's defaults 5 / 60 / 500); 0 switches one off.
    qty_policy
        "reject" an order over max_order_qty / max_position, or "clip" it to what fits.
    max_drawdown
        Breaker: equity below peak by this fraction (0.05 = 5%).
    max_daily_loss
        Breaker: equity below the day's opening equity (UTC days of venue time) by this much.
    max_consecutive_losses
        Breaker: this many losing round trips in a row (fees included) [10].
    reject_storm, reject_storm_window_s
        Breaker: this many rejected orders within the window.
    max_book_desyncs
        Breaker: the book lost sync this many times (gaps or bad data).
    on_breaker
        What a tripped breaker lets through: "reduce_only" [default] orders that bring the
        position toward zero (cut to it; RISK_BREAKER_REDUCE_ONLY otherwise), "halt" nothing
        (RISK_BREAKER), "flatten" as reduce_only after the engine sent an order closing the
        position.
    """

    max_order_qty: Optional[DecimalLike] = None
    max_order_notional: Optional[DecimalLike] = None
    max_position: Optional[DecimalLike] = None
    max_gross_exposure: Optional[DecimalLike] = None
    price_band_bps: Optional[DecimalLike] = None
    max_open_orders: Optional[int] = None
    min_balance: Optional[DecimalLike] = None
    rate_per_second: int = 5
    rate_per_minute: int = 60
    rate_per_hour: int = 500
    qty_policy: str = "reject"
    max_drawdown: Optional[DecimalLike] = None
    max_daily_loss: Optional[DecimalLike] = None
    max_consecutive_losses: Optional[int] = 10
    reject_storm: Optional[int] = 50
    reject_storm_window_s: float = 60.0
    max_book_desyncs: Optional[int] = None
    on_breaker: str = "reduce_only"

    def __post_init__(self) -> None:
        for name in ("max_order_qty", "max_order_notional", "max_position", "max_gross_exposure",
                     "price_band_bps", "max_drawdown", "max_daily_loss"):
            v = getattr(self, name)
            if v is not None and _decimal(name, v) <= 0:
                raise ValueError(f"{name} must be > 0 (or None to switch it off), got {v!r}")
        if self.min_balance is not None:
            _decimal("min_balance", self.min_balance)
        if self.price_band_bps is not None:
            d = _decimal("price_band_bps", self.price_band_bps) * 100
            if d != d.to_integral_value():
                raise ValueError("price_band_bps has at most 2 decimals")
            if d > 100_000_000:
                raise ValueError("price_band_bps must be <= 1,000,000 (10,000%)")
        if self.max_drawdown is not None:
            d = _decimal("max_drawdown", self.max_drawdown)
            if d > 1 or d * 10 ** 9 != (d * 10 ** 9).to_integral_value():
                raise ValueError("max_drawdown is a fraction in (0, 1] with at most 9 decimals")
        for name in ("rate_per_second", "rate_per_minute", "rate_per_hour"):
            _check_int(name, getattr(self, name), 0, 10 ** 9)
        for name in ("max_open_orders", "max_consecutive_losses", "reject_storm", "max_book_desyncs"):
            v = getattr(self, name)
            if v is not None:
                _check_int(name, v, 1, 10 ** 6)
        if self.qty_policy not in QTY_POLICIES:
            raise ValueError(f"qty_policy must be one of {QTY_POLICIES}, got {self.qty_policy!r}")
        if self.on_breaker not in ON_BREAKER:
            raise ValueError(f"on_breaker must be one of {ON_BREAKER}, got {self.on_breaker!r}")
        _check_float("reject_storm_window_s", self.reject_storm_window_s, 0.0, 10 ** 6, lo_open=True)

    def resolve(self, inst: Instrument) -> Dict[str, Any]:
        """Integers for the core: sizes in size units, money in money units, -1 = off."""
        scale = MoneyScale(inst)

        def units(name: str) -> int:
            v = getattr(self, name)
            if v is None:
                return -1
            try:
                with localcontext(EXACT):
                    d = _decimal(name, v).scaleb(inst.size_unit[1]) / inst.size_unit[0]
                    u = int(d.to_integral_value(rounding="ROUND_FLOOR"))
            except ArithmeticError:
                raise ValueError(f"{name} {v!r} is beyond the size range of {inst.symbol}") from None
            if u >= 2 ** 62:
                raise ValueError(f"{name} {v!r} is beyond the size range of {inst.symbol} (2**62 size units)")
            return u

        def money(name: str) -> int:
            v = getattr(self, name)
            return -1 if v is None else scale.to_money(name, v)

        band = self.price_band_bps
        dd = self.max_drawdown
        return {
            "max_order_qty": units("max_order_qty"),
            "max_position": units("max_position"),
            "max_order_notional": money("max_order_notional"),
            "max_gross_exposure": money("max_gross_exposure"),
            "price_band_e2": -1 if band is None else int(_decimal("price_band_bps", band) * 100),
            "max_open_orders": -1 if self.max_open_orders is None else self.max_open_orders,
            "has_min_balance": int(self.min_balance is not None),
            "min_balance": 0 if self.min_balance is None else scale.to_money("min_balance", self.min_balance),
            "rates": [self.rate_per_second, self.rate_per_minute, self.rate_per_hour],
            "clip": int(self.qty_policy == "clip"),
            "max_drawdown_e9": -1 if dd is None else int(_decimal("max_drawdown", dd) * 10 ** 9),
            "max_daily_loss": money("max_daily_loss"),
            "max_consecutive_losses": -1 if self.max_consecutive_losses is None else self.max_consecutive_losses,
            "reject_storm": -1 if self.reject_storm is None else self.reject_storm,
            "reject_storm_window_ns": int(round(self.reject_storm_window_s * 1e9)),
            "max_book_desyncs": -1 if self.max_book_desyncs is None else self.max_book_desyncs,
            "on_breaker": ON_BREAKER.index(self.on_breaker),
            "lot_units": inst.lot_units,
        }


# ------------------------------------------------------------------ the engine's TOML file

ORDER_TYPES = ("market", "ioc")
SYNCHRONOUS = ("NORMAL", "FULL")
FEED_FORMATS = ("binance", "tardis", "npy")


@dataclass(frozen=True)
class InstrumentConfig:
    """One traded instrument and the recorded files that feed it (relative paths are taken
    from the config file's folder)."""

    symbol: str
    venue: str = "binance-spot"
    tick_size: DecimalLike = "0.01"
    lot_size: DecimalLike = "0.00001"
    size_increment: Optional[DecimalLike] = None
    id: Optional[int] = None
    paths: Tuple[str, ...] = ()
    format: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.paths, (list, tuple)) or not all(isinstance(p, str) and p for p in self.paths):
            raise TypeError("paths must be a list of file paths")
        object.__setattr__(self, "paths", tuple(self.paths))
        if self.format is not None and self.format not in FEED_FORMATS:
            raise ValueError(f"format must be one of {FEED_FORMATS}, got {self.format!r}")

    def instrument(self, default_id: int) -> Instrument:
        return Instrument(self.symbol, venue=self.venue, tick_size=self.tick_size,
                          lot_size=self.lot_size, size_increment=self.size_increment,
                          id=default_id if self.id is None else self.id)


@dataclass(frozen=True)
class BrokerConfig:
    """The paper broker of every instrument (see PaperBroker)."""

    cash: DecimalLike = "10000"
    maker_fee: DecimalLike = "0.0001"
    taker_fee: DecimalLike = "0.0004"
    latency_entry_ns: int = 0
    latency_response_ns: int = 0
    latency_jitter_ns: int = 0
    queue_model: str = "prob_power2"
    queue_power: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            Fees(self.maker_fee, self.taker_fee)
            Latency(self.latency_entry_ns, self.latency_response_ns, self.latency_jitter_ns)
        except (TypeError, ValueError) as exc:       # name this section's keys, not Fees/Latency's
            text = str(exc)
            for inner, key in (("fees.maker", "maker_fee"), ("fees.taker", "taker_fee"),
                               ("latency.", "latency_")):
                text = text.replace(inner, key)
            raise type(exc)(text) from None
        if self.queue_model not in QUEUE_MODELS:
            raise ValueError(f"queue_model must be one of {QUEUE_MODELS}, got {self.queue_model!r}")
        _check_float("queue_power", self.queue_power, 0.0, 100.0, lo_open=True)
        _check_int("seed", self.seed, 0, 2 ** 64 - 1)
        if _decimal("cash", self.cash) < 0:
            raise ValueError(f"cash must be >= 0, got {self.cash!r}")

    def params(self, inst: Instrument) -> Dict[str, Any]:
        return dict(cash=self.cash, fees=Fees(self.maker_fee, self.taker_fee),
                    latency=Latency(self.latency_entry_ns, self.latency_response_ns, self.latency_jitter_ns),
                    queue_model=self.queue_model, queue_power=self.queue_power, seed=self.seed)


@dataclass(frozen=True)
class ExecutionConfig:
    """How signals become orders: each emitted signal sends the order that brings position +
    open orders to the signal's target, as a market order ("market") or an IOC limit at the
    opposite best +- slippage_ticks ("ioc"). No order before warmup_rows feature rows since the
    (re)start. An account snapshot every account_every_ms of event time (0: only after fills).
    keep_history = false frees fills and final orders once they are written to the out ring
    (memory stays flat over long sessions; orders() / fills() then hold only the recent ones,
    the database has them all)."""

    order_type: str = "market"
    slippage_ticks: int = 0
    warmup_rows: int = 200
    account_every_ms: float = 1000.0
    keep_history: bool = True

    def __post_init__(self) -> None:
        if self.order_type not in ORDER_TYPES:
            raise ValueError(f"order_type must be one of {ORDER_TYPES}, got {self.order_type!r}")
        _check_int("slippage_ticks", self.slippage_ticks, 0, 10 ** 9)
        _check_int("warmup_rows", self.warmup_rows, 0, 10 ** 12)
        _check_float("account_every_ms", self.account_every_ms, 0.0, 1e12)
        if not isinstance(self.keep_history, bool):
            raise TypeError("keep_history must be true or false")

    def resolve(self) -> Dict[str, Any]:
        return {"order_type": self.order_type, "slippage_ticks": self.slippage_ticks,
                "warmup_rows": self.warmup_rows,
                "account_every_ns": int(round(self.account_every_ms * 1e6)),
                "keep_history": self.keep_history}


@dataclass(frozen=True)
class PersistenceConfig:
    """SQLite (WAL) written by the persistence thread only. path None: no database.
    A transaction is committed every batch_rows records or batch_ms, whichever comes first."""

    path: Optional[str] = "orpflow.db"
    synchronous: str = "NORMAL"
    batch_rows: int = 5000
    batch_ms: float = 50.0
    cpu: Optional[int] = None

    def __post_init__(self) -> None:
        if self.path is not None and (not isinstance(self.path, str) or not self.path):
            raise ValueError("path must be a file path (or omitted for no database)")
        if not isinstance(self.synchronous, str) or self.synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {self.synchronous!r}")
        object.__setattr__(self, "synchronous", self.synchronous.upper())
        _check_int("batch_rows", self.batch_rows, 1, 10 ** 7)
        _check_float("batch_ms", self.batch_ms, 0.0, 1e7, lo_open=True)
        _check_cpu("cpu", self.cpu)


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics and /health over HTTP on host:port (port 0: any free port)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9108

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise TypeError("enabled must be true or false")
        if not isinstance(self.host, str) or not self.host:
            raise ValueError("host must be a host name or address")
        _check_int("port", self.port, 0, 65535)



@dataclass(frozen=True)
class EngineConfig:
    """Everything an Engine or backtest() needs; ``load_config(path)`` reads it from TOML.

    Sections: [strategy] id, spin_us, spin, cpu, class, params; [[instruments]]; [features]; [signal]; [risk]; [broker];
    [execution]; [persistence]; [metrics]; [feed]. Every key is a field of the matching
    dataclass (FeatureConfig, SignalConfig, RiskLimits, BrokerConfig, ...).
    """

    instruments: Tuple[InstrumentConfig, ...]
    strategy_id: str = "default"
    signal: SignalConfig = field(default_factory=SignalConfig)
    risk: RiskLimits = field(default_factory=RiskLimits)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    persistence: PersistenceConfig = field(default_factory=PersistenceConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    feed: FeedConfig = field(default_factory=FeedConfig)
    spin_us: float = 1000.0           # strategy thread: spin this long when idle, then sleep
    spin: str = "adaptive"            # "always": the idle strategy thread never sleeps (live)
    strategy_cpu: Optional[int] = None  # pin the strategy thread to this CPU
    source: Optional[str] = None      # the file it was read from
    # your own strategy instead of the signal strategy: "package.module:Name" or
    # "path/to/file.py:Name" (an orpflow.Strategy or CStrategy subclass), built with
    # Name(**strategy_params) once per instrument
    strategy_class: Optional[str] = None
    strategy_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        insts = tuple(self.instruments)
        if not insts:
            raise ValueError("[[instruments]]: at least one instrument is needed")
        object.__setattr__(self, "instruments", insts)
        if not isinstance(self.strategy_id, str) or not self.strategy_id:
            raise ValueError("[strategy] id must be a non-empty string")
        try:
            _check_float("spin_us", self.spin_us, 0.0, 1e7)
            if self.spin not in SPIN_POLICIES:
                raise ValueError(f"spin must be one of {SPIN_POLICIES}, got {self.spin!r}")
            _check_cpu("cpu", self.strategy_cpu)
            if self.strategy_class is not None:
                target = self.strategy_class
                if (not isinstance(target, str)
                        or not all(part.strip() for part in target.rpartition(":")[::2])):
                    raise ValueError(f"class must be \"module:Name\" or \"file.py:Name\", got {target!r}")
            if not isinstance(self.strategy_params, Mapping):
                raise TypeError("params must be a table")
            if self.strategy_params and self.strategy_class is None:
                raise ValueError("params without class: name the strategy class")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"[strategy] {exc}") from None
        ids = [ic.instrument(i).id for i, ic in enumerate(insts)]
        if len(set(ids)) != len(ids):
            raise ValueError("[[instruments]]: two instruments share an id")
        syms = [ic.symbol for ic in insts]
        if len(set(syms)) != len(syms):
            raise ValueError("[[instruments]]: two instruments share a symbol")

        if self.feed.live:
            check_live(self)

    def make_instruments(self) -> Tuple[Instrument, ...]:
        return tuple(ic.instrument(i) for i, ic in enumerate(self.instruments))


SPIN_POLICIES = ("adaptive", "always")


_SECTIONS = {
    "features": FeatureConfig, "signal": SignalConfig, "risk": RiskLimits, "broker": BrokerConfig,
    "execution": ExecutionConfig, "persistence": PersistenceConfig, "metrics": MetricsConfig,
    "feed": FeedConfig,
}


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the key."""


def _build(section: str, cls: Any, values: Any, **extra: Any) -> Any:
    import dataclasses
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{section}] must be a table")
    names = {f.name for f in dataclasses.fields(cls) if f.init} - {"extension", "features"}
    kwargs = dict(values)
    if cls is SignalConfig:
        names.add("onnx")
        table = kwargs.pop("onnx", None)
        if kwargs.get("generator") == "onnx":
            if not isinstance(table, Mapping):
                raise ConfigError(f"[{section}] generator 'onnx' needs a [{section}.onnx] table "
                                  "(path, inputs, ...)")
            try:
                kwargs["generator"] = OnnxSignal.from_table(table, extra.pop("base_dir", None))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"[{section}.onnx] {_one_line(exc)}") from None
        elif table is not None:
            raise ConfigError(f"[{section}.onnx] is set but generator is "
                              f"{kwargs.get('generator', 'imbalance')!r}, not 'onnx'")
        extra.pop("base_dir", None)
    for key in values:
        if key not in names:
            raise ConfigError(f"[{section}] unknown key {key!r}; expected one of {sorted(names)}")
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               and f.name not in extra]
    if missing:
        raise ConfigError(f"[{section}] missing key {missing[0]!r}")
    if cls is SignalConfig and not isinstance(kwargs.get("generator", "imbalance"), (str, OnnxSignal)):
        raise ConfigError(f"[{section}] generator must be one of {SIGNAL_GENERATORS + ('onnx',)} in a config file")
    try:
        return cls(**kwargs, **extra)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ConfigError(f"[{section}] {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _check_resolves(cfg: "EngineConfig") -> None:
    """Convert every setting for every instrument now, so a value that does not fit an
    instrument's grid or the core's integers is a ConfigError naming its key at load time,
    not an error half-way through building the engine."""
    for i, inst in enumerate(cfg.make_instruments()):
        for section, convert in (
                ("features", lambda: cfg.signal.features.resolve(inst)),
                ("signal", lambda: cfg.signal.resolve(inst)),
                ("risk", lambda: cfg.risk.resolve(inst)),
                ("broker", lambda: broker_params(inst, **cfg.broker.params(inst)))):
            try:
                convert()
            except (TypeError, ValueError, ArithmeticError) as exc:
                where = section if len(cfg.instruments) == 1 else f"{section}] [instruments[{i}]"
                raise ConfigError(f"[{where}] {_one_line(exc)}") from None


def config_from_dict(data: Mapping[str, Any], base_dir: Optional[str] = None,
                     source: Optional[str] = None) -> EngineConfig:
    """An EngineConfig from parsed TOML; ConfigError names any unknown or invalid key."""
    import os
    allowed = set(_SECTIONS) | {"strategy", "instruments"}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"unknown section [{key}]; expected one of {sorted(allowed)}")
    strategy = data.get("strategy", {})
    if not isinstance(strategy, Mapping):
        raise ConfigError("[strategy] must be a table")
    keys = {"id", "spin_us", "spin", "cpu", "class", "params"}
    if set(strategy) - keys:
        raise ConfigError(f"[strategy] unknown key(s) {sorted(set(strategy) - keys)}; "
                          f"expected one of {sorted(keys)}")
    raw_insts = data.get("instruments")
    if not isinstance(raw_insts, list) or not raw_insts:
        raise ConfigError("[[instruments]]: at least one instrument table is needed")
    insts = []
    for i, raw in enumerate(raw_insts):
        where = f"instruments[{i}]"
        ic = _build(where, InstrumentConfig, raw)
        if base_dir is not None:
            ic = InstrumentConfig(**{**ic.__dict__, "paths": tuple(
                p if os.path.isabs(p) else os.path.normpath(os.path.join(base_dir, p)) for p in ic.paths)})
        try:
            ic.instrument(i)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ConfigError(f"[{where}] {_one_line(exc)}") from None
        insts.append(ic)
    features = _build("features", FeatureConfig, data.get("features", {}))
    sections = {name: _build(name, cls, data.get(name, {}))
                for name, cls in _SECTIONS.items() if name not in ("features", "signal")}
    signal = _build("signal", SignalConfig, data.get("signal", {}), features=features, base_dir=base_dir)
    try:
        cfg = EngineConfig(instruments=tuple(insts), strategy_id=strategy.get("id", "default"),
                           spin_us=strategy.get("spin_us", 1000.0),
                           spin=strategy.get("spin", "adaptive"), strategy_cpu=strategy.get("cpu"),
                           strategy_class=_strategy_target(strategy.get("class"), base_dir),
                           strategy_params=dict(strategy.get("params", {}))
                           if isinstance(strategy.get("params", {}), Mapping) else strategy.get("params"),
                           signal=signal, source=source,
                           **sections)
    except (TypeError, ValueError) as exc:
        raise ConfigError(_one_line(exc)) from None
    _check_resolves(cfg)
    return cfg


def _strategy_target(target: Any, base_dir: Optional[str]) -> Any:
    """[strategy] class with a relative file path made absolute against the config's folder."""
    import os
    if not isinstance(target, str) or ":" not in target:
        return target
    where, name = target.rsplit(":", 1)
    if where.endswith(".py") and base_dir is not None and not os.path.isabs(where):
        where = os.path.normpath(os.path.join(base_dir, where))
    return f"{where}:{name}"


def physical_memory() -> int:
    """Bytes of physical memory (0 if the platform does not say)."""
    import os
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):      # pragma: no cover - not POSIX
        return 0


#: A setting may not make orpflow allocate more than this fraction of physical memory.
MEMORY_FRACTION = 0.5


def check_memory(key: str, nbytes: int) -> None:
    """ConfigError naming `key` if it would allocate more than MEMORY_FRACTION of the
    machine's physical memory."""
    total = physical_memory()
    if total and nbytes > MEMORY_FRACTION * total:
        raise ConfigError(f"{key} would need {nbytes / 2 ** 30:,.1f} GiB of memory; this machine has "
                          f"{total / 2 ** 30:,.1f} GiB (at most {MEMORY_FRACTION:.0%} may be used)")


def load_config(path: str) -> EngineConfig:
    """Read an engine config from a TOML file (see EngineConfig)."""
    import os
    try:
        import tomllib                       # Python 3.11+
    except ImportError:                      # pragma: no cover - 3.9/3.10
        import tomli as tomllib              # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {_one_line(exc)}") from None
    return config_from_dict(data, base_dir=os.path.dirname(os.path.abspath(path)), source=path)
