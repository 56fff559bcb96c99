#!/usr/bin/env python3
"""Prototype of the recovery method, run on the statistics dumped by dump_stats.py.

Usage: prototype.py [ft lora chain]   (reads /tmp/mother-stats-<split>.json)
Prints, per split, edge accuracy / undirected accuracy / ARI for the paper's recipe (given the true
clusters and the LoRA flag, as the paper is) and for our method (no oracle), and the confidence
separation (mean confidence of right vs wrong edges, AUC).
Everything is built only from the per-tensor statistics the native layer produces.
"""
import json, sys
import numpy as np
import networkx as nx


def load(split):
    d = json.load(open(f"/tmp/mother-stats-{split}.json"))
    N, T = len(d["ids"]), len(d["tensors"])
    a = lambda k, sh: np.array([np.nan if x is None else x for x in d[k]], dtype=float).reshape(sh)
    S = dict(ids=d["ids"], tensors=d["tensors"], N=N, T=T)
    for k in ["kurtosis", "mean", "m2"]: S[k] = a(k, (T, N))
    for k in ["sumsq", "sumabs", "maxabs", "dot", "rank"]: S[k] = a(k, (T, N, N))
    idx = {m: i for i, m in enumerate(d["ids"])}
    S["truth"] = [None if p is None else idx[p] for p in d["parents"]]
    return S


# ---------------------------------------------------------------- evaluation
def edge_acc(truth, pred):
    return np.mean([t == p for t, p in zip(truth, pred)])


def undirected_acc(truth, pred):
    pe = {frozenset((i, p)) for i, p in enumerate(pred) if p is not None}
    ok = [(t is None and pred[i] is None) or (t is not None and frozenset((i, t)) in pe) for i, t in enumerate(truth)]
    return np.mean(ok)


def ari(a, b):
    from math import comb
    a, b = np.asarray(a), np.asarray(b)
    ua, ub = np.unique(a), np.unique(b)
    C = np.array([[np.sum((a == x) & (b == y)) for y in ub] for x in ua])
    s = sum(comb(int(v), 2) for v in C.ravel()); sa = sum(comb(int(v), 2) for v in C.sum(1))
    sb = sum(comb(int(v), 2) for v in C.sum(0)); n = comb(len(a), 2)
    e = sa * sb / n; m = (sa + sb) / 2
    return 1.0 if m == e else (s - e) / (m - e)


def families_of(parent):
    def root(i):
        while parent[i] is not None: i = parent[i]
        return i
    return [root(i) for i in range(len(parent))]


# ---------------------------------------------------------------- the paper's recipe
def paper(S, members, lora):
    numel = np.array([t["numel"] for t in S["tensors"]])
    sq = np.array([t["rows"] == t["cols"] and t["rows"] > 1 for t in S["tensors"]])
    idx = np.array(members); n = len(idx)
    if lora:
        R = S["rank"][:, idx][:, :, idx]
        D = np.nansum(R[sq], 0)
    else:
        L = np.sqrt(S["sumsq"][:, idx][:, :, idx])  # per-tensor L2
        off = ~np.eye(n, dtype=bool)
        Ds = []
        for t in range(S["T"]):
            v = L[t][off]; lo, hi = v.min(), v.max()
            if hi > lo: Ds.append((L[t] - lo) / (hi - lo))
        D = np.mean(Ds, 0); np.fill_diagonal(D, 0)
    k = np.nanmean(S["kurtosis"][sq][:, idx], 0)
    lam = 0.3 * D[~np.eye(n, dtype=bool)].mean()
    G = nx.DiGraph()
    for i in range(n):
        for j in range(n):
            if i != j: G.add_edge(i, j, weight=D[i, j] + lam * (k[j] > k[i]))
    A = nx.minimum_spanning_arborescence(G)
    par = {j: i for i, j in A.edges()}
    return {idx[j]: (None if j not in par else idx[par[j]]) for j in range(n)}


# ---------------------------------------------------------------- our method
def centered(S):
    numel = np.array([t["numel"] for t in S["tensors"]], dtype=float)
    cdot = S["dot"] - numel[:, None, None] * S["mean"][:, :, None] * S["mean"][:, None, :]
    return numel, cdot


def relatedness(S, tens):
    """Median over tensors of the Pearson correlation of two models' weights: ~0 for independent
    inits (near-orthogonal), ~1 for relatives."""
    numel, cdot = centered(S)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cdot / np.sqrt(S["m2"][:, :, None] * S["m2"][:, None, :])
    return np.nanmedian(corr[tens], 0)


def components(N, linked):
    lab = list(range(N))
    def f(i):
        while lab[i] != i: lab[i] = lab[lab[i]]; i = lab[i]
        return i
    for i in range(N):
        for j in range(i + 1, N):
            if linked[i, j]: lab[f(i)] = f(j)
    roots = sorted({f(i) for i in range(N)}, key=lambda r: min(i for i in range(N) if f(i) == r))
    return [[i for i in range(N) if f(i) == r] for r in roots]


def prim(D):
    n = len(D); inT = np.zeros(n, bool); best = np.full(n, np.inf); frm = np.full(n, -1); inT[0] = True
    best[:] = D[0]; frm[:] = 0; edges = []
    for _ in range(n - 1):
        c = np.where(inT, np.inf, best); j = int(np.argmin(c)); inT[j] = True; edges.append((int(frm[j]), j))
        upd = (~inT) & (D[j] < best); best[upd] = D[j][upd]; frm[upd] = j
    return edges


def orient(n, edges, score):
    """Root the undirected tree where the sum over edges (oriented away from the root) of
    score[parent, child] is largest; returns parent array (local indices) and per-root totals."""
    adj = [[] for _ in range(n)]
    for a, b in edges: adj[a].append(b); adj[b].append(a)
    tot = np.zeros(n)
    for r in range(n):  # O(n^2) is fine for the prototype; the TS version reroots in O(n)
        par = [None] * n; st = [r]; seen = {r}; s = 0.0
        while st:
            u = st.pop()
            for v in adj[u]:
                if v not in seen: seen.add(v); par[v] = u; s += score[u, v]; st.append(v)
        tot[r] = s
    r = int(np.argmax(tot))
    par = [None] * n; st = [r]; seen = {r}
    while st:
        u = st.pop()
        for v in adj[u]:
            if v not in seen: seen.add(v); par[v] = u; st.append(v)
    return par, tot


class Rng:
    """mulberry32, the same generator as src/graph/confidence.ts, so both give the same numbers."""
    def __init__(s, seed): s.a = seed & 0xFFFFFFFF
    def next(s):
        s.a = (s.a + 0x6D2B79F5) & 0xFFFFFFFF; t = s.a
        t = ((t ^ (t >> 15)) * (t | 1)) & 0xFFFFFFFF
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296.0


def cluster(S):
    """Families = connected components of 'clearly related' (median weight correlation > 1/2)."""
    rel = relatedness(S, slice(None))
    return components(S["N"], rel > 0.5)


def detect_lora(S, idx, Dft, sumsq):
    """For each model's nearest neighbour, the 2-D tensors that differ: is the difference low rank
    (median rank below half of full rank)? Decided per family."""
    full = np.array([min(t["rows"], t["cols"]) if t["rows"] > 1 else 0 for t in S["tensors"]], dtype=float)
    n = len(idx); R = S["rank"][:, idx][:, :, idx]
    if n < 2: return False
    Dn = Dft + np.diag(np.full(n, np.inf)); frac = []
    for i in range(n):
        j = int(np.argmin(Dn[i]))
        dif = (sumsq[:, i, j] > 0) & (full > 1) & np.isfinite(R[:, i, j])
        if dif.any(): frac.append(np.median(R[dif, i, j] / full[dif]))
    return bool(frac) and float(np.median(frac)) < 0.5


def family_tree(S, idx, w, lora, variant=None):
    """Undirected MST on the family's distance, rooted where the norm-growth evidence is largest.
    w: per-tensor weights (1 = all, bootstrap: resample counts). Returns local parents, root totals."""
    variant = variant or {}
    n = len(idx)
    if n == 1: return [None], np.zeros(1), np.zeros((1, 1))
    sub = lambda X: X[:, idx][:, :, idx]
    sumsq = (sub(S["sumsq"]) * w[:, None, None]).sum(0)
    if variant.get("dist") == "rel":
        m2 = S["m2"][:, idx].mean(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rs = np.where(m2[:, None, None] > 0, sub(S["sumsq"]) / m2[:, None, None], 0)
        Dft = np.sqrt((rs * w[:, None, None]).sum(0))
    else:
        Dft = np.sqrt(sumsq)
    if lora:
        full = np.array([min(t["rows"], t["cols"]) if t["rows"] > 1 else 0 for t in S["tensors"]], dtype=float)
        R = sub(S["rank"])
        has = np.isfinite(R).all((1, 2)) & (full > 1) & (w > 0)
        D = (R[has] * w[has, None, None]).sum(0) / (full[has] * w[has]).sum() + 1e-9 * Dft / max(Dft.max(), 1e-300)
    else:
        D = Dft
    edges = prim(D)
    # direction: a child is its parent plus an update roughly independent of it, so its squared
    # norm grows by about the update's squared size: score = (|c|^2 - |p|^2) / |c - p|^2, on weights
    # centred per tensor (a LayerNorm gain sitting at 1 is an offset, not spread)
    numel = np.array([t["numel"] for t in S["tensors"]], dtype=float)
    mu = S["mean"][:, idx]
    dm2 = (S["m2"][:, idx] * w[:, None]).sum(0)
    csq = ((sub(S["sumsq"]) - numel[:, None, None] * (mu[:, :, None] - mu[:, None, :]) ** 2) * w[:, None, None]).sum(0)
    if variant.get("dir") == "raw":
        dm2 = (np.einsum("tii->ti", S["dot"])[:, idx] * w[:, None]).sum(0); csq = sumsq
    with np.errstate(invalid="ignore", divide="ignore"):
        sc = (dm2[None, :] - dm2[:, None]) / csq
    sc = np.nan_to_num(np.clip(sc, -1, 1))
    if variant.get("dir") == "kurt":
        k = np.nanmean(S["kurtosis"][:, idx], 0); sc = np.sign(k[:, None] - k[None, :])
    par, tot = orient(n, edges, sc)
    return par, tot, D


def ours(S, variant=None):
    N, T = S["N"], S["T"]
    fams = cluster(S)
    parent = [None] * N; info = []
    for mem in fams:
        idx = np.array(mem); w = np.ones(T)
        sumsq = S["sumsq"][:, idx][:, :, idx]
        lora = detect_lora(S, idx, np.sqrt(sumsq.sum(0)), sumsq)
        par, tot, _ = family_tree(S, idx, w, lora, variant)
        for a in range(len(idx)):
            parent[idx[a]] = None if par[a] is None else int(idx[par[a]])
        info.append(dict(members=mem, lora=lora))
    return parent, fams, info


def bootstrap_conf(S, B=50, seed=0, **kw):
    """Confidence of each model's parent = how often resampling the tensors (with replacement)
    keeps it; families and the LoRA decision stay fixed."""
    base, fams, info = ours(S, **kw)
    rng = Rng(seed)
    agree = np.zeros(S["N"])
    for _ in range(B):
        w = np.zeros(S["T"])
        for _ in range(S["T"]): w[int(rng.next() * S["T"])] += 1
        for f in info:
            idx = np.array(f["members"])
            par, _, _ = family_tree(S, idx, w, f["lora"], kw.get("variant"))
            for a in range(len(idx)):
                p = None if par[a] is None else int(idx[par[a]])
                agree[idx[a]] += p == base[idx[a]]
    return base, agree / B


def auc(pos, neg):
    if not len(pos) or not len(neg): return float("nan")
    return np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])


if __name__ == "__main__":
    splits = sys.argv[1:] or ["ft", "lora", "chain"]
    for s in splits:
        S = load(s); truth = S["truth"]; tf = families_of(truth)
        pp = [None] * S["N"]
        for r in sorted(set(tf)):
            mem = [i for i in range(S["N"]) if tf[i] == r]
            for k, v in paper(S, mem, s == "lora").items(): pp[k] = v
        print(f"{s:6s} paper : edge {edge_acc(truth, pp):.3f} undirected {undirected_acc(truth, pp):.3f} ARI {ari(tf, families_of(pp)):.3f} (true clusters, LoRA flag given)")
        for name, var in [("ours", {}), ("ours rel-dist", {"dist": "rel"}), ("ours kurt-dir", {"dir": "kurt"}), ("ours raw-norm", {"dir": "raw"})]:
            par, fams, info = ours(S, variant=var)
            print(f"{s:6s} {name:14s}: edge {edge_acc(truth, par):.3f} undirected {undirected_acc(truth, par):.3f} ARI {ari(tf, families_of(par)):.3f} lora={[f['lora'] for f in info]}")
        par, conf = bootstrap_conf(S)
        # for the TypeScript port's parity check (test/graph-zoo.test.ts)
        json.dump({"parent": par, "confidence": conf.tolist()}, open(f"/tmp/mother-proto-{s}.json", "w"))
        ok = np.array([a == b for a, b in zip(par, truth)])
        print(f"{s:6s} confidence: right {conf[ok].mean():.3f} (n={ok.sum()}) wrong {conf[~ok].mean() if (~ok).any() else float('nan'):.3f} (n={(~ok).sum()}) AUC {auc(conf[ok], conf[~ok]):.3f}")
