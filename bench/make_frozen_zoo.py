#!/usr/bin/python3
"""A partly frozen variant of a zoo split (issue 8's held-out case "partly frozen layers"): every
non-root model takes its tree root's values for the tensors whose names match a pattern, as if those
layers had been frozen in every fine-tune of the tree. The other tensors keep their real training.
Derived, not retrained: the unfrozen layers did not adapt to the frozen ones, which the statistics
cannot see; what they do see is the frozen layers shared bit for bit.

    /usr/bin/python3 bench/make_frozen_zoo.py SPLIT_DIR OUT_DIR [--freeze 'layers\\.0\\.,embed_tokens']

SPLIT_DIR holds truth.json ({id, path, parent}) and the models (single files or HF shard folders,
F32/F16/BF16). Writes OUT_DIR/<id>/model.safetensors (F32) and OUT_DIR/truth.json. Needs numpy only.
"""
import argparse, json, os, re, struct

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            f.seek(base + start)
            raw = f.read(end - start)
            if info["dtype"] == "BF16":
                a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                a = np.frombuffer(raw, dtype={"F32": np.float32, "F16": np.float16, "F64": np.float64}[info["dtype"]])
            out[name] = a.astype(np.float32).reshape(info["shape"])
        return out


def read_model(split_dir, rel_path):
    path = os.path.join(split_dir, rel_path)
    if os.path.isfile(path):
        return read_safetensors(path)
    out = {}  # a folder of shards
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            out.update(read_safetensors(os.path.join(path, name)))
    return out


def write_safetensors(path, tensors):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("split"); ap.add_argument("out")
    ap.add_argument("--freeze", default=r"layers\.0\.,embed_tokens", help="comma-separated regular expressions on tensor names")
    a = ap.parse_args()
    patterns = [re.compile(p) for p in a.freeze.split(",") if p]
    truth = json.load(open(os.path.join(a.split, "truth.json")))
    parent = {m["id"]: m["parent"] for m in truth["models"]}
    path = {m["id"]: m["path"] for m in truth["models"]}

    def root(i):
        while parent[i] is not None:
            i = parent[i]
        return i

    models = []
    for m in truth["models"]:
        w = read_model(a.split, m["path"])
        if m["parent"] is not None:
            r = read_model(a.split, path[root(m["id"])])
            for name in w:
                if any(p.search(name) for p in patterns):
                    w[name] = r[name]
        write_safetensors(os.path.join(a.out, m["id"], "model.safetensors"), w)
        models.append({"id": m["id"], "path": f"{m['id']}/model.safetensors", "parent": m["parent"]})
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump({"split": os.path.basename(os.path.normpath(a.out)), "models": models, "frozen": a.freeze}, f, indent=1)
    print(f"{len(models)} models written to {a.out}")


if __name__ == "__main__":
    main()
