/**
 * The one typed description of what the native addons export, and their loader.
 *
 * Two addons share this shape: `mother_cpu.node` (node-gyp, always built) and `mother_cuda.node`
 * (cmake-js, optional, only where nvcc exists). TypeScript never guesses what native code returns:
 * every export used anywhere in src/ is declared here.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ComputeDType = 'F64' | 'F32' | 'F16' | 'BF16';
/** ggml block types (GGUF) that the stats runner dequantises to float32 on the fly. */
export type QuantDType = 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q4_K' | 'Q5_K' | 'Q6_K';
/** What a job source may be stored as. */
export type SourceDType = ComputeDType | QuantDType;

/** A GGUF metadata value: numbers (64-bit integers beyond 2^53 as decimal strings), strings, booleans, arrays. */
export type GgufValue = number | string | boolean | { itemType: string; length: number; items: GgufValue[] };

/** One tensor info of a GGUF file (validated natively). */
export interface RawGgufTensor {
  name: string;
  /** ggml_type id, and its name (null for a type the reader does not know). */
  ggmlType: number;
  type: string | null;
  /** Dimensions, ne[0] the fastest-varying (PyTorch's shape reversed). */
  ne: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
  /** null when the type is unknown. */
  byteLength: number | null;
}

/** A validated GGUF header (v2 / v3): metadata in file order and the tensor infos. */
export interface RawGguf {
  path: string;
  fileSize: number;
  version: number;
  alignment: number;
  dataOffset: number;
  /** Arrays keep their first 1024 items (`length` is the full count). */
  kv: { key: string; type: string; value: GgufValue }[];
  tensors: RawGgufTensor[];
}

/** One tensor as its safetensors header declares it (validated natively). */
export interface RawTensorEntry {
  name: string;
  /** The header's dtype string, e.g. 'F32', 'I8', 'F8_E4M3'. */
  dtype: string;
  shape: number[];
  /** Byte offsets relative to the start of the data area, as in the file. */
  begin: number;
  end: number;
}

/** A validated safetensors header. */
export interface RawHeader {
  path: string;
  fileSize: number;
  /** The 8-byte little-endian header length N. */
  headerLength: number;
  /** 8 + N: where the data area starts. */
  dataOffset: number;
  metadata: Record<string, string> | null;
  tensors: RawTensorEntry[];
}

/** Where one model's copy of a tensor lies: absolute byte offset in a file. */
export interface TensorSource {
  file: string;
  offset: number;
  dtype: SourceDType;
  /**
   * GGUF q/k projections: the file stores the rows in llama.cpp's rotary order (convert_hf_to_gguf's
   * permute with this many heads); the reader returns them in Hugging Face order. CPU backend only.
   */
  permuteHeads?: number;
}

/** One tensor compared across the N models of a job (sources[k] belongs to model k). */
export interface JobTensor {
  name: string;
  /** Matrix view used by the rank kernel; rows * cols is the element count (1-D: rows = 1). */
  rows: number;
  cols: number;
  sources: TensorSource[];
}

export interface StatsJob {
  tensors: JobTensor[];
  /** Number of models; every tensor has exactly this many sources. */
  models: number;
  kurtosis: boolean;
  /** Which pairwise sums to accumulate. */
  sumsq: boolean;
  sumabs: boolean;
  maxabs: boolean;
  dot: boolean;
  /** Numerical rank of W_i - W_j for every pair and tensor (LoRA distance). */
  rank: boolean;
  /**
   * Spectral entropy (log effective rank) of every 2-D tensor per model and of every pair's
   * difference, on a block of at most spectrumShort x spectrumLong (shorter x longer side) sampled
   * at seeded positions shared by all models; exact when the tensor fits (defaults 64 and 256).
   */
  spectrum?: boolean;
  spectrumShort?: number;
  spectrumLong?: number;
  /** Pairs [i0, j0, i1, j1, ...] whose difference spectra to compute (default: every pair). */
  spectrumPairs?: number[];
  /** true: pairwise outputs per tensor (T x N x N); false: summed over tensors (maxabs: max). */
  perTensor: boolean;
  threads: number;
  /** Target size of the chunk buffer holding one stretch of a tensor for all N models. */
  chunkBytes?: number;
  rankNoise?: number;
  rankExactLimit?: number;
  rankMaxRank?: number;
  /** CUDA addon only: which device. */
  device?: number;
}

export interface StatsResult {
  backend: 'cpu' | 'cuda';
  /** Instruction set (cpu) or device name (cuda) that ran. */
  isa: string;
  threads: number;
  bytesRead: number;
  seconds: number;
  /**
   * How the CPU runner read the files: memory-mapped, with pread, or both (absent: not reported).
   * By default only moments-only jobs (kurtosis without pairwise sums) map; jobs that copy every
   * byte read with pread, without a note. MOTHER_MMAP=1 maps every job, MOTHER_MMAP=0 none.
   */
  io?: 'mmap' | 'pread' | 'mmap+pread';
  /** Why files were read with pread instead of a mapping (a filesystem refusing mmap, MOTHER_MMAP=0). */
  ioNotes?: string[];
  /** Tensor-major, index t * N + k. Present when job.kurtosis. */
  moments?: {
    n: Float64Array;
    nonfinite: Float64Array;
    mean: Float64Array;
    m2: Float64Array;
    kurtosis: Float64Array;
  };
  /** Symmetric N x N (or T x N x N when perTensor), row-major; diagonal 0 (dot: squared norms). */
  sumsq?: Float64Array;
  sumabs?: Float64Array;
  maxabs?: Float64Array;
  dot?: Float64Array;
  /** T x N x N numerical ranks when job.rank. */
  rank?: Float64Array;
  /** T x N x N spectral entropy of W_i - W_j when job.spectrum (NaN: not a 2-D tensor, or equal). */
  spectrum?: Float64Array;
  /** T x N spectral entropy of each model's own W when job.spectrum. */
  weightSpectrum?: Float64Array;
  /** T: spectral entropy of a standard Gaussian matrix of the tensor's block shape (NaN: no block). */
  spectrumNoise?: Float64Array;
}

export interface CancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

export interface Capabilities {
  backend: 'cpu' | 'cuda';
  /** Instruction set the kernels use now, e.g. 'avx512'. */
  isa: string;
  /** Best instruction set this CPU supports. */
  detectedIsa: string;
  features: string;
  arch: string;
  hardwareThreads: number;
  /** Register width of the AVX-512 float32 moments body (256 on AMD Zen 4, else 512); CPU addon only. */
  momentsWidth?: number;
}

/** Low-level synchronous kernels on small in-memory buffers: for tests and diagnostics only. */
export interface KernelExports {
  /** isa forces a variant ('scalar' | 'sse2' | 'avx2' | 'avx512' | 'neon'), clamped to the CPU. */
  moments(data: Uint8Array, dtype: ComputeDType, isa?: string): {
    n: number; nonfinite: number; mean: number; m2: number; m3: number; m4: number; kurtosis: number;
  };
  /** Metrics not asked for come back as empty arrays. */
  pairwise(data: Uint8Array[], dtype: ComputeDType, isa?: string,
           options?: { metrics?: ('sumsq' | 'sumabs' | 'maxabs' | 'dot')[]; rowBegin?: number; rowEnd?: number }): {
    sumsq: Float64Array; sumabs: Float64Array; maxabs: Float64Array; dot: Float64Array;
  };
  /** NaN when an input holds NaN or Inf. */
  rank(a: Uint8Array, b: Uint8Array, rows: number, cols: number, dtype: ComputeDType,
       options?: { noise?: number; exactLimit?: number; maxRank?: number; seed?: number; isa?: string }): number;
  /** Spectral entropy of sigma(A - B), or of sigma(A) when b is null; NaN on NaN/Inf or a zero matrix. */
  spectralEntropy(a: Uint8Array, b: Uint8Array | null, rows: number, cols: number, dtype: ComputeDType, isa?: string): number;
  /** Streaming read bandwidth of this machine in GB/s (sum over a buffer of `bytes`). */
  readBandwidth(bytes: number, threads?: number, passes?: number): number;
  /** Sets the AVX-512 moments body's register width for the process (0: this CPU's default); returns the previous one. */
  momentsWidth(bits?: 0 | 256 | 512): number;
  convert(data: Uint8Array, dtype: ComputeDType, to: 'f32' | 'f64'): Float32Array | Float64Array;
  /** Whole storage blocks of a ggml block type (or of a plain type) -> float32 (cpu/dequant.cc). */
  dequantize(data: Uint8Array, type: SourceDType): Float32Array;
}

export interface CpuAddon {
  capabilities(): Capabilities;
  readHeader(path: string): Promise<RawHeader>;
  readHeaderSync(path: string): RawHeader;
  /** A GGUF file's header (io/gguf.cc); E_GGUF_* / E_IO_* errors. CPU addon only. */
  readGguf?(path: string): Promise<RawGguf>;
  readGgufSync?(path: string): RawGguf;
  computeStats(job: StatsJob, onProgress: ((done: number, total: number) => void) | null,
               cancel: CancelToken): Promise<StatsResult>;
  CancelToken: new () => CancelToken;
  kernels: KernelExports;
}

export interface CudaDevice { index: number; name: string; memoryBytes: number; computeCapability: string }

export interface CudaAddon {
  capabilities(device?: number): Capabilities;
  /** Throws (code E_CUDA_*) when no driver or device is usable. */
  devices(): CudaDevice[];
  computeStats(job: StatsJob, onProgress: ((done: number, total: number) => void) | null,
               cancel: CancelToken): Promise<StatsResult>;
  CancelToken: new () => CancelToken;
}

/** Thrown when an addon cannot be loaded; says what failed and how to fix it. */
export class NativeLoadError extends Error {
  readonly code = 'E_NATIVE_LOAD';
  constructor(message: string, readonly cause?: unknown) {
    super(message);
    this.name = 'NativeLoadError';
  }
}

const require = createRequire(import.meta.url);
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function candidates(envVar: string, relPaths: string[]): string[] {
  const fromEnv = process.env[envVar];
  return fromEnv ? [resolve(fromEnv)] : relPaths.map((p) => join(packageRoot, p));
}

let cpu: CpuAddon | undefined;

/**
 * The CPU addon. `MOTHER_CPU_ADDON` may name another build (a debug or sanitizer build).
 */
export function cpuAddon(): CpuAddon {
  if (cpu) return cpu;
  const paths = candidates('MOTHER_CPU_ADDON', ['build/Release/mother_cpu.node', 'build/Debug/mother_cpu.node']);
  const found = paths.find((p) => existsSync(p));
  if (!found) {
    throw new NativeLoadError(
      `mother-tree: the CPU addon is not built (looked for ${paths.join(', ')}). ` +
        'Run `npm run build:native` in the package folder (needs python3, make and a C++17 compiler: ' +
        'on Debian/Ubuntu `apt-get install python3 make g++`), then try again.',
    );
  }
  try {
    cpu = require(found) as CpuAddon;
  } catch (err) {
    throw new NativeLoadError(
      `mother-tree: the CPU addon at ${found} failed to load: ${(err as Error).message}. ` +
        'It was probably built for another Node.js version or machine: run `npm run build:native`.',
      err,
    );
  }
  return cpu;
}

let cuda: CudaAddon | null | undefined;
let cudaError: string | undefined;

/** The CUDA addon, or null (with the reason in cudaLoadError()) where it is not built or cannot load. */
export function cudaAddon(): CudaAddon | null {
  if (cuda !== undefined) return cuda;
  const paths = candidates('MOTHER_CUDA_ADDON', ['build-cuda/Release/mother_cuda.node', 'build-cuda/mother_cuda.node']);
  const found = paths.find((p) => existsSync(p));
  if (!found) {
    cudaError = 'the CUDA addon is not built (run `npm run build:cuda` where nvcc and cmake exist)';
    cuda = null;
    return cuda;
  }
  try {
    cuda = require(found) as CudaAddon;
  } catch (err) {
    cudaError = `the CUDA addon at ${found} failed to load: ${(err as Error).message}`;
    cuda = null;
  }
  return cuda;
}

export function cudaLoadError(): string | undefined {
  cudaAddon();
  return cudaError;
}
