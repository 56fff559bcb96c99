/**
 * mother-tree: recover the family tree of neural networks from their weights alone.
 *
 *   import { recover } from 'mother-tree';
 *   const { models, families } = await recover('./models');   // or an array of paths
 */
export { recover, checkRecoverOptions } from './recover.js';
export { inspectModel, type InspectOptions, type InspectResult, type InspectedTensor } from './inspect.js';
export { MAX_THREADS } from './util/limits.js';
export type * from './types.js';

// Reading weights
export { openModel, discoverModels, buildCatalogue, type Model, type TensorInfo, type ModelRef, type ArchitectureGroup, type SelectOptions } from './io/index.js';

// Statistics (native kernels)
export { availableBackends, selectBackend, type BackendStatus } from './stats/backend.js';
export { kurtosis, distanceMatrices, type KurtosisResult, type DistanceResult, type StatsCallOptions } from './stats/api.js';
export { capabilities } from './stats/api.js';

// Graph stage (pure functions)
export {
  recoverGraph, minDirectedSpanningTree, minSpanningTree, edgeAccuracy, undirectedAccuracy, adjustedRandIndex,
  type TensorStats, type GraphOptions, type GraphResult,
} from './graph/index.js';

// Reports
export * from './report/index.js';

// Errors
export {
  MotherError, SafetensorsError, ModelIOError, ShardError, InputError, UnsupportedDTypeError, AbortError, isAbortError,
} from './errors.js';
export { NativeLoadError } from './native.js';
