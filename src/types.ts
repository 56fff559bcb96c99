/**
 * Public types of the recovery pipeline: what `recover()` takes and returns.
 * The JSON report is this result, so its `models` rows have the shape of the zoo's truth.json.
 */

export type Backend = 'auto' | 'cpu' | 'cuda';

/** How distances between two models of a family are measured. */
export type DistanceMode =
  | 'auto' // LoRA rank distance where the family's differences are low-rank, else full fine-tuning
  | 'ft' // full fine-tuning distance
  | 'lora'; // rank of the weight difference

export interface ProgressEvent {
  stage: 'discover' | 'headers' | 'statistics' | 'graph' | 'done';
  done: number;
  total: number;
  message?: string;
}

export interface RecoverOptions {
  /** 'auto' (default) takes CUDA where the CUDA addon loads and a device exists, else the CPU. */
  backend?: Backend;
  /** CUDA device index (default 0). */
  device?: number;
  /** Worker threads for the CPU kernels, 1 to MAX_THREADS (256) (default: all cores). */
  threads?: number;
  /** Cancels the work; the promise then rejects with `signal.reason`, as Node's own APIs do. */
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** 'mother' (default): this package's method. 'paper': the MoTHer paper's recipe, for comparison. */
  method?: 'mother' | 'paper';
  distance?: DistanceMode;
  /**
   * Weight of the kurtosis direction penalty in M = D + lambda * mean(D) * K (default 0.3). Only
   * method 'paper' uses it: with another method it is an error (E_INPUT_OPTION), not ignored.
   */
  lambda?: number;
  /** Tensor selection: glob-like patterns matched against tensor names. */
  include?: string[];
  exclude?: string[];
  /** Only 2-D square tensors, as the paper does (default false). */
  squareOnly?: boolean;
  /** Skip tensors with fewer elements (default 1). */
  minElements?: number;
  /** Number of families to form; default: inferred. */
  families?: number;
  /** Tensor-bootstrap replicates behind each edge's confidence (default 50; 0: distance margins). */
  bootstrap?: number;
  /** Seed of the bootstrap (default 0): results are deterministic for a given seed. */
  seed?: number;
  /**
   * false (default): a model that cannot be read (bad header, unreadable, inconsistent shards, a
   * file that changes while it is read) is left out and listed in `diagnostics.skippedModels`;
   * the others are still recovered. true: the first such model fails the whole call.
   */
  strict?: boolean;
  /**
   * 'auto' (default): architecture groups of more than 512 models take the scale path (per-model
   * sketches, candidate pairs, exact statistics per sketch family; docs/scale.md), smaller ones the
   * exact all-pairs path. 'exact' / 'sketch' force one or the other.
   */
  scale?: 'auto' | 'exact' | 'sketch';
  /**
   * A cache file (SQLite, created when missing): per-model sketches and per-family results keyed
   * by file content, so a second run, or a run after adding models, reuses the work. Implies the
   * scale path (scale 'auto' takes it for every group); docs/scale.md.
   */
  cache?: string;
  /**
   * Run the scale path's statistics on a cluster: BullMQ workers (`mother worker --redis URL`) on
   * a Redis server. Implies the scale path, like cache; the result is the local one (docs/scale.md).
   */
  cluster?: import('./cluster/options.js').ClusterOptions;
}

export interface RecoveredModel {
  id: string;
  path: string;
  /** Recovered parent's id, or null for a root. */
  parent: string | null;
  /** In [0, 1]: how sure the parent edge (or the root call) is. */
  confidence: number;
  /** Index into `families`. */
  family: number;
  /** Excess kurtosis pooled over the selected tensors (mean over tensors). */
  kurtosis: number;
  /** Best alternative parent (id) and its margin, where one exists. */
  runnerUp?: { parent: string | null; confidence: number };
  /**
   * Every parent with its relation (src/graph/relations.ts); [] for a root. recover() always sets
   * parents, declared and format; they are optional for results built by hand. A merge lists each of
   * its parents with its estimated coefficient; `parent` is the primary one (the largest weight).
   */
  parents?: TypedParent[];
  /** What the model's card (README.md front matter) claims, and whether the weights agree; null without a claim. */
  declared?: DeclaredClaim | null;
  /** How the model is stored: 'safetensors', 'peft-adapter' (compared as base + (alpha/r)·B·A), 'gguf'. */
  format?: string;
}

export type Relation = 'finetune' | 'adapter' | 'merge' | 'quantized' | 'cast' | 'duplicate';

export interface TypedParent {
  id: string;
  relation: Relation;
  /** Merge coefficient (merges only). */
  weight?: number;
  /** In [0, 1]: how sure this edge and its type are. */
  confidence: number;
}

export interface DeclaredClaim {
  /** The card's base_model as written (one hub id or a list). */
  baseModel: string | string[];
  /** The card's base_model_relation, or null when it gives none. */
  relation: string | null;
  /** true: the weights give these parents (and this relation); false: they contradict it; null: cannot tell. */
  agrees: boolean | null;
  note: string;
}

export interface Family {
  index: number;
  root: string;
  /** Number of members (members.length). */
  size: number;
  /** Member ids, in discovery order. */
  members: string[];
  /** Distance used to place edges in this family. */
  distance: 'ft' | 'lora';
  /**
   * What placed and directed the edges: 'spectrum' (spectral entropy of weight differences and of
   * the weights, docs/method.md), 'rank' (LoRA rank distance + norm growth), 'l2' (L2 distance +
   * norm growth and kurtosis; no 2-D tensor differs, or the paper's recipe), 'per-edge' (a family
   * mixing adapters and full fine-tunes: the rank distance inside each group of adapters, spectra
   * between the groups, direction pooled over the family).
   */
  evidence: 'spectrum' | 'rank' | 'l2' | 'per-edge';
  /** Direction inferred for the family: does kurtosis fall from parent to child here? */
  direction: 'kurtosis-falls' | 'kurtosis-rises' | 'mixed';
  /** Architecture signature (tensor names and shapes hash) shared by the members. */
  architecture: string;
}

export interface SkippedTensor {
  name: string;
  reason: string;
  /** Models (ids) concerned, where the reason is about some of them. */
  models?: string[];
}

/** A model left out because it could not be read (see RecoverOptions.strict). */
export interface SkippedModel {
  /** The model's path (file or folder) as discovered. */
  path: string;
  /** The error's code, e.g. E_HEADER_JSON, E_IO_TRUNCATED, E_SHARD_MISSING. */
  code: string;
  /** The error's message (names the file, and the tensor where one is at fault). */
  message: string;
}

export interface Diagnostics {
  backend: 'cpu' | 'cuda';
  /** Instruction set or GPU that ran. */
  device: string;
  threads: number;
  tensorsUsed: number;
  tensorsSkipped: SkippedTensor[];
  bytesRead: number;
  seconds: { total: number; headers: number; statistics: number; graph: number };
  /** Things worth a look (families with identical models, tensors left out, skipped models). */
  warnings: string[];
  /** Models left out because they could not be read (empty unless some were; never with strict). */
  skippedModels: SkippedModel[];
  /**
   * Why backend 'auto' ran on the CPU although CUDA was considered (e.g. 'CUDA not used: the CUDA
   * addon is not built'), or null. Information, not a warning: nobody asked for CUDA.
   */
  backendFallback: string | null;
}

export interface RecoverResult {
  models: RecoveredModel[];
  families: Family[];
  diagnostics: Diagnostics;
  /**
   * Present when a group took the scale path (docs/scale.md): candidates, recall, cache hits,
   * time per stage. Not part of the JSON report.
   */
  scale?: import('./scale/recover.js').ScaleDiagnostics;
  /** Present when the statistics ran on a cluster (options.cluster): units, retries, failed tries, workers. */
  cluster?: import('./cluster/coordinator.js').ClusterDiagnostics;
}
