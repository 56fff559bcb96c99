// Micro-benchmarks of the CPU kernels (node bench/kernels.js [--quick] [--only=a,b] [--addon=PATH]).
//
// Sections (--only picks some): bandwidth, moments, pairwise (kernels alone), rank (diff_rank per
// size: the LoRA-style rank-16 pair), stats (computeStats, the real path: N F32 safetensors files in
// the page cache; pairwise sums at 1 and 2 threads, kurtosis-only vs read bandwidth and vs plain
// pread of the same files, the rank pass at 1 and 2 threads). The stats section runs kurtosis and
// sumsq both ways in the same run: through the mapping (the default for kurtosis; MOTHER_MMAP=1 for
// sumsq, whose jobs read with pread by default) and with MOTHER_MMAP=0 (pread into staging
// buffers), kurtosis against the read bandwidth measured next to it. --addon runs another build (e.g. an
// older one kept aside) for before/after numbers on the same machine. Every timed number is the
// best of several runs; CPU seconds (process.cpuUsage) are printed too, because this machine's
// 2 cores are shared and wall-clock time under load says more about the neighbours than the code.
//
// Moments are judged against the machine's read bandwidth measured in the same run by
// kernels.readBandwidth (a plain streaming sum with the best ISA). Pairwise kernels are reported
// in pair-elements/s (N(N-1)/2 x params) at N = 32 models x 4M float32 params, single-threaded
// (one synchronous call over all rows) and on 2 threads (worker_threads, balanced row ranges of
// the upper triangle, data shared through a SharedArrayBuffer).
import { createRequire } from 'node:module';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { loadavg, tmpdir } from 'node:os';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const addon = require(arg('addon') ?? '../build/Release/mother_cpu.node');
const { kernels } = addon;
const quick = process.argv.includes('--quick');
const only = arg('only')?.split(',');
const want = (section) => !only || only.includes(section);
const results = {};

if (!isMainThread) {
  // Worker: pairwise over its row range, on the shared data, when told to start.
  const { sab, N, n, rowBegin, rowEnd, metrics } = workerData;
  const views = Array.from({ length: N }, (_, k) => new Uint8Array(sab, k * n * 4, n * 4));
  parentPort.on('message', (isa) => {
    kernels.pairwise(views, 'F32', isa, { metrics, rowBegin, rowEnd });
    parentPort.postMessage('done');
  });
} else {
  await main();
}

function runSuite(Benchmark, name, fns) {
  return new Promise((resolve) => {
    const suite = new Benchmark.Suite(name);
    for (const [label, fn, unitsPerCall, unit] of fns)
      suite.add(label, fn, { minSamples: 3, maxTime: quick ? 0.5 : 1.5, unitsPerCall, unit });
    suite.on('cycle', (e) => {
      const b = e.target;
      const perSec = b.options.unitsPerCall / b.stats.mean;
      console.log(`  ${b.name.padEnd(34)} ${(perSec / 1e9).toFixed(2).padStart(7)} ${b.options.unit}  (±${b.stats.rme.toFixed(1)}%, ${b.stats.sample.length} samples)`);
      results[`${name}/${b.name}`] = perSec / 1e9;
    });
    suite.on('complete', resolve);
    suite.run({ async: false });
  });
}


async function main() {
  const Benchmark = require('benchmark');
  const caps = addon.capabilities();
  console.log(`mother-tree CPU kernels: arch ${caps.arch}, detected ISA ${caps.detectedIsa}, ${caps.hardwareThreads} hardware threads`);
  console.log(`features: ${caps.features}\n`);
  const order = caps.arch === 'x64' ? ['scalar', 'sse2', 'avx2', 'avx512'] : ['scalar'];
  const isas = order.slice(0, order.indexOf(caps.detectedIsa) + 1);

  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  // Can 2 threads do more than 1 here at all? (On a shared or throttled VM they may not: then no
  // 2-thread figure below can beat the 1-thread one, whatever the code does.)
  const busy = `const { parentPort } = require('node:worker_threads'); let x = 0, n = 0; const t0 = Date.now();
    while (Date.now() - t0 < 500) { for (let i = 0; i < 1e5; i++) x += Math.sqrt(i); n++; } parentPort.postMessage(n + (x < 0));`;
  const units = async (k) => (await Promise.all(Array.from({ length: k }, () => {
    const w = new Worker(busy, { eval: true });
    return new Promise((res) => w.once('message', (m) => { w.terminate(); res(m); }));
  }))).reduce((a, b) => a + b, 0);
  const one = await units(1), two = await units(2);
  console.log(`parallelism probe: 2 busy threads do ${(two / one).toFixed(2)}x the work of 1 in the same time\n`);
  if (want('rank')) await rankBench();
  if (want('stats')) await statsBench();
  if (!want('bandwidth') && !want('moments') && !want('pairwise')) {
    console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    return;
  }
  // ---- read bandwidth -------------------------------------------------------------------------
  const big = quick ? 256 << 20 : 1 << 30;
  const bw1 = kernels.readBandwidth(big, 1, 5), bw2 = kernels.readBandwidth(big, 2, 5);
  const bwL2 = kernels.readBandwidth(256 << 10, 1, 2000);
  console.log(`read bandwidth (streaming sum, ${big >> 20} MiB): 1 thread ${bw1.toFixed(1)} GB/s, 2 threads ${bw2.toFixed(1)} GB/s; warm 256 KiB: ${bwL2.toFixed(1)} GB/s\n`);

  // ---- moments (kurtosis) -----------------------------------------------------------------------
  const rnd = () => (Math.random() + Math.random() + Math.random() - 1.5) * 0.05;
  const warm = new Float32Array(64 << 10).map(rnd);  // 256 KiB: stays in L2
  const cold = new Float32Array(big / 4);
  for (let i = 0; i < cold.length; i += 1) cold[i] = (i % 977) * 1e-4 - 0.05;
  const warmBytes = new Uint8Array(warm.buffer), coldBytes = new Uint8Array(cold.buffer);
  const warm64 = new Float64Array(32 << 10).map(rnd), warm64Bytes = new Uint8Array(warm64.buffer);
  if (want('moments')) {
  console.log('moments, GB/s of input (warm = 256 KiB in L2, cold = memory):');
  await runSuite(Benchmark, 'moments', [
    ...isas.map((isa) => [`F32 warm ${isa}`, () => kernels.moments(warmBytes, 'F32', isa), warmBytes.length, 'GB/s']),
    ...isas.map((isa) => [`F64 warm ${isa}`, () => kernels.moments(warm64Bytes, 'F64', isa), warm64Bytes.length, 'GB/s']),
    [`F32 cold ${caps.detectedIsa}`, () => kernels.moments(coldBytes, 'F32'), coldBytes.length, 'GB/s'],
  ]);
  const best = results[`moments/F32 warm ${caps.detectedIsa}`];
  console.log(`  -> F32 warm ${caps.detectedIsa}: ${(100 * best / bwL2).toFixed(0)}% of the warm read bandwidth, ` +
    `${(100 * best / bw1).toFixed(0)}% of the 1-thread memory bandwidth; cold: ` +
    `${(100 * results[`moments/F32 cold ${caps.detectedIsa}`] / bw1).toFixed(0)}% of memory bandwidth\n`);
  }
  if (!want('pairwise')) return;

  // ---- pairwise ---------------------------------------------------------------------------------
  const N = 32, n = quick ? 1 << 20 : 4 << 20;
  const sab = new SharedArrayBuffer(N * n * 4);
  const base = new Float32Array(n).map(rnd);
  const views = [];
  for (let k = 0; k < N; k++) {
    const f = new Float32Array(sab, k * n * 4, n);
    for (let i = 0; i < n; i++) f[i] = base[i] + ((i * 7919 + k * 104729) % 1000) * 1e-6;
    views.push(new Uint8Array(sab, k * n * 4, n * 4));
  }
  const pairEls = (N * (N - 1)) / 2 * n;
  console.log(`pairwise, G pair-elements/s, N = ${N} x ${n / (1 << 20)}M float32, 1 thread:`);
  const metricsSets = [['sumsq'], ['sumabs'], ['maxabs'], ['dot'], ['sumsq', 'sumabs', 'maxabs', 'dot']];
  const pisas = isas.filter((i) => i === 'avx2' || i === caps.detectedIsa);
  await runSuite(Benchmark, 'pairwise', pisas.flatMap((isa) => metricsSets.map((metrics) => [
    `${metrics.length > 1 ? 'all four' : metrics[0]} ${isa}`,
    () => kernels.pairwise(views, 'F32', isa, { metrics }), pairEls, 'G/s',
  ])));

  // 2 threads: rows [0, split) and [split, N) hold about half the pairs each.
  let split = 0, acc = 0;
  while (acc < (N * (N - 1)) / 4) acc += N - 1 - split++;
  console.log(`\npairwise, 2 threads (worker_threads, rows [0,${split}) + [${split},${N})), ${caps.detectedIsa}:`);
  for (const metrics of metricsSets) {
    const workers = [[0, split], [split, N]].map(([rowBegin, rowEnd]) =>
      new Worker(fileURLToPath(import.meta.url), { workerData: { sab, N, n, rowBegin, rowEnd, metrics } }));
    const round = () => Promise.all(workers.map((w) => new Promise((res) => { w.once('message', res); w.postMessage(caps.detectedIsa); })));
    await round();  // warm-up (also loads the addon in each worker)
    let bestS = Infinity;
    for (let r = 0; r < 3; r++) {
      const t0 = process.hrtime.bigint();
      await round();
      bestS = Math.min(bestS, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    await Promise.all(workers.map((w) => w.terminate()));
    console.log(`  ${(metrics.length > 1 ? 'all four' : metrics[0]).padEnd(34)} ${(pairEls / bestS / 1e9).toFixed(2).padStart(7)} G/s  (best of 3)`);
  }
}

// ---- timing helpers ----------------------------------------------------------------------------
// The fastest of `runs` calls: its wall time and value (e.g. the runner's own seconds), and the
// least CPU time of any call.
async function best(runs, fn) {
  const [t] = await bestInterleaved(runs, [fn]);
  return t;
}

// The same for several ways of doing one thing, called in turn in every round, so that a change
// in the machine's load hits every way alike (this machine is shared), each round starting one
// further along (no way always runs right after the same other one): one result per way.
async function bestInterleaved(rounds, fns) {
  const out = fns.map(() => ({ wall: Infinity, cpu: Infinity, value: undefined }));
  for (let r = 0; r < rounds; r++)
    for (let j = 0; j < fns.length; j++) {
      const i = (r + j) % fns.length;
      const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
      const value = await fns[i]();
      const c = process.cpuUsage(c0), wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (wall < out[i].wall) Object.assign(out[i], { wall, value });
      out[i].cpu = Math.min(out[i].cpu, (c.user + c.system) / 1e6);
    }
  return out;
}

function gaussian(seed) {
  let s = seed >>> 0;
  const u = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s + 0.5) / 4294967296; };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** Parent W (F32, N(0,1)) and child W + B A, B A of rank r with elements ~ scale, rounded once. */
function loraPair(m, n, r, scale, seed) {
  const g = gaussian(seed), W = new Float32Array(m * n).map(g), C = Float64Array.from(W);
  const B = Float64Array.from({ length: m * r }, g), A = Float64Array.from({ length: r * n }, g), f = scale / Math.sqrt(r);
  for (let i = 0; i < m; i++)
    for (let k = 0; k < r; k++) {
      const b = B[i * r + k] * f;
      for (let j = 0; j < n; j++) C[i * n + j] += b * A[k * n + j];
    }
  return { W: new Uint8Array(W.buffer), C: new Uint8Array(Float32Array.from(C).buffer) };
}

// ---- rank --------------------------------------------------------------------------------------
async function rankBench() {
  console.log('diff_rank, one rank-16 LoRA-style pair (F32, 1e-3 |W|), single thread:');
  const sizes = quick ? [64, 256, 768] : [64, 256, 512, 768, 4096];
  for (const m of sizes) {
    const { W, C } = loraPair(m, m, 16, 1e-3, m);
    const reps = m <= 64 ? 500 : m <= 256 ? 20 : m <= 768 ? 3 : 1;
    const t = await best(m >= 4096 ? 2 : 3, () => { let r; for (let i = 0; i < reps; i++) r = kernels.rank(W, C, m, m, 'F32'); return r; });
    const path = m > 512 ? 'randomized' : 'exact';
    console.log(`  ${String(m).padStart(4)} x ${String(m).padEnd(4)} ${path.padEnd(10)} rank ${t.value}: ` +
      `${(1e3 * t.wall / reps).toFixed(3).padStart(9)} ms wall, ${(1e3 * t.cpu / reps).toFixed(3).padStart(9)} ms cpu per pair`);
  }
  console.log();
}

// ---- computeStats, the real path ---------------------------------------------------------------
function writeModels(dir, N, rows, cols, value) {
  const files = [];
  const n = rows * cols;
  for (let k = 0; k < N; k++) {
    const hdr = JSON.stringify({ w: { dtype: 'F32', shape: [rows, cols], data_offsets: [0, n * 4] } });
    const pad = hdr + ' '.repeat((8 - (hdr.length % 8)) % 8);
    const buf = Buffer.alloc(8 + pad.length + n * 4);
    buf.writeBigUInt64LE(BigInt(pad.length), 0);
    buf.write(pad, 8);
    value(k, new Float32Array(buf.buffer, buf.byteOffset + 8 + pad.length, n));
    const path = join(dir, `m${k}.safetensors`);
    writeFileSync(path, buf);
    files.push({ path, offset: 8 + pad.length });
  }
  return files;
}

async function statsBench() {
  const dir = mkdtempSync(join(tmpdir(), 'mother-bench-'));
  try {
    const N = 32, rows = 2048, cols = quick ? 512 : 2048, n = rows * cols;
    const base = new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * 0.05);
    const files = writeModels(dir, N, rows, cols, (k, f) => {
      for (let i = 0; i < n; i++) f[i] = base[i] + ((i * 7919 + k * 104729) % 1000) * 1e-6;
    });
    const bytes = N * n * 4;
    const job = (threads, flags) => ({
      tensors: [{ name: 'w', rows, cols, sources: files.map((f) => ({ file: f.path, offset: f.offset, dtype: 'F32' })) }],
      models: N, kurtosis: false, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: false,
      threads, ...flags,
    });
    const stats = (j) => addon.computeStats(j, null, new addon.CancelToken());
    // io: 'mmap' (MOTHER_MMAP=1: every job mapped) or 'pread' (MOTHER_MMAP=0), read by the runner at each job.
    const statsVia = async (io, j) => {
      process.env.MOTHER_MMAP = io === 'pread' ? '0' : '1';
      try {
        const r = await stats(j);
        if (r.io && r.io !== io) throw new Error(`asked for ${io}, the runner used ${r.io}`);
        return r;
      } finally {
        delete process.env.MOTHER_MMAP;
      }
    };
    await stats(job(1, { kurtosis: true }));  // page cache warm
    const pairEls = (N * (N - 1)) / 2 * n;
    console.log(`computeStats pairwise, N = ${N} x ${n / (1 << 20)}M F32 params (${bytes >> 20} MiB in page cache), G pair-elements/s (best of 5):`);
    const pairLine = (label, t) => console.log(`  ${label}: ${(pairEls / t.value.seconds / 1e9).toFixed(2).padStart(6)} G/s ` +
      `(${t.value.seconds.toFixed(3)} s; ${t.cpu.toFixed(3)} cpu-s, ${(pairEls / t.cpu / 1e9).toFixed(1)} G per cpu-s)`);
    const thr = (threads) => `${threads} thread${threads > 1 ? 's' : ' '}`;
    for (const metric of ['sumabs', 'maxabs'])
      for (const threads of [1, 2]) pairLine(`${metric.padEnd(7)} ${thr(threads)}`, await best(5, () => stats(job(threads, { [metric]: true }))));
    // sumsq mapped (MOTHER_MMAP=1) and with pread (MOTHER_MMAP=0, as jobs with pairwise sums read by
    // default), in turn (best of 9 rounds).
    for (const threads of [1, 2]) {
      const [m, p] = await bestInterleaved(9, [() => statsVia('mmap', job(threads, { sumsq: true })), () => statsVia('pread', job(threads, { sumsq: true }))]);
      results[`stats/sumsq mmap/pread ${threads}t`] = p.value.seconds / m.value.seconds;
      pairLine(`sumsq   ${thr(threads)}, mapped (MOTHER_MMAP=1)`, m);
      pairLine(`sumsq   ${thr(threads)}, pread (the default) `, p);
    }

    // Kurtosis only: the yardstick is the streaming read of an in-memory buffer of the same size
    // (kernels.readBandwidth), and, closer to what is possible, plain pread of the same files
    // (page cache -> user copy, which a no-mmap reader cannot avoid).
    // Where the AVX-512 moments body defaults to 256-bit registers (AMD Zen 4), the 512-bit body
    // (the default before) is run too, mapped, for a before/after in the same run.
    const width = kernels.momentsWidth?.() ?? 512;  // an older --addon has no switch
    const ways = [['mmap', 0], ['pread', 0], ...(addon.capabilities().isa === 'avx512' && width === 256 ? [['mmap', 512]] : [])];
    console.log(`\ncomputeStats kurtosis only, ${bytes >> 20} MiB F32 in page cache, mapped vs pread vs readBandwidth, ` +
      `in turn (best of 9 rounds; moments body: ${width}-bit registers):`);
    for (const threads of [1, 2]) {
      let bwBest = 0;  // the highest readBandwidth of the rounds
      const [, ...ts] = await bestInterleaved(9, [() => { bwBest = Math.max(bwBest, kernels.readBandwidth(bytes, threads, 1)); }, ...ways.map(([io, bits]) => async () => {
        if (bits) kernels.momentsWidth(bits);
        try { return await statsVia(io, job(threads, { kurtosis: true })); } finally { if (bits) kernels.momentsWidth(0); }
      })]);
      console.log(`  ${thr(threads)} readBandwidth: ${bwBest.toFixed(1)} GB/s`);
      ways.forEach(([io, bits], i) => {
        const t = ts[i], gbs = bytes / t.value.seconds / 1e9, label = bits ? `${io}, ${bits}-bit body` : io;
        results[`stats/kurtosis ${label} ${threads}t`] = gbs / bwBest;
        console.log(`  ${thr(threads)} ${label.padEnd(5)}: ${gbs.toFixed(2)} GB/s = ${(100 * gbs / bwBest).toFixed(0)}% of readBandwidth ` +
          `(${t.cpu.toFixed(3)} cpu-s, ${(bytes / t.cpu / 1e9).toFixed(1)} GB per cpu-s)`);
      });
    }
    // The same bytes written in 64 KiB pieces (as a downloader might): the page cache then holds
    // small folios, each mapped by 4 KiB page-table entries, and the mapping's edge shrinks.
    const small = files.map((f, k) => {
      const p = join(dir, `s${k}.safetensors`), src = openSync(f.path, 'r'), dst = openSync(p, 'w'), b = Buffer.alloc(64 << 10);
      for (let pos = 0, got; (got = readSync(src, b, 0, b.length, pos)) > 0; pos += got) writeSync(dst, b, 0, got);
      closeSync(src);
      closeSync(dst);
      return { path: p, offset: f.offset };
    });
    const smallJob = (threads) => ({ ...job(threads, { kurtosis: true }),
      tensors: [{ name: 'w', rows, cols, sources: small.map((f) => ({ file: f.path, offset: f.offset, dtype: 'F32' })) }] });
    await stats(smallJob(1));
    for (const io of ['mmap', 'pread']) {
      const bw = kernels.readBandwidth(bytes, 1, 5);
      const t = await best(5, () => statsVia(io, smallJob(1)));
      const gbs = bytes / t.value.seconds / 1e9;
      console.log(`  1 thread  ${io.padEnd(5)}, files written in 64 KiB pieces: ${gbs.toFixed(2)} GB/s = ${(100 * gbs / bw).toFixed(0)}% of readBandwidth ${bw.toFixed(1)} GB/s ` +
        `(${t.cpu.toFixed(3)} cpu-s, ${(bytes / t.cpu / 1e9).toFixed(1)} GB per cpu-s)`);
    }
    for (const f of small) rmSync(f.path);
    const piece = 256 << 10, buf = Buffer.alloc(piece);
    const p = await best(5, () => {
      for (const f of files) {
        const fd = openSync(f.path, 'r');
        for (let pos = f.offset; readSync(fd, buf, 0, piece, pos) > 0; pos += piece);
        closeSync(fd);
      }
    });
    console.log(`  plain pread of the same files, 256 KiB pieces, 1 thread (no kernel): ${(bytes / p.wall / 1e9).toFixed(2)} GB/s ` +
      `(${(bytes / p.cpu / 1e9).toFixed(1)} GB per cpu-s): the ceiling for a reader that copies`);

    // Rank pass: 16 models x 8 tensors of 64 x 64 (LoRA-like rank 8 differences), pairs over threads.
    const M = 16, T = 8, dim = 64;
    const g = gaussian(5);
    const W0 = Array.from({ length: T }, () => new Float32Array(dim * dim).map(g));
    const rdir = join(dir, 'rank');
    mkdtempSync(rdir);
    const rfiles = [];
    for (let k = 0; k < M; k++) {
      const specs = {}, parts = [];
      let off = 0;
      for (let t = 0; t < T; t++) {
        const v = Float64Array.from(W0[t]);
        for (let c = 0; c < 8; c++) {
          const u = Float64Array.from({ length: dim }, g), w = Float64Array.from({ length: dim }, g);
          for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) v[i * dim + j] += 1e-3 * u[i] * w[j];
        }
        specs[`t${t}`] = { dtype: 'F32', shape: [dim, dim], data_offsets: [off, off + dim * dim * 4] };
        parts.push(Buffer.from(Float32Array.from(v).buffer));
        off += dim * dim * 4;
      }
      const hdr = JSON.stringify(specs), pad = hdr + ' '.repeat((8 - (hdr.length % 8)) % 8), head = Buffer.alloc(8);
      head.writeBigUInt64LE(BigInt(pad.length));
      const path = join(dir, `r${k}.safetensors`);
      writeFileSync(path, Buffer.concat([head, Buffer.from(pad), ...parts]));
      rfiles.push({ path, offset: 8 + pad.length });
    }
    const rjob = (threads) => ({
      tensors: Array.from({ length: T }, (_, t) => ({ name: `t${t}`, rows: dim, cols: dim,
        sources: rfiles.map((f) => ({ file: f.path, offset: f.offset + t * dim * dim * 4, dtype: 'F32' })) })),
      models: M, kurtosis: false, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: true, perTensor: true, threads,
    });
    const pairs = (M * (M - 1)) / 2 * T;
    console.log(`\ncomputeStats rank pass, ${M} models x ${T} tensors ${dim} x ${dim} (${pairs} pairs, rank 8 each), best of 5:`);
    for (const threads of [1, 2]) {
      const t = await best(5, () => stats(rjob(threads)));
      console.log(`  ${threads} thread${threads > 1 ? 's' : ' '}: ${(1e3 * t.value.seconds).toFixed(1)} ms, ${(1e6 * t.value.seconds / pairs).toFixed(1)} us per pair ` +
        `(${t.cpu.toFixed(3)} cpu-s); smallest nonzero rank ${Math.min(...[...t.value.rank].filter((x) => x > 0))}`);
    }
    console.log();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
