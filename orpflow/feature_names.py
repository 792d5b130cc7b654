"""The built-in feature columns and their groups: plain data, so the config can check
names (signal weights) without importing the feature runner."""
from __future__ import annotations

from typing import Dict, Tuple

#: The built-in feature columns, in row order.
FEATURE_NAMES: Tuple[str, ...] = (
    "mid", "spread_bps", "imbalance", "weighted_imbalance", "depth_ratio", "bid_pressure",
    "ask_pressure", "book_pressure", "weighted_mid", "ofi",
    "volatility", "volatility_z", "momentum", "imbalance_momentum", "imbalance_z",
    "vwap", "trade_flow", "ofi_window", "imbalance_twa", "price_acceleration", "volume_surge",
    "toxicity",
)

#: Which group computes each feature (FeatureConfig.groups switches groups off).
FEATURE_GROUP: Dict[str, str] = {
    **{n: "book" for n in FEATURE_NAMES[:10]},
    **{n: "history" for n in FEATURE_NAMES[10:15]},
    "vwap": "trades", "trade_flow": "trades", "volume_surge": "trades",
    "ofi_window": "windows", "imbalance_twa": "windows", "price_acceleration": "windows",
    "toxicity": "toxicity",
}
