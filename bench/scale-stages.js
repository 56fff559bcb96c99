// The per-run work over all N models that a cached run still does, stage by stage, in one process:
// discovery, opening the models (headers through the cache), model cards, catalogue, content keys,
// loading the sketches. For docs/scale.md's incremental figures; the cache should be warm (a run of
// `mother recover DIR --cache CACHE` first, more than 2 s after the files were written).
//   node bench/scale-stages.js DIR CACHE [--runs 3] [--dist DIR]
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, d) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : d; };
const [dir, cache] = argv;
if (!dir || !cache) throw new Error('usage: node bench/scale-stages.js DIR CACHE [--runs 3] [--dist DIR]');
const dist = resolve(arg('--dist', join(root, 'dist')));
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const io = await load('io/index.js');
const { readCards } = await load('typed.js');
const { StatsCache } = await load('store/cache.js');
const { sketchGroup } = await load('stats/sketch.js');

for (let run = 0; run < Number(arg('--runs', '3')); run++) {
  const laps = [];
  let t0 = performance.now();
  const lap = (name) => { const now = performance.now(); laps.push(`${name} ${((now - t0) / 1000).toFixed(2)}`); t0 = now; };
  const store = new StatsCache(cache);
  try {
    const refs = await io.discoverModels([dir]); lap('discover');
    const models = await io.openModels(refs, 32, () => {}, (f) => store.readHeader(f)); store.commitHeaders(); lap('headers');
    await readCards(models); lap('cards');
    const [group] = io.buildCatalogue(models); lap('catalogue');
    const keys = store.modelKeys(group); lap('keys');
    await sketchGroup(group, { cache: { store, keys } }); lap('sketches');
    console.log(`${laps.join(' | ')} s; headers ${JSON.stringify(store.headers)}, file keys ${JSON.stringify(store.files)}`);
  } finally {
    store.close();
  }
}
