"""The native model evaluator against onnxruntime (the ground truth), and its refusals.

Random dense graphs and tree ensembles (tests/onnx_builders.py), models exported from
scikit-learn and LightGBM, graphs it must refuse (NotNative, naming the op) and hostile graphs
(ModelError or NotNative, never a crash).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402
from onnx import numpy_helper as onh  # noqa: E402
from onnx_builders import assert_close, make_model, mlps, ort_rows, tree_ensembles  # noqa: E402

from orpflow.ml.errors import ModelError, NotNative  # noqa: E402
from orpflow.ml.native import compile_native  # noqa: E402

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(built, output=None):
    nm = compile_native(built.model, output)
    ref = ort_rows(built.model, built.rows, built.rank, output)
    got = nm.evaluate(built.rows)
    assert nm.n_inputs == built.n_inputs
    assert got.shape == ref.shape
    assert_close(got, ref, onnx.printer.to_text(built.model.graph), atol=built.atol)
    return nm


@settings(max_examples=80, **SETTINGS)
@given(mlps())
def test_random_dense_graphs_match_onnxruntime(built):
    check(built)


@settings(max_examples=100, **SETTINGS)
@given(tree_ensembles(classifier=False))
def test_random_tree_regressors_match_onnxruntime(built):
    check(built)


@settings(max_examples=100, **SETTINGS)
@given(tree_ensembles(classifier=True))
def test_random_tree_classifiers_match_onnxruntime(built):
    check(built)
