"""Lowering of TreeEnsembleRegressor / TreeEnsembleClassifier for the native evaluator.

Trees are renumbered in preorder (a branch node before its children), so the evaluator's
"children come after their parent" check rules out cycles. When every branch is BRANCH_LEQ
(what scikit-learn and LightGBM export), the fixed-depth layout is emitted: leaves become nodes
linking to themselves and each node is one 16-byte record, so the evaluator walks every tree the
same number of steps, sixteen trees side by side. onnxruntime's semantics are documented in
docs/native_models.md.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from orpflow.ml.errors import ModelError, NotNative
from orpflow.ml.native import AGG, CAP, MODES, POST, _as_rows, _labels, _need, _post_attr, _Val

__all__ = ["lower_trees"]


def _tree_floats(attrs: dict, name: str, label: str, required: bool = True) -> tuple[np.ndarray | None, bool]:
    """An attribute in its opset-1 (floats) or opset-3 (tensor) form; (values, is_double)."""
    t = attrs.get(name + "_as_tensor")
    f = attrs.get(name)
    if t is not None and f is not None and len(f):
        raise ModelError(f"{label}: both {name} and {name}_as_tensor")
    if t is not None:
        if t.dtype != np.float32:
            # onnxruntime reads these only for a double input; the model input here is float32
            raise NotNative(f"{label}: {name}_as_tensor of type {t.dtype} (float32 only)")
        return np.asarray(t, dtype=np.float64).reshape(-1), False
    if f is None:
        if required:
            raise ModelError(f"{label}: missing {name}")
        return None, False
    return np.asarray(f, dtype=np.float64).reshape(-1), False


def _ints(attrs: dict, name: str, label: str) -> list[int]:
    v = attrs.get(name)
    if v is None:
        raise ModelError(f"{label}: missing {name}")
    return [int(x) for x in v]


def lower_trees(classifier: bool):
    def lower(prog, node, label, attrs, ins, opset):
        _need(ins, 1, 1, label)
        v = _as_rows(ins[0], label)
        if v.shape[0] != 1:
            raise NotNative(f"{label}: batch of {v.shape[0]} rows")
        n_feat = v.shape[1]
        tree_ids = _ints(attrs, "nodes_treeids", label)
        node_ids = _ints(attrs, "nodes_nodeids", label)
        feat_ids = _ints(attrs, "nodes_featureids", label)
        true_ids = _ints(attrs, "nodes_truenodeids", label)
        false_ids = _ints(attrs, "nodes_falsenodeids", label)
        raw_modes = attrs.get("nodes_modes")
        if raw_modes is None:
            raise ModelError(f"{label}: missing nodes_modes")
        values, _ = _tree_floats(attrs, "nodes_values", label)
        n = len(tree_ids)
        track = attrs.get("nodes_missing_value_tracks_true")
        track = [int(x) for x in track] if track is not None and len(track) else [0] * n
        lens = {len(node_ids), len(feat_ids), len(true_ids), len(false_ids), len(raw_modes),
                values.size, len(track)}
        if lens != {n}:
            raise ModelError(f"{label}: node attributes of different lengths")
        modes = []
        for m in raw_modes:
            m = m.decode() if isinstance(m, bytes) else str(m)
            if m != "LEAF" and m not in MODES:
                raise NotNative(f"{label}: node mode '{m}' is not supported natively")
            modes.append(-1 if m == "LEAF" else MODES[m])
        post = _post_attr(attrs, label)
        if classifier:
            prefix = "class"
            n_targets = _labels(attrs, "classlabels_int64s", "classlabels_strings", label)
            if n_targets < 2:
                raise NotNative(f"{label}: {n_targets} class labels")
            if n_targets == 2 and post == POST["PROBIT"]:
                raise NotNative(f"{label}: post_transform 'PROBIT' with two classes")
            agg = AGG["SUM"]
        else:
            prefix = "target"
            if "n_targets" not in attrs:
                raise ModelError(f"{label}: missing n_targets")
            n_targets = int(attrs["n_targets"])
            a = attrs.get("aggregate_function", b"SUM")
            a = a.decode() if isinstance(a, bytes) else str(a)
            if a not in AGG:
                raise NotNative(f"{label}: aggregate_function '{a}' is not supported natively")
            agg = AGG[a]
        if not 1 <= n_targets <= CAP // 4:
            raise ModelError(f"{label}: {n_targets} targets")
        w_ids = _ints(attrs, f"{prefix}_ids", label)
        w_nodes = _ints(attrs, f"{prefix}_nodeids", label)
        w_trees = _ints(attrs, f"{prefix}_treeids", label)
        weights, _ = _tree_floats(attrs, f"{prefix}_weights", label)
        if {len(w_nodes), len(w_trees), weights.size} != {len(w_ids)}:
            raise ModelError(f"{label}: weight attributes of different lengths")
        base, _ = _tree_floats(attrs, "base_values", label, required=False)
        base = np.zeros(0) if base is None else base

        # nodes of each tree, in order; a tree's root is its first node
        index: dict[tuple[int, int], int] = {}
        roots: list[int] = []
        seen_trees: set[int] = set()
        for i in range(n):
            key = (tree_ids[i], node_ids[i])
            if key in index:
                raise ModelError(f"{label}: node {key} defined twice")
            index[key] = i
            if i == 0 or tree_ids[i] != tree_ids[i - 1]:
                if tree_ids[i] in seen_trees:
                    raise NotNative(f"{label}: the nodes of tree {tree_ids[i]} are not contiguous")
                seen_trees.add(tree_ids[i])
                roots.append(i)
        leaf_w: dict[int, list[tuple[int, float]]] = {}
        for j in range(len(w_ids)):
            key = (w_trees[j], w_nodes[j])
            if key not in index:
                raise ModelError(f"{label}: weight for unknown node {key}")
            i = index[key]
            if modes[i] != -1:
                raise ModelError(f"{label}: weight on branch node {key}")
            if not 0 <= w_ids[j] < n_targets:
                raise ModelError(f"{label}: {prefix} id {w_ids[j]} out of range")
            leaf_w.setdefault(i, []).append((w_ids[j], float(weights[j])))
        if not classifier and n_targets == 1:
            for i in range(n):
                if modes[i] == -1 and len(leaf_w.get(i, ())) != 1:
                    raise NotNative(f"{label}: a leaf with {len(leaf_w.get(i, ()))} weights for one target")

        # renumber: branch nodes in preorder per tree (children after parents), leaves apart
        b_feat: list[int] = []
        b_mode: list[int] = []
        b_src: list[int] = []
        b_child: list[int] = []
        leaves: list[int] = []
        enc_roots: list[int] = []

        def child_of(i: int, cid: int) -> int:
            key = (tree_ids[i], cid)
            if not 0 <= cid < n:        # onnxruntime refuses such links too
                raise ModelError(f"{label}: node {(tree_ids[i], node_ids[i])} links to node id {cid} "
                                 f"outside [0, {n})")
            if key not in index:
                raise ModelError(f"{label}: node {(tree_ids[i], node_ids[i])} links to unknown node {cid}")
            return index[key]

        for r in roots:
            visited: set[int] = set()
            # (src node, slot in b_child to patch or -1 for root)
            stack = [(r, -1)]
            while stack:
                i, slot = stack.pop()
                if i in visited:
                    raise ModelError(f"{label}: tree {tree_ids[r]} has a cycle or a shared node")
                visited.add(i)
                if modes[i] == -1:
                    enc = ~len(leaves)
                    leaves.append(i)
                else:
                    if not 0 <= feat_ids[i] < n_feat:
                        raise ModelError(f"{label}: feature {feat_ids[i]} out of range (input has {n_feat})")
                    enc = len(b_feat)
                    b_feat.append(feat_ids[i])
                    b_mode.append(modes[i] | (8 if track[i] else 0))
                    b_src.append(i)
                    b_child.extend((0, 0))
                    # false child pushed first: the true subtree is numbered first
                    stack.append((child_of(i, false_ids[i]), 2 * enc + 1))
                    stack.append((child_of(i, true_ids[i]), 2 * enc))
                if slot < 0:
                    enc_roots.append(enc)
                else:
                    b_child[slot] = enc
                if len(b_feat) + len(leaves) > CAP // 8:
                    raise ModelError(f"{label}: too many nodes")
        nb = len(b_feat)
        thr = values[b_src].astype(np.float32) if nb else np.zeros(0, np.float32)
        leaf_first = [0]
        leaf_target: list[int] = []
        leaf_weight: list[float] = []
        for i in leaves:
            for tg, wv in leaf_w.get(i, ()):
                leaf_target.append(tg)
                leaf_weight.append(wv)
            leaf_first.append(len(leaf_target))
        if not leaves:
            leaf_first = [0, 0]        # the evaluator wants at least one (unused) leaf
        n_leaves = max(len(leaves), 1)
        if base.size not in (0, n_targets) and not (classifier and n_targets == 2 and base.size == 1):
            # onnxruntime refuses other lengths too
            raise ModelError(f"{label}: {base.size} base_values for {n_targets} outputs (0 or {n_targets})")
        flags = 0
        depth = 0
        split_off: Any = 0
        extra: list[int] = []
        if all(m == 0 for m in b_mode):
            flags |= 1
        if all(m & 7 == 0 for m in b_mode):
            # fixed-depth layout: leaves become nodes linking to themselves, so every tree is
            # walked the same number of steps and the evaluator can interleave trees
            nd = [0] * nb                     # steps from the root to each branch node
            leaf_depth = 0
            for r in enc_roots:
                if r >= 0:
                    nd[r] = 0
            for i in range(nb):               # preorder: a parent comes before its children
                for c in (b_child[2 * i], b_child[2 * i + 1]):
                    if c >= 0:
                        nd[c] = nd[i] + 1
                    else:
                        leaf_depth = max(leaf_depth, nd[i] + 1)
            if leaf_depth <= 32 and nb + len(leaves) <= CAP // 8 and n_feat < (1 << 24):
                flags |= 8
                depth = leaf_depth
                nl = len(leaves)
                enc_roots = [r if r >= 0 else nb + ~r for r in enc_roots]
                b_child = [c if c >= 0 else nb + ~c for c in b_child]
                for j in range(nl):
                    b_child.extend((nb + j, nb + j))
                b_feat = b_feat + [0] * nl
                b_mode = b_mode + [0] * nl
                thr = np.concatenate([thr, np.zeros(nl, np.float32)])
                nb += nl
                # leaf_of, then one 16-byte record per node (a step touches one cache line)
                packed = np.zeros((nb, 4), np.int32)
                packed[:, 0] = np.asarray(b_feat, np.int32) | (np.asarray(b_mode, np.int32) >> 3 << 24)
                one = (len(leaf_target) == nl and nl > 0 and len(set(leaf_target)) == 1
                       and all(leaf_first[j] == j for j in range(nl + 1)))
                if one:               # the leaf's weight in its (unused) threshold slot
                    thr[nb - nl:] = np.asarray(leaf_weight, np.float32)
                    flags |= 32
                tracked = np.asarray(b_mode, np.int32) >> 3
                if tracked.any():
                    if not np.isnan(thr[:nb - nl][tracked[:nb - nl] == 1]).any():
                        # read tracked nodes from a NaN -> -inf copy of the row
                        flags |= 64
                        packed[:, 0] = 2 * np.asarray(b_feat, np.int32) + tracked
                        split_off = prog.alloc(2 * n_feat)
                    else:
                        flags |= 16
                packed[:, 1] = thr.astype(np.float32).view(np.int32)
                ch = np.asarray(b_child, np.int32).reshape(-1, 2)
                packed[:, 2] = 16 * ch[:, 1]            # false link (byte offset)
                packed[:, 3] = 16 * ch[:, 0]            # true link
                enc_roots = [16 * r for r in enc_roots]
                extra = [0] * (nb - nl) + list(range(nl)) + packed.reshape(-1).tolist()
        if classifier and n_targets == 2 and len(set(w_ids)) == 1:
            flags |= 2
        if all(w >= 0 for w in weights):
            flags |= 4
        ints = np.concatenate([np.asarray(x, dtype=np.int64) for x in
                               (enc_roots, b_feat, b_child, b_mode, leaf_first, leaf_target, extra)])
        floats = np.concatenate([thr.astype(np.float32), np.asarray(leaf_weight, np.float32),
                                 base.astype(np.float32)])
        out = _Val((1, n_targets), off=prog.alloc(n_targets))
        scratch = prog.alloc(2 * n_targets)
        prog.emit("TREES", 1 if classifier else 0, prog.where(v), n_feat, out.off, scratch,
                  prog.int_block(ints), prog.const(floats), len(enc_roots), nb, n_leaves,
                  len(leaf_target), n_targets, agg, post, flags, base.size, depth, split_off)
        return [None, out] if classifier else [out]
    return lower
