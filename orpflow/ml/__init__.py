"""Machine-learned signals: datasets from recordings, ONNX models in the engine.

Nothing here is imported by ``import orpflow``: ``orpflow.ml`` loads on first use, and the
``onnx``/``onnxruntime`` packages (the ``ml`` extra) only when a model is loaded.
"""
from __future__ import annotations

from orpflow.ml.dataset import dataset, label_classes, purged_kfold, purged_split
from orpflow.ml.errors import ModelError, NotNative

__all__ = ["ModelError", "NotNative", "dataset", "label_classes", "purged_kfold", "purged_split"]
