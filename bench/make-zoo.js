// A synthetic zoo with known ancestry, for scale runs past the 39 models of ../shared/zoo.
//   node bench/make-zoo.js OUT [--trees 5] [--branching 3] [--depth 3] [--dim 128] [--layers 2] [--seed 1]
// Writes OUT/<id>/model.safetensors (float32) and OUT/truth.json ({split, models: [{id, path, parent}]}).
// Roots: heavy-tailed weights (Laplace, excess kurtosis 3) with a root-specific random layout, so
// trees are far apart. A child is its parent plus Gaussian noise of a per-edge scale: distances grow
// along the tree (the true tree is the unique undirected minimum spanning tree) and kurtosis falls
// from parent to child, the two regularities the method relies on. Not a substitute for the real
// zoo's accuracy, only for timing and memory at size.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const VERSION = 2; // bump when the layout changes: cached zoos are rebuilt

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand) {
  let u = 0;
  while (u === 0) u = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

function writeSafetensors(path, tensors) {
  const header = {};
  let offset = 0;
  for (const [name, { shape, data }] of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // data starts 8-byte aligned
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, Buffer.from(json));
    for (const [, { data }] of tensors) writeSync(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } finally {
    closeSync(fd);
  }
}

/** Makes the zoo in `out` (reused when a zoo of the same parameters is already there). */
export function makeZoo(out, { trees = 5, branching = 3, depth = 3, dim = 128, layers = 2, seed = 1 } = {}) {
  const params = { version: VERSION, trees, branching, depth, dim, layers, seed };
  const stamp = join(out, 'params.json');
  if (existsSync(stamp) && existsSync(join(out, 'truth.json')) && readFileSync(stamp, 'utf8') === JSON.stringify(params)) return JSON.parse(readFileSync(join(out, 'truth.json'), 'utf8'));
  // Stale models would be discovered with the new ones: rebuild from empty, but only a folder we made.
  if (existsSync(out) && readdirSync(out).length) {
    if (!existsSync(stamp)) throw new Error(`${out} is not empty and was not made by make-zoo.js; refusing to overwrite`);
    rmSync(out, { recursive: true, force: true });
  }
  mkdirSync(out, { recursive: true });
  const rand = mulberry32(seed);
  const names = [];
  for (let l = 0; l < layers; l++)
    for (const p of ['attention.query', 'attention.key', 'attention.value', 'output.dense']) names.push(`encoder.layer.${l}.${p}.weight`);
  const n = dim * dim;
  const models = [];
  const save = (id, parent, weights) => {
    mkdirSync(join(out, id), { recursive: true });
    writeSafetensors(join(out, id, 'model.safetensors'), names.map((name, i) => [name, { shape: [dim, dim], data: weights[i] }]));
    models.push({ id, path: `${id}/model.safetensors`, parent });
  };
  const grow = (id, weights, level) => {
    if (level === depth) return;
    for (let c = 0; c < branching; c++) {
      const scale = 0.02 * (0.6 + 0.8 * rand()); // per-edge fine-tuning strength
      const child = weights.map((w) => { const x = new Float32Array(n); for (let i = 0; i < n; i++) x[i] = w[i] + scale * gaussian(rand); return x; });
      const cid = `${id}-${c}`;
      save(cid, id, child);
      grow(cid, child, level + 1);
    }
  };
  for (let t = 0; t < trees; t++) {
    // Laplace(0, b) with b = 0.05: well spread relative to the noise, excess kurtosis 3.
    const root = names.map(() => { const x = new Float32Array(n); for (let i = 0; i < n; i++) { const u = rand() - 0.5; x[i] = -0.05 * Math.sign(u) * Math.log(1 - 2 * Math.abs(u) || 1e-12); } return x; });
    save(`t${t}`, null, root);
    grow(`t${t}`, root, 0);
  }
  const truth = { split: `synthetic-${models.length}`, models };
  writeFileSync(join(out, 'truth.json'), JSON.stringify(truth, null, 1));
  writeFileSync(stamp, JSON.stringify(params));
  return truth;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const out = argv[0];
  if (!out || out.startsWith('--')) { process.stderr.write('Usage: node bench/make-zoo.js OUT [--trees 5] [--branching 3] [--depth 3] [--dim 128] [--layers 2] [--seed 1]\n'); process.exit(2); }
  const opts = {};
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, ''), v = Number(argv[i + 1]);
    if (!['trees', 'branching', 'depth', 'dim', 'layers', 'seed'].includes(key) || !Number.isInteger(v) || v < 0) {
      process.stderr.write(`make-zoo: Expected --trees|--branching|--depth|--dim|--layers|--seed N but received '${argv[i]} ${argv[i + 1]}'\n`);
      process.exit(2);
    }
    opts[key] = v;
  }
  let t;
  try { t = makeZoo(resolve(out), opts); } catch (e) { process.stderr.write(`make-zoo: ${e.message}\n`); process.exit(1); }
  console.log(`${t.models.length} models in ${resolve(out)} (truth.json)`);
}
