"""Instrument: symbol, venue and the exact decimal grids of its prices and sizes."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Optional, Tuple, Union

VENUES = ("binance-spot", "binance-usdm", "binance-coinm", "generic")
# Binance sends every price and size as a decimal string with at most 8 decimals.
DEFAULT_SIZE_INCREMENT = "0.00000001"

DecimalLike = Union[str, Decimal, int, float]


def _grid(name: str, value: DecimalLike) -> Tuple[int, int]:
    """A positive decimal as (mantissa, exponent): value == mantissa * 10**-exponent."""
    if isinstance(value, bool) or not isinstance(value, (str, Decimal, int, float)):
        raise ValueError(f"{name} must be a decimal number or string, got {type(value).__name__}")
    if isinstance(value, float):
        value = repr(value)          # shortest round-trip text: 0.01 -> "0.01"
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a decimal number") from None
    if not d.is_finite() or d <= 0:
        raise ValueError(f"{name} must be a positive finite decimal, got {value!r}")
    if not -18 <= d.adjusted() <= 18:        # before normalize(), which could overflow
        raise ValueError(f"{name} {value!r} is outside the supported range (1e-18 .. 9.2e18)")
    sign, digits, exponent = d.normalize().as_tuple()
    assert isinstance(exponent, int)        # finite, checked above
    exp = exponent
    mant = int("".join(map(str, digits)))
    if exp > 18:                     # before scaling: 1e999999999 would build a huge int
        raise ValueError(f"{name} {value!r} is outside the supported range (1e-18 .. 9.2e18)")
    if exp > 0:
        mant, exp = mant * 10 ** exp, 0
    if -exp > 18 or mant >= 2 ** 63:
        raise ValueError(f"{name} {value!r} is outside the supported range (1e-18 .. 9.2e18)")
    return mant, -exp


@dataclass(frozen=True)
class Instrument:
    """A tradable instrument.

    Parameters
    ----------
    symbol : str
        Venue symbol, e.g. ``"BTCUSDT"`` (matched case-insensitively by the feeds).
    venue : str
        ``"binance-spot"``, ``"binance-usdm"``, ``"binance-coinm"`` or ``"generic"``;
        selects the order book's sequence rules.
    tick_size : str or Decimal
        Price grid. Prices off this grid are rejected (reason OFF_TICK).
    lot_size : str or Decimal
        Order quantity step, enforced by the broker and risk; must be a multiple of
        ``size_increment``.
    size_increment : str or Decimal, optional
        Precision of market-data sizes (default 1e-8, that of Binance's strings). Book and
        trade sizes are integers in this unit; finer sizes are rejected (OFF_SIZE_INCREMENT).
    id : int
        Instrument id carried by every Event of this instrument (0 .. 2**32-1).

    Raises
    ------
    ValueError
        Unknown venue, non-positive or malformed grids, or a lot size not on the size grid.
    """

    symbol: str
    venue: str = "binance-spot"
    tick_size: DecimalLike = "0.01"
    lot_size: DecimalLike = "0.00001"
    size_increment: Optional[DecimalLike] = None
    id: int = 0
    tick: Tuple[int, int] = field(init=False, repr=False, compare=False)
    size_unit: Tuple[int, int] = field(init=False, repr=False, compare=False)
    lot: Tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError("symbol must be a non-empty string")
        if not isinstance(self.venue, str) or self.venue not in VENUES:
            raise ValueError(f"unknown venue {self.venue!r}; expected one of {VENUES}")
        if isinstance(self.id, bool) or not isinstance(self.id, int) or not 0 <= self.id < 2 ** 32:
            raise ValueError(f"id must be an int in [0, 2**32), got {self.id!r}")
        size_inc = DEFAULT_SIZE_INCREMENT if self.size_increment is None else self.size_increment
        object.__setattr__(self, "tick", _grid("tick_size", self.tick_size))
        object.__setattr__(self, "size_unit", _grid("size_increment", size_inc))
        object.__setattr__(self, "size_increment", format(Decimal(_text(size_inc)), "f"))
        object.__setattr__(self, "lot", _grid("lot_size", self.lot_size))
        if _ratio(self.lot, self.size_unit) is None:
            raise ValueError(
                f"lot_size {self.lot_size} is not a whole multiple of size_increment {self.size_increment}")

    # ---- exact scales ----
    @property
    def lot_units(self) -> int:
        """The order lot in size units (orders must be whole multiples of it)."""
        r = _ratio(self.lot, self.size_unit)
        return 0 if r is None else r

    @property
    def price_scale(self) -> Tuple[float, float]:
        """(num, den): price = ticks * num / den, one correctly rounded division."""
        return float(self.tick[0]), float(10 ** self.tick[1])

    @property
    def size_scale(self) -> Tuple[float, float]:
        """(num, den): size = units * num / den."""
        return float(self.size_unit[0]), float(10 ** self.size_unit[1])

    def price_to_ticks(self, price: DecimalLike) -> int:
        """Exact price -> ticks. Raises ValueError off the grid."""
        from orpflow._core.convert import decimal_to_units
        return decimal_to_units(_text(price), *self.tick, "price")

    def size_to_units(self, size: DecimalLike) -> int:
        """Exact size -> size units. Raises ValueError below size_increment."""
        from orpflow._core.convert import decimal_to_units
        return decimal_to_units(_text(size), *self.size_unit, "size")

    def ticks_to_price(self, ticks: int) -> Decimal:
        return Decimal(ticks * self.tick[0]).scaleb(-self.tick[1])

    def units_to_size(self, units: int) -> Decimal:
        return Decimal(units * self.size_unit[0]).scaleb(-self.size_unit[1])


def _text(v: DecimalLike) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def _ratio(a: Tuple[int, int], b: Tuple[int, int]) -> Optional[int]:
    """a / b for grids (mant, exp) if it is a whole number, else None."""
    e = max(a[1], b[1])
    num = a[0] * 10 ** (e - a[1])
    den = b[0] * 10 ** (e - b[1])
    return num // den if num % den == 0 else None
