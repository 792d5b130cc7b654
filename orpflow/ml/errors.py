"""Errors of the model loader and the native compiler."""
from __future__ import annotations


class ModelError(ValueError):
    """A model file or model setting that cannot be used; the message says what does not match."""


class NotNative(Exception):
    """The graph uses something the native evaluator does not implement (the message names it:
    an operator, an attribute value or a shape); onnxruntime evaluates such a model instead."""
