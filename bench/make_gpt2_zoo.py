#!/usr/bin/python3
"""A GPT-2-style zoo (issue 8's unseen case "GPT-2-style fused attention in the Conv1D layout"):
../shared/zoo/make_lm_zoo.py's lm-ft or lm-chain trees, recipes, corpus and training loop
(imported, not copied) with the Llama model swapped for a miniature GPT2LMHeadModel under Hugging
Face's tensor names: `transformer.wte`, `transformer.wpe` (learned positions),
`transformer.h.{i}.ln_1/ln_2` (LayerNorm with bias), `attn.c_attn` (q, k and v fused in one
[dim, 3 dim] matrix), `attn.c_proj`, `mlp.c_fc`, `mlp.c_proj`, `transformer.ln_f`, every linear layer
with a bias and stored in the Conv1D layout ([in, out], y = x W + b), GELU, and the LM head tied to
`wte` (not saved, as Hugging Face saves GPT-2). Each block also stores the constant causal-mask
buffer `attn.bias` ([1, 1, ctx, ctx]), as the original GPT-2 checkpoints do: a tensor identical in
every model, related or not. Writes OUT/gpt2-ft/ or OUT/gpt2-chain/ with truth.json and recipe.json.

    /usr/bin/python3 bench/make_gpt2_zoo.py OUT [--seed 0] [--splits gpt2-ft,gpt2-chain]
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_generators import lm, lm_options

VOCAB, DIM, LAYERS, HEADS, SEQ = lm.VOCAB, lm.DIM, lm.LAYERS, lm.HEADS, lm.SEQ
INNER = 4 * DIM


class Conv1D(nn.Module):
    """Hugging Face's Conv1D: weight [in, out], y = x W + b."""
    def __init__(s, n_in, n_out):
        super().__init__()
        s.weight = nn.Parameter(torch.empty(n_in, n_out)); s.bias = nn.Parameter(torch.zeros(n_out))
    def forward(s, x):
        return x @ s.weight + s.bias


class GPT2Attention(nn.Module):
    def __init__(s):
        super().__init__()
        s.c_attn = Conv1D(DIM, 3 * DIM); s.c_proj = Conv1D(DIM, DIM)
        s.register_buffer("bias", torch.tril(torch.ones(SEQ, SEQ)).view(1, 1, SEQ, SEQ))
    def forward(s, x):
        B, T, _ = x.shape; hd = DIM // HEADS
        q, k, v = s.c_attn(x).split(DIM, dim=2)
        q, k, v = (t.view(B, T, HEADS, hd).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(s.bias[:, :, :T, :T] == 0, float("-inf"))
        return s.c_proj((torch.softmax(att, -1) @ v).transpose(1, 2).reshape(B, T, DIM))


class GPT2MLP(nn.Module):
    def __init__(s):
        super().__init__(); s.c_fc = Conv1D(DIM, INNER); s.c_proj = Conv1D(INNER, DIM)
    def forward(s, x):
        return s.c_proj(F.gelu(s.c_fc(x), approximate="tanh"))


class GPT2Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.ln_1 = nn.LayerNorm(DIM); s.attn = GPT2Attention(); s.ln_2 = nn.LayerNorm(DIM); s.mlp = GPT2MLP()
    def forward(s, x):
        x = x + s.attn(s.ln_1(x))
        return x + s.mlp(s.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.wte = nn.Embedding(VOCAB, DIM); s.wpe = nn.Embedding(SEQ, DIM)
        s.h = nn.ModuleList([GPT2Block() for _ in range(LAYERS)]); s.ln_f = nn.LayerNorm(DIM)


class TinyGPT2(nn.Module):
    """GPT2LMHeadModel in miniature; state_dict() keys are the Hugging Face names."""
    def __init__(s, seed):
        super().__init__()
        s.transformer = GPT2Model()
        g = torch.Generator().manual_seed(seed)
        for name, p in s.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * LAYERS) if name.endswith("c_proj.weight") else 0.02
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g) * std)
    def forward(s, ids):
        t = s.transformer
        x = t.wte(ids) + t.wpe(torch.arange(ids.shape[1]))
        for block in t.h:
            x = block(x)
        return t.ln_f(x) @ t.wte.weight.t()  # tied LM head


def gpt2_tensors(m):
    sd = m.state_dict()
    assert len(sd) == 2 + 13 * LAYERS + 2, sorted(sd)
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out"); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", default="gpt2-ft")
    ap.add_argument("--quick", action="store_true", help="every step count / 20 (a fast test)")
    a = ap.parse_args()
    opts = lm_options(a.out, a.seed)
    opts.quick = a.quick
    lm.TinyLlama = TinyGPT2
    lm.hf_tensors = gpt2_tensors
    corpus = lm.Corpus(opts)
    builds = {"gpt2-ft": lm.build_ft, "gpt2-chain": lm.build_chain}
    base_split = lm.Split
    for split in a.splits.split(","):
        class Renamed(base_split):  # the shared builder's split, under this zoo's name
            def __init__(s, out, name, corpus, _name=split):
                super().__init__(out, _name, corpus)
        lm.Split = Renamed
        builds[split](opts, corpus)


if __name__ == "__main__":
    main()
