#!/usr/bin/env python3
"""Robustness of the method to which tensors are compared (the CLI can select tensors): edge
accuracy per split with all tensors, only 2-D tensors, only square 2-D tensors, only 1-D tensors,
and leave-one-block-out (tensors of one encoder layer removed)."""
import sys
import numpy as np
from prototype import load, cluster, detect_lora, family_tree, edge_acc, undirected_acc

for s in ["ft", "lora", "chain"]:
    S = load(s); T = S["T"]; ten = S["tensors"]
    masks = {
        "all": np.ones(T),
        "2-D": np.array([t["rows"] > 1 for t in ten], float),
        "square": np.array([t["rows"] == t["cols"] and t["rows"] > 1 for t in ten], float),
        "1-D": np.array([t["rows"] == 1 for t in ten], float),
    }
    for L in range(4):
        masks[f"no layer {L}"] = np.array([f"layer.{L}." not in t["name"] for t in ten], float)
    out = []
    for name, w in masks.items():
        parent = [None] * S["N"]
        for mem in cluster(S):
            idx = np.array(mem)
            sumsq = S["sumsq"][:, idx][:, :, idx] * w[:, None, None]
            lora = detect_lora(S, idx, np.sqrt(sumsq.sum(0)), sumsq)
            par, _, _ = family_tree(S, idx, w, lora)
            for a in range(len(idx)):
                parent[idx[a]] = None if par[a] is None else int(idx[par[a]])
        out.append(f"{name} {edge_acc(S['truth'], parent):.3f}/{undirected_acc(S['truth'], parent):.3f}")
    print(s, " | ".join(out))
