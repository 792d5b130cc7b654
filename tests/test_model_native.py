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


# ------------------------------------------------------------------------------------------
# models exported by the usual converters


def _data(n_classes=None, n=300, k=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k)).astype(np.float32)
    score = X[:, 0] - 0.5 * X[:, 1] + 0.3 * X[:, 2] * X[:, 3]
    if n_classes is None:
        return X, score + 0.1 * rng.normal(size=n)
    edges = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    return X, np.digitize(score, edges)


def _skl(est, X):
    from skl2onnx import to_onnx

    return to_onnx(est, X[:1], options={"zipmap": False} if hasattr(est, "predict_proba") else None,
                   target_opset={"": 17, "ai.onnx.ml": 3})


def _check_export(model, X, output=None):
    from onnx_builders import Built

    return check(Built(model, X.shape[1], 2, X[:40]), output)


SKLEARN = [
    ("MLPRegressor", None), ("MLPClassifier", 2), ("MLPClassifier", 3),
    ("RandomForestRegressor", None), ("RandomForestClassifier", 2), ("RandomForestClassifier", 3),
    ("GradientBoostingRegressor", None), ("GradientBoostingClassifier", 2),
    ("GradientBoostingClassifier", 3), ("LinearRegression", None), ("LogisticRegression", 2),
    ("LogisticRegression", 3), ("ScalerRidge", None),
]


@pytest.mark.parametrize("name,n_classes", SKLEARN, ids=[f"{a}-{b}" for a, b in SKLEARN])
def test_sklearn_exports_match_onnxruntime(name, n_classes):
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")
    import warnings

    from sklearn import ensemble, linear_model, neural_network, pipeline, preprocessing

    X, y = _data(n_classes)
    est = {
        "MLPRegressor": lambda: neural_network.MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=200, random_state=0),
        "MLPClassifier": lambda: neural_network.MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, random_state=0),
        "RandomForestRegressor": lambda: ensemble.RandomForestRegressor(10, max_depth=5, random_state=0),
        "RandomForestClassifier": lambda: ensemble.RandomForestClassifier(10, max_depth=5, random_state=0),
        "GradientBoostingRegressor": lambda: ensemble.GradientBoostingRegressor(n_estimators=20, max_depth=3),
        "GradientBoostingClassifier": lambda: ensemble.GradientBoostingClassifier(n_estimators=20, max_depth=3),
        "LinearRegression": lambda: linear_model.LinearRegression(),
        "LogisticRegression": lambda: linear_model.LogisticRegression(max_iter=500),
        "ScalerRidge": lambda: pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.Ridge()),
    }[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    model = _skl(est, X)
    nm = _check_export(model, X)
    assert nm.n_outputs == (n_classes or 1)


@pytest.mark.parametrize("n_classes", [None, 2, 3])
def test_lightgbm_exports_match_onnxruntime(n_classes):
    lgb = pytest.importorskip("lightgbm")
    pytest.importorskip("onnxmltools")
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    X, y = _data(n_classes)
    kw = dict(n_estimators=30, num_leaves=15, verbose=-1, random_state=0)
    est = lgb.LGBMRegressor(**kw) if n_classes is None else lgb.LGBMClassifier(**kw)
    est.fit(X, y)
    model = convert_lightgbm(est, initial_types=[("X", FloatTensorType([None, X.shape[1]]))],
                             target_opset=15, zipmap=False)
    X_nan = X[:40].copy()
    X_nan[::5, 1] = np.nan             # LightGBM's missing-value branches
    from onnx_builders import Built

    nm = check(Built(model, X.shape[1], 2, X_nan))
    assert nm.n_outputs == (n_classes or 1)
