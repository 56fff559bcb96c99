// Where the CUDA addon is built but no GPU or driver is usable (this is the case on build machines
// without a GPU): it must still load, and every entry point must fail with a coded E_CUDA_* error
// that carries the CUDA error string -- never crash the process.
import { describe, expect, it } from 'vitest';
import { cudaAddon } from '../src/native.js';

function noDevice(): boolean {
  const cuda = cudaAddon();
  if (!cuda) return false;
  try {
    return cuda.devices().length === 0;
  } catch {
    return true;
  }
}

describe.runIf(noDevice())('CUDA addon without a usable device', () => {
  const job = {
    tensors: [], models: 2, kurtosis: true, sumsq: true, sumabs: false, maxabs: false, dot: false, rank: false,
    perTensor: false, threads: 1,
  };

  it('devices() and capabilities() throw E_CUDA_* with the CUDA error string', () => {
    const cuda = cudaAddon()!;
    let err: (Error & { code?: string }) | undefined;
    try { cuda.devices(); } catch (e) { err = e as Error & { code?: string }; }
    expect(err?.code).toMatch(/^E_CUDA_(NO_DEVICE|DRIVER)$/);
    expect(err?.message).toMatch(/CUDA .* failed: .*\(cuda[A-Za-z]+\)/);
    expect(() => cuda.capabilities()).toThrow(expect.objectContaining({ code: err?.code }));
  });

  it('computeStats rejects (does not throw or crash) with the same code', async () => {
    const cuda = cudaAddon()!;
    const p = cuda.computeStats(job, null, new cuda.CancelToken());
    expect(p).toBeInstanceOf(Promise);
    await expect(p).rejects.toMatchObject({ code: expect.stringMatching(/^E_CUDA_/) });
  });

  it('bad jobs are still rejected with E_JOB_* before any device work', async () => {
    const cuda = cudaAddon()!;
    await expect(cuda.computeStats({ ...job, models: -1 }, null, new cuda.CancelToken())).rejects.toMatchObject({
      code: expect.stringMatching(/^E_JOB_/),
    });
  });
});

describe.runIf(cudaAddon() === null)('CUDA addon not built', () => {
  it('cudaAddon() is null', () => expect(cudaAddon()).toBeNull());
});
