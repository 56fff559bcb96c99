// GGUF read speed: computeStats moments of one 16 Mi-element tensor stored as F32, F16 and each
// ggml block type (files in the OS temp dir, read from the page cache), one thread, in
// float32-equivalent GB/s (4 bytes per element delivered). Informative; not part of `npm run bench`.
//   node bench/dequant.js [--elems 16777216]
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = createRequire(import.meta.url)(join(root, 'build', 'Release', 'mother_cpu.node'));
const arg = process.argv.indexOf('--elems');
const n = arg > 0 ? Number(process.argv[arg + 1]) : 1 << 24;
// [elements per block, bytes per block, offsets of the f16 scales]
const TYPES = { F32: [1, 4, []], F16: [1, 2, []], Q8_0: [32, 34, [0]], Q4_0: [32, 18, [0]], Q4_1: [32, 20, [0, 2]],
  Q5_0: [32, 22, [0]], Q5_1: [32, 24, [0, 2]], Q4_K: [256, 144, [0, 2]], Q5_K: [256, 176, [0, 2]], Q6_K: [256, 210, [208]] };
const rows = Math.max(1, Math.floor(Math.sqrt(n) / 256) * 256);
let f32 = 0;
for (const [type, [be, bb, scales]] of Object.entries(TYPES)) {
  const b = Buffer.alloc((n / be) * bb);
  for (let i = 0; i < b.length; i++) b[i] = (i * 2654435761) >>> 24;
  if (type === 'F32') { const f = new Float32Array(b.buffer, b.byteOffset, n); for (let i = 0; i < n; i++) f[i] = Math.sin(i); }
  if (type === 'F16') for (let i = 0; i < n; i++) b.writeUInt16LE(0x3000 + (i & 0x3ff), 2 * i);
  for (let k = 0; k < n / be; k++) for (const s of scales) b.writeUInt16LE(0x2000 + (k & 0x3ff), k * bb + s);
  const file = join(tmpdir(), `mother-dequant-bench-${process.pid}-${type}.bin`);
  writeFileSync(file, b);
  try {
    const job = { tensors: [{ name: 'x', rows, cols: n / rows, sources: [{ file, offset: 0, dtype: type }] }], models: 1,
      kurtosis: true, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: false, threads: 1 };
    let best = Infinity;
    for (let r = 0; r < 3; r++) best = Math.min(best, (await addon.computeStats(job, null, new addon.CancelToken())).seconds);
    const gbs = (4 * n) / best / 1e9;
    if (type === 'F32') f32 = gbs;
    console.log(`${type.padEnd(5)} ${gbs.toFixed(2)} GB/s float32-equivalent (${(b.length / best / 1e9).toFixed(2)} GB/s stored; ${(gbs / f32).toFixed(2)}x F32)`);
  } finally {
    rmSync(file, { force: true });
  }
}
