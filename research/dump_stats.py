#!/usr/bin/env python3
"""Dumps the per-tensor statistics the native layer computes (see src/graph/types.ts TensorStats)
for one zoo split, as JSON, so the Python prototype and the TypeScript port see the same inputs.

Usage: dump_stats.py /work/shared/zoo/ft /tmp/mother-stats-ft.json
Tensors: every tensor present with the same name and shape in all models (classifier heads differ in
shape and drop out). Matrix view: rows = prod(shape[:-1]), cols = shape[-1] (1-D: rows = 1).
rank: numerical rank of W_i - W_j for tensors with min(rows, cols) >= 2, same tolerance as
native/cpu/kernels.h diff_rank (float64 SVD, rounding-noise floor of float32 storage).
"""
import json, struct, sys, os
import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=DT[v["dtype"]]).reshape(v["shape"])
    return out


def diff_rank(a, b):
    d = a.astype(np.float64) - b.astype(np.float64)
    s = np.linalg.svd(d, compute_uv=False)
    if s.size == 0 or s[0] == 0:
        return 0
    r, c = d.shape
    rms = np.sqrt((np.sum(a.astype(np.float64) ** 2) + np.sum(b.astype(np.float64) ** 2)) / (2 * a.size))
    tol = max(max(r, c) * np.finfo(np.float64).eps * s[0], 4.0 * 2.0 ** -24 * rms * (np.sqrt(r) + np.sqrt(c)))
    return int(np.sum(s > tol))


def main(split_dir, out_path):
    truth = json.load(open(os.path.join(split_dir, "truth.json")))
    ids = [m["id"] for m in truth["models"]]
    models = [load(os.path.join(split_dir, m["path"])) for m in truth["models"]]
    names = sorted(k for k in models[0] if all(k in m and m[k].shape == models[0][k].shape for m in models))
    N, T = len(ids), len(names)
    kurt = np.full((T, N), np.nan); mean = np.zeros((T, N)); m2 = np.zeros((T, N))
    sumsq = np.zeros((T, N, N)); sumabs = np.zeros((T, N, N)); maxabs = np.zeros((T, N, N))
    dot = np.zeros((T, N, N)); rank = np.full((T, N, N), np.nan)
    tensors = []
    for t, name in enumerate(names):
        shape = models[0][name].shape
        cols = shape[-1] if len(shape) else 1
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        tensors.append({"name": name, "rows": rows, "cols": int(cols), "numel": rows * int(cols)})
        W = np.stack([m[name].astype(np.float64).reshape(-1) for m in models])  # N x n
        mu = W.mean(1); dev = W - mu[:, None]
        s2 = (dev ** 2).sum(1); s4 = (dev ** 4).sum(1)
        n = W.shape[1]
        mean[t] = mu; m2[t] = s2
        with np.errstate(invalid="ignore", divide="ignore"):
            kurt[t] = np.where(s2 > 0, n * s4 / s2 ** 2 - 3.0, np.nan)
        dot[t] = W @ W.T
        for i in range(N):
            d = W - W[i]
            sumsq[t, i] = (d ** 2).sum(1); sumabs[t, i] = np.abs(d).sum(1); maxabs[t, i] = np.abs(d).max(1)
        if min(rows, cols) >= 2:
            Ms = [m[name].reshape(rows, cols) for m in models]
            for i in range(N):
                rank[t, i, i] = 0
                for j in range(i + 1, N):
                    rank[t, i, j] = rank[t, j, i] = diff_rank(Ms[i], Ms[j])
    f = lambda a: [None if not np.isfinite(x) else float(x) for x in a.reshape(-1)]
    json.dump({"split": truth["split"], "ids": ids, "parents": [m["parent"] for m in truth["models"]],
               "tensors": tensors, "kurtosis": f(kurt), "mean": f(mean), "m2": f(m2),
               "sumsq": f(sumsq), "sumabs": f(sumabs), "maxabs": f(maxabs), "dot": f(dot), "rank": f(rank)},
              open(out_path, "w"))
    print(f"{split_dir}: N={N} T={T} -> {out_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
