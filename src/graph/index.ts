/** The graph stage: pure functions from per-tensor statistics to families, parents and confidences. */
export { recoverGraph } from './recover.js';
export { minDirectedSpanningTree, type Arborescence, type ArborescenceOptions, type WeightedEdge } from './arborescence.js';
export { minSpanningTree } from './mst.js';
export { clusterFamilies, constantTensors, frozenBetween, RELATED } from './cluster.js';
export { adapterGroups, isAdapterPair, ADAPTER_MAX_RANK_SHARE } from './adapters.js';
export { detectLora, type LoraVerdict } from './lora.js';
export { normGrowthScore, orientTree, kurtosisDirection, kurtosisVotes } from './direction.js';
export { mulberry32, resampleWeights, tally, marginConfidence } from './confidence.js';
export { relatedness, ftDistance, loraDistance, paperFtDistance, paperLoraDistance, checkStats } from './distance.js';
export { edgeAccuracy, undirectedAccuracy, adjustedRandIndex, rootsOf } from './eval.js';
export { GraphError, type TensorStats, type GraphOptions, type GraphResult, type FamilyResult } from './types.js';
