/**
 * Inputs and outputs of the graph stage: per-tensor statistics in, families and parents out.
 * Pure data; the native layer fills TensorStats (see src/native.ts StatsResult, perTensor: true).
 */

/** Per-tensor statistics of N models over T matched tensors. Arrays are tensor-major. */
export interface TensorStats {
  /** N model ids. */
  ids: string[];
  /** T tensors (1-D: rows = 1; n-D: rows = shape[0], cols = product of the rest; see io matrixView). */
  tensors: { name: string; rows: number; cols: number; numel: number }[];
  /** T*N, index t*N + k: excess kurtosis (NaN if constant), mean, sum of squared deviations. */
  kurtosis: Float64Array;
  mean: Float64Array;
  m2: Float64Array;
  /** T*N*N, index (t*N + i)*N + j, symmetric: sum (w_i - w_j)^2. */
  sumsq: Float64Array;
  /** T*N*N: sum |w_i - w_j| and max |w_i - w_j|. Optional: recoverGraph does not use them. */
  sumabs?: Float64Array;
  maxabs?: Float64Array;
  /** T*N*N: sum w_i*w_j; the diagonal holds squared norms. */
  dot: Float64Array;
  /** T*N*N numerical rank of W_i - W_j, NaN where not computed. */
  rank?: Float64Array;
  /** T*N*N spectral entropy of W_i - W_j (2-D tensors that differ), NaN where not computed. */
  spectrum?: Float64Array;
  /** T*N spectral entropy of each model's own W (2-D tensors), NaN where not computed. */
  weightSpectrum?: Float64Array;
  /** T: spectral entropy of a standard Gaussian matrix of the tensor's block shape (structureless). */
  spectrumNoise?: Float64Array;
  /**
   * T: 1 where two unrelated models store the tensor bit for bit alike (a constant buffer, see
   * constantTensors); such a tensor is never counted as frozen. Absent: none known.
   */
  constant?: Uint8Array;
  /** N: mean bits per stored weight (F32 32, BF16 16, Q8_0 8.5, ...): which of two copies is the source. */
  storageBits?: Float64Array;
}

export interface GraphOptions {
  /** 'mother' (default): this package's method. 'paper': the MoTHer paper's recipe. */
  method?: 'mother' | 'paper';
  /** 'auto' (default): LoRA rank distance for families whose differences are low-rank. */
  distance?: 'auto' | 'ft' | 'lora';
  /** Kurtosis penalty weight of the paper's M = D + lambda*mean(D)*K (paper mode only; default 0.3). */
  lambda?: number;
  /** Force this many families (default: inferred from weight correlation). */
  families?: number;
  /** Tensor-bootstrap replicates for the confidences (default 50; 0: distance-margin confidences). */
  bootstrap?: number;
  /** Seed of the bootstrap's generator (default 0). */
  seed?: number;
  /**
   * Share of length in the spectral placement distance, exp(mean H) * L2^lengthWeight (default
   * 0.02, chosen leave-one-split-out; docs/method.md). For studies of the method.
   */
  lengthWeight?: number;
  /** Weight of the direction vote in the spectral directed tree (default 0.1, same protocol). */
  directionWeight?: number;
  /**
   * Sign of the spectral-entropy direction cue (+1: parents have the higher entropy, -1: children).
   * Default: chosen jointly over the spectral families (see spectrum.ts). Given by a re-run over a
   * subset of the models (relations.ts) so that it decides as the full run did.
   */
  entropySign?: 1 | -1;
}

export interface FamilyResult {
  members: number[];
  root: number;
  distance: 'ft' | 'lora';
  /**
   * What placed and rooted the tree: spectra when computed, else L2 + norm growth; the rank distance
   * for a LoRA family; per edge (adapters.ts) for a family that mixes adapters and full fine-tunes.
   */
  evidence: 'spectrum' | 'l2' | 'rank' | 'per-edge';
  direction: 'kurtosis-falls' | 'kurtosis-rises' | 'mixed';
}

export interface GraphResult {
  /** Index of each model's parent, null for a root. */
  parent: (number | null)[];
  /** In [0, 1], per model: how sure its parent edge (or its being a root) is. */
  confidence: number[];
  /** Index into families. */
  family: number[];
  families: FamilyResult[];
  /** Best alternative parent (bootstrap: most frequent other choice) and how often it won. */
  runnerUp: ({ parent: number | null; confidence: number } | null)[];
  warnings: string[];
  /** The entropy cue's sign the spectral families were built with; null without spectral families. */
  entropySign?: 1 | -1 | null;
  /**
   * Share of the bootstrap replicates that chose the same entropy sign (each chooses it again);
   * null without spectral families or bootstrap. Near 1/2, the direction of chain-like families is
   * a coin flip (a warning says so).
   */
  entropySignSupport?: number | null;
}

/** A bad input to the graph stage; `code` is stable, the message names the field or tensor. */
export class GraphError extends Error {
  constructor(readonly code: 'E_GRAPH_INPUT' | 'E_GRAPH_OPTION' | 'E_NO_ARBORESCENCE', message: string) {
    super(message);
    this.name = 'GraphError';
  }
}
