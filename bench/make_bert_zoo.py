#!/usr/bin/python3
"""A BERT zoo (issue 8's unseen case "BERT encoders fine-tuned into classifiers with new heads"):
small post-LayerNorm BERT encoders under Hugging Face's tensor names, each root pre-trained by
masked language modelling (BertForMaskedLM: `bert.embeddings.*`, `bert.encoder.layer.{i}.*`,
`cls.predictions.*`, decoder tied to the word embeddings, no pooler) on the corpus of
../shared/zoo/make_lm_zoo.py (imported, not copied: its corpus, tree shapes, fine-tuning recipes and
sibling domains), then fine-tuned into sequence classifiers (BertForSequenceClassification: a newly
initialised `bert.pooler.dense` and `classifier`, the MLM head dropped) that tell which of 2-4 text
domains a window of bytes comes from. Grandchildren fine-tune a classifier on another task with a
new head of their own (its shape is the task's number of classes); the pooler is inherited. Writes
OUT/bert-cls/ with truth.json and recipe.json.

    /usr/bin/python3 bench/make_bert_zoo.py OUT [--seed 0] [--quick]
"""
import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_generators import lm, lm_options

BYTES, MASK, CLS = 256, 256, 257
VOCAB, DIM, LAYERS, HEADS, INNER, SEQ, BATCH = 258, 64, 4, 4, 256, 64, 16
LN_EPS = 1e-12


class SelfAttention(nn.Module):
    def __init__(s):
        super().__init__()
        s.query, s.key, s.value = nn.Linear(DIM, DIM), nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)
    def forward(s, x):
        B, T, _ = x.shape; hd = DIM // HEADS
        q, k, v = (m(x).view(B, T, HEADS, hd).transpose(1, 2) for m in (s.query, s.key, s.value))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), -1)  # bidirectional
        return (att @ v).transpose(1, 2).reshape(B, T, DIM)


class DenseNorm(nn.Module):
    """BertSelfOutput / BertOutput: dense, then LayerNorm of the residual sum (post-LN)."""
    def __init__(s, n_in):
        super().__init__(); s.dense = nn.Linear(n_in, DIM); s.LayerNorm = nn.LayerNorm(DIM, eps=LN_EPS)
    def forward(s, h, x):
        return s.LayerNorm(s.dense(h) + x)


class Attention(nn.Module):
    def __init__(s):
        super().__init__(); s.self = SelfAttention(); s.output = DenseNorm(DIM)
    def forward(s, x):
        return s.output(s.self(x), x)


class Intermediate(nn.Module):
    def __init__(s):
        super().__init__(); s.dense = nn.Linear(DIM, INNER)
    def forward(s, x):
        return F.gelu(s.dense(x))


class Layer(nn.Module):
    def __init__(s):
        super().__init__(); s.attention = Attention(); s.intermediate = Intermediate(); s.output = DenseNorm(INNER)
    def forward(s, x):
        a = s.attention(x)
        return s.output(s.intermediate(a), a)


class Embeddings(nn.Module):
    def __init__(s):
        super().__init__()
        s.word_embeddings = nn.Embedding(VOCAB, DIM); s.position_embeddings = nn.Embedding(SEQ, DIM)
        s.token_type_embeddings = nn.Embedding(2, DIM); s.LayerNorm = nn.LayerNorm(DIM, eps=LN_EPS)
    def forward(s, ids):
        pos = torch.arange(ids.shape[1])
        return s.LayerNorm(s.word_embeddings(ids) + s.position_embeddings(pos) + s.token_type_embeddings.weight[0])


class Encoder(nn.Module):
    def __init__(s):
        super().__init__(); s.layer = nn.ModuleList([Layer() for _ in range(LAYERS)])


class Pooler(nn.Module):
    def __init__(s):
        super().__init__(); s.dense = nn.Linear(DIM, DIM)
    def forward(s, x):
        return torch.tanh(s.dense(x[:, 0]))


class Bert(nn.Module):
    def __init__(s):
        super().__init__(); s.embeddings = Embeddings(); s.encoder = Encoder()
    def forward(s, ids):
        x = s.embeddings(ids)
        for layer in s.encoder.layer:
            x = layer(x)
        return x


def normal_init(module, gen):
    """BERT's init: weights N(0, 0.02), biases 0, LayerNorm 1 / 0."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "LayerNorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
            else:
                p.zero_()


class Transform(nn.Module):
    def __init__(s):
        super().__init__(); s.dense = nn.Linear(DIM, DIM); s.LayerNorm = nn.LayerNorm(DIM, eps=LN_EPS)


class Predictions(nn.Module):
    def __init__(s):
        super().__init__(); s.transform = Transform(); s.bias = nn.Parameter(torch.zeros(VOCAB))


class MlmHead(nn.Module):
    def __init__(s):
        super().__init__(); s.predictions = Predictions()


class BertForMaskedLM(nn.Module):
    def __init__(s, seed):
        super().__init__()
        s.bert = Bert(); s.cls = MlmHead()
        normal_init(s, torch.Generator().manual_seed(seed))
    def loss(s, batch):
        ids, target = batch
        h = s.bert(ids)
        t = s.cls.predictions.transform
        h = t.LayerNorm(F.gelu(t.dense(h)))
        logits = h @ s.bert.embeddings.word_embeddings.weight.t() + s.cls.predictions.bias  # tied decoder
        return F.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1), ignore_index=-100)


class BertForSequenceClassification(nn.Module):
    def __init__(s, bert, pooler, classes, seed):
        super().__init__()
        s.bert = bert; s.bert.pooler = pooler; s.classifier = nn.Linear(DIM, classes)
        normal_init(s.classifier, torch.Generator().manual_seed(seed))
    def loss(s, batch):
        ids, labels = batch
        return F.cross_entropy(s.classifier(s.bert.pooler(s.bert(ids))), labels)


def mlm_batch(corpus, rng):
    """[CLS] + 63 bytes of the mixed corpus, 15 % of the bytes masked (targets elsewhere -100)."""
    b = corpus.batch("mixed", rng)[:, :SEQ - 1]
    ids = torch.cat([torch.full((b.shape[0], 1), CLS), b], 1)
    mask = torch.from_numpy(rng.random(ids.shape) < 0.15); mask[:, 0] = False
    target = torch.where(mask, ids, torch.full_like(ids, -100))
    return ids.masked_fill(mask, MASK), target


def class_batch(corpus, rng, task):
    """Windows of the task's domains, labelled by domain."""
    labels = rng.integers(len(task), size=BATCH)
    ids, ys = [], []
    for c, dom in enumerate(task):
        n = int((labels == c).sum())
        if n:
            ids.append(corpus.batch(dom, rng, bs=n)[:, :SEQ - 1]); ys += [c] * n
    ids = torch.cat(ids)
    return torch.cat([torch.full((ids.shape[0], 1), CLS), ids], 1), torch.tensor(ys)


def train(model, corpus, r, batch):
    named = [(n, p) for n, p in model.named_parameters()]
    groups = [{"params": [p for n, p in named if p.dim() >= 2], "weight_decay": r["wd"]},
              {"params": [p for n, p in named if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=r["lr"], betas=tuple(r["betas"]), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lm.lr_lambda(r["schedule"], r["steps"], r["warmup"]))
    rng = np.random.default_rng(r["seed"])
    model.train(); tail = []
    for i in range(r["steps"]):
        loss = model.loss(batch(rng))
        opt.zero_grad(set_to_none=True); loss.backward()
        if r["clip"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), r["clip"])
        opt.step(); sched.step()
        if i >= r["steps"] - max(1, r["steps"] // 10):
            tail.append(loss.item())
    model.eval()
    return float(np.mean(tail))


def tensors_of(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def task_for(domain, classes, domains):
    """The domain and the next classes - 1 in a fixed cyclic order: siblings given one domain and
    one size (the hard regime) get one task."""
    k = domains.index(domain)
    return [domains[(k + j) % len(domains)] for j in range(classes)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out"); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="every step count / 20 (a fast test)")
    a = ap.parse_args()
    opts = lm_options(a.out, a.seed); opts.quick = a.quick
    corpus = lm.Corpus(opts)
    domains = list(corpus.domains)
    out = os.path.join(a.out, "bert-cls")
    if os.path.isdir(out) and os.listdir(out):
        raise SystemExit(f"make_bert_zoo: {out} exists and is not empty")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(a.seed + 3000)
    models, recipes, t0 = [], [], time.time()

    def emit(mid, model, parent, r, loss):
        path = lm.save_model(os.path.join(out, mid), tensors_of(model), torch.float32)
        models.append({"id": mid, "path": path, "parent": parent})
        recipes.append({"id": mid, "parent": parent, **r, "train_loss": round(loss, 4)})
        print(f"  bert-cls/{mid:16s} <- {str(parent):14s} {r['method']:9s} {r['data']:40s} steps {r['steps']:4d} "
              f"lr {r['lr']:.0e} wd {r['wd']} loss {loss:.3f}  [{time.time() - t0:6.0f}s]", flush=True)

    regimes = ["easy", "mixed", "hard", "mixed"]
    for t, kids in enumerate(lm.tree_shapes(rng, 4, 39, 41)):
        regime = regimes[t]
        r = lm.pretrain_recipe(rng, regime, opts); r["data"] = "mixed (masked LM)"
        root = BertForMaskedLM(a.seed * 1000 + t)
        emit(f"t{t}", root, None, r, train(root, corpus, r, lambda g: mlm_batch(corpus, g)))
        stack = [((), root, f"t{t}")]
        while stack:
            node, model, mid = stack.pop(0)
            n = kids[node]
            if not n:
                continue
            doms = lm.sibling_domains(rng, regime, n, domains)
            size = int(rng.integers(2, 5))
            for c in range(n):
                r = lm.finetune_recipe(rng, regime, doms[c], opts)
                classes = size if regime == "hard" else int(rng.integers(2, 5))
                task = task_for(doms[c], classes, domains)
                r.update({"method": "classify", "data": "+".join(task), "classes": classes})
                cid = f"{mid}-c{c}"
                bert = copy.deepcopy(model.bert)
                pooler = bert.pooler if hasattr(bert, "pooler") else None
                if pooler is None:
                    pooler = Pooler(); normal_init(pooler, torch.Generator().manual_seed(r["seed"] + 1))
                child = BertForSequenceClassification(bert, pooler, classes, r["seed"])
                emit(cid, child, mid, r, train(child, corpus, r, lambda g, task=task: class_batch(corpus, g, task)))
                stack.append((node + (c,), child, cid))
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump({"split": "bert-cls", "models": models}, f, indent=1)
    with open(os.path.join(out, "recipe.json"), "w") as f:
        json.dump({"split": "bert-cls", "models": recipes}, f, indent=1)
    print(f"bert-cls: {len(models)} models in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
