#!/usr/bin/python3
"""A zoo of longer continued-pre-training histories (issue 8's unseen case): the lm-chain recipe of
../shared/zoo/make_lm_zoo.py (its model, corpus, stage and fine-tuning recipes and training loop,
imported, not copied) with --stages stages after each root instead of 3, and --branches LO,HI
fine-tuned branches off each stage (lm-chain has 1-2; with 0-1, at least one per tree). Writes
OUT/lm-long-chain/ with truth.json and recipe.json.

    /usr/bin/python3 bench/make_long_chain_zoo.py OUT [--seed 0] [--stages 7] [--trees 2] [--branches 1,2] [--quick]
"""
import argparse
import copy

import numpy as np

from zoo_generators import lm, lm_options


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out"); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", type=int, default=7); ap.add_argument("--trees", type=int, default=2)
    ap.add_argument("--branches", default="1,2", help="fine-tunes per stage, LO,HI (default %(default)s, as lm-chain)")
    ap.add_argument("--quick", action="store_true", help="every step count / 20 (a fast test)")
    a = ap.parse_args()
    opts = lm_options(a.out, a.seed); opts.quick = a.quick
    corpus = lm.Corpus(opts)
    sp = lm.Split(a.out, "lm-long-chain", corpus)
    rng = np.random.default_rng(a.seed + 4000)
    regimes = ["mixed", "hard", "easy"]
    for t in range(a.trees):
        regime = regimes[t % len(regimes)]
        lo, hi = (int(v) for v in a.branches.split(","))
        branches = rng.integers(lo, hi + 1, size=a.stages + 1)
        if not branches.any():
            branches[int(rng.integers(a.stages + 1))] = 1
        m = lm.make_root(sp, rng, t, regime, opts, a.seed * 1000 + 400)
        prev = f"t{t}"
        for stage in range(a.stages + 1):
            if stage:
                r = lm.continue_recipe(rng, opts)
                m = copy.deepcopy(m)
                loss = lm.train(m, corpus, r)
                sid = f"t{t}-v{stage}"
                sp.emit(sid, m, prev, r, loss)
                prev = sid
            doms = lm.sibling_domains(rng, regime, int(branches[stage]), corpus.domains)
            for k in range(int(branches[stage])):
                r = lm.finetune_recipe(rng, regime, doms[k], opts)
                child, loss = lm.run_finetune(m, corpus, r)
                sp.emit(f"{prev}-ft{k}", child, prev, r, loss)
    sp.close()


if __name__ == "__main__":
    main()
