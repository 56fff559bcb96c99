/** A small result for the report tests: low-confidence edge, runner-up, NaN kurtosis, a hostile id, a warning. */
import type { RecoverResult } from '../../src/types.js';

export function sampleResult(): RecoverResult {
  return {
    models: [
      { id: 'root.a', path: '/nowhere/root.a', parent: null, confidence: 0.9, family: 0, kurtosis: 3 },
      { id: 'kid b', path: '/nowhere/kid b', parent: 'root.a', confidence: 0.42, family: 0, kurtosis: 2, runnerUp: { parent: null, confidence: 0.2 } },
      { id: '</script><b>x', path: '/nowhere/x', parent: 'root.a', confidence: 0.8, family: 0, kurtosis: NaN },
      { id: 'solo', path: '/nowhere/solo', parent: null, confidence: 1, family: 1, kurtosis: 1 },
    ],
    families: [
      { index: 0, root: 'root.a', size: 3, members: ['root.a', 'kid b', '</script><b>x'], distance: 'ft', evidence: 'spectrum', direction: 'kurtosis-falls', architecture: 'x' },
      { index: 1, root: 'solo', size: 1, members: ['solo'], distance: 'lora', evidence: 'rank', direction: 'mixed', architecture: 'y' },
    ],
    diagnostics: {
      backend: 'cpu', device: 'avx2', threads: 2, tensorsUsed: 10, tensorsSkipped: [], bytesRead: 100,
      seconds: { total: 0.5, headers: 0.1, statistics: 0.3, graph: 0.1 }, warnings: ['kid b: something odd'], skippedModels: [], backendFallback: null,
    },
  };
}
