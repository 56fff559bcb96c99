#!/usr/bin/python3
"""An lm-ft zoo whose fine-tunes use plain SGD with momentum instead of AdamW (issue 8's unseen case
"plain SGD fine-tunes"): ../shared/zoo/make_lm_zoo.py's lm-ft split, trees, recipes, roots and
training loop (imported, not copied), with every fine-tune's optimizer swapped for SGD (momentum
0.9, no weight decay), its learning rate scaled by --lr-scale (SGD steps are gradient-sized, Adam's
are about lr per weight) and its gradients clipped at 1.0. Roots are pre-trained with AdamW as
there. Writes OUT/lm-ft-sgd/ with truth.json and recipe.json (the recipes' lr is AdamW's, before
scaling).

    /usr/bin/python3 bench/make_sgd_zoo.py OUT [--seed 0] [--lr-scale 200]
"""
import argparse

import torch

from zoo_generators import lm, lm_options


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out"); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr-scale", type=float, default=200.0)
    a = ap.parse_args()
    opts = lm_options(a.out, a.seed)
    adamw, train = torch.optim.AdamW, lm.train

    def sgd(groups, lr, betas=None, eps=None):
        for g in groups:
            g["weight_decay"] = 0.0
        return torch.optim.SGD(groups, lr=lr * a.lr_scale, momentum=0.9)

    def train_with_sgd(model, corpus, r, params=None):
        if r["method"] == "pretrain":
            return train(model, corpus, r, params)
        lm.torch.optim.AdamW = sgd
        try:
            return train(model, corpus, {**r, "clip": 1.0}, params)
        finally:
            lm.torch.optim.AdamW = adamw

    lm.train = train_with_sgd
    corpus = lm.Corpus(opts)
    class SgdSplit(lm.Split):  # build_ft's split, under its own name
        def __init__(s, out, name, corpus):
            super().__init__(out, "lm-ft-sgd", corpus)

    lm.Split = SgdSplit
    lm.build_ft(opts, corpus)


if __name__ == "__main__":
    main()
