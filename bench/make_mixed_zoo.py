#!/usr/bin/python3
"""Zoos whose families mix LoRA and full fine-tuning edge by edge (issue 8: "families that mix
LoRA and full fine-tunes"), built with the shared generators' own models, data and training
(../shared/zoo/make_vit_zoo.py and make_lm_zoo.py, imported, not copied). Every child and
grandchild is, with probability --lora-share, a LoRA fine-tune merged before saving, else a full
fine-tune.

    /usr/bin/python3 bench/make_mixed_zoo.py OUT [--arch vit|lm] [--trees 3] [--seed 0] [--lora-share 0.5]

--arch vit (default): the digits ViT, LoRA on query and value (rank 4/8/16); writes OUT/mixed/.
--arch lm: the byte-level Llama of make_lm_zoo.py (its recipes: LoRA rank 2-32 on q/v or all seven
projections, full fine-tunes per its regimes; trees alternate the mixed and hard regimes), 3
children with 2 grandchildren per tree; writes OUT/lm-mixed/ with make_lm_zoo's recipe.json.
truth.json gives a "method" per model (pretrain, full or lora). Needs Debian's python3-torch and
python3-sklearn.
"""
import argparse, json, os

import numpy as np
import torch

from zoo_generators import lm, lm_options, vit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out"); ap.add_argument("--trees", type=int, default=3)
    ap.add_argument("--children", type=int, default=3); ap.add_argument("--grandchildren", type=int, default=3)
    ap.add_argument("--dim", type=int, default=64); ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--pretrain-epochs", type=int, default=40); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lora-share", type=float, default=0.5)
    ap.add_argument("--arch", choices=["vit", "lm"], default="vit")
    a = ap.parse_args()
    if a.arch == "lm":
        return build_lm(a)
    x, y = vit.digits()
    rng = np.random.default_rng(a.seed + 3000)
    nodes = []

    def emit(mid, model, parent, method):
        vit.save_safetensors(os.path.join(a.out, "mixed", mid, "model.safetensors"), vit.hf_state_dict(model),
                             metadata={"format": "pt"})
        nodes.append({"id": mid, "path": f"{mid}/model.safetensors", "parent": parent, "method": method})
        print(f"  mixed/{mid} <- {parent} ({method})", flush=True)

    def child_of(model):
        lora = rng.random() < a.lora_share
        rank = int(rng.choice([4, 8, 16])) if lora else 0
        return vit.finetune(model, x, y, rng, int(rng.integers(1 << 30)), rank), ("lora" if lora else "full")

    for t in range(a.trees):
        torch.manual_seed(a.seed * 100 + t + 90)
        root = vit.ViT(a.dim, a.depth)
        vit.train(root, x, y, a.pretrain_epochs, 1e-3, a.seed * 100 + t + 90, noise=0.3)
        emit(f"t{t}", root, None, "pretrain")
        for c in range(a.children):
            child, how = child_of(root)
            emit(f"t{t}-c{c}", child, f"t{t}", how)
            for g in range(a.grandchildren):
                gc, how = child_of(child)
                emit(f"t{t}-c{c}-g{g}", gc, f"t{t}-c{c}", how)
    with open(os.path.join(a.out, "mixed", "truth.json"), "w") as f:
        json.dump({"split": "mixed", "models": nodes}, f, indent=1)


def build_lm(a):
    opts = lm_options(a.out, a.seed)
    corpus = lm.Corpus(opts)
    sp = lm.Split(a.out, "lm-mixed", corpus)
    rng = np.random.default_rng(a.seed + 3000)
    methods = {}

    def lora_or_full():
        if rng.random() < a.lora_share:
            return int(rng.choice([2, 4, 8, 16, 32])), str(rng.choice(["qv", "all"]))
        return None

    def edge(parent, pid, cid, regime, domain):
        how = lora_or_full()
        r = lm.finetune_recipe(rng, regime, domain, opts, how)
        model, loss = lm.run_finetune(parent, corpus, r)
        sp.emit(cid, model, pid, r, loss)
        methods[cid] = "lora" if how else "full"
        return model

    for t in range(a.trees):
        regime = ["mixed", "hard"][t % 2]
        root = lm.make_root(sp, rng, t, regime, opts, a.seed * 1000 + 300)
        methods[f"t{t}"] = "pretrain"
        doms = lm.sibling_domains(rng, regime, a.children, corpus.domains)
        for c in range(a.children):
            child = edge(root, f"t{t}", f"t{t}-c{c}", regime, doms[c])
            gdoms = lm.sibling_domains(rng, regime, 2, corpus.domains)
            for g in range(2):
                edge(child, f"t{t}-c{c}", f"t{t}-c{c}-g{g}", regime, gdoms[g])
    sp.close()
    path = os.path.join(a.out, "lm-mixed", "truth.json")
    truth = json.load(open(path))
    for m in truth["models"]:
        m["method"] = methods.get(m["id"])
    with open(path, "w") as f:
        json.dump(truth, f, indent=1)


if __name__ == "__main__":
    main()
