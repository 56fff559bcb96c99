// Micro-benchmarks of the CPU kernels (node bench/kernels.js [--quick]).
//
// Moments are judged against the machine's read bandwidth measured in the same run by
// kernels.readBandwidth (a plain streaming sum with the best ISA). Pairwise kernels are reported
// in pair-elements/s (N(N-1)/2 x params) at N = 32 models x 4M float32 params, single-threaded
// (one synchronous call over all rows) and on 2 threads (worker_threads, balanced row ranges of
// the upper triangle, data shared through a SharedArrayBuffer).
import { createRequire } from 'node:module';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const addon = require('../build/Release/mother_cpu.node');
const { kernels } = addon;
const quick = process.argv.includes('--quick');
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
