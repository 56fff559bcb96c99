/**
 * Backend selection: 'auto' | 'cpu' | 'cuda', tried best-first with a clear reason for each
 * fallback (as node-llama-cpp does for its GPU option).
 */
import { cpuAddon, cudaAddon, cudaLoadError, type CpuAddon, type CudaAddon } from '../native.js';
import type { Backend } from '../types.js';
import { InputError } from '../errors.js';

export interface BackendStatus {
  name: 'cpu' | 'cuda';
  usable: boolean;
  /** Why it is not usable, or what it runs on (instruction set / GPU names). */
  detail: string;
}

/** What is usable here and why not. */
export function availableBackends(): BackendStatus[] {
  const out: BackendStatus[] = [];
  try {
    const caps = cpuAddon().capabilities();
    out.push({ name: 'cpu', usable: true, detail: `${caps.isa} (${caps.arch}, ${caps.hardwareThreads} threads)` });
  } catch (err) {
    out.push({ name: 'cpu', usable: false, detail: (err as Error).message });
  }
  const cuda = cudaAddon();
  if (!cuda) {
    out.push({ name: 'cuda', usable: false, detail: cudaLoadError() ?? 'not built' });
  } else {
    try {
      const devices = cuda.devices();
      out.push(
        devices.length > 0
          ? { name: 'cuda', usable: true, detail: devices.map((d) => `${d.index}: ${d.name}`).join(', ') }
          : { name: 'cuda', usable: false, detail: 'no CUDA device found' },
      );
    } catch (err) {
      out.push({ name: 'cuda', usable: false, detail: (err as Error).message });
    }
  }
  return out;
}

export type SelectedBackend =
  | { name: 'cpu'; addon: CpuAddon; fallbackReason?: string }
  | { name: 'cuda'; addon: CudaAddon; device: number };

/** Picks the addon that will run the statistics. 'cuda' where CUDA cannot run is an error. */
export function selectBackend(backend: Backend = 'auto', device = 0): SelectedBackend {
  if (backend !== 'auto' && backend !== 'cpu' && backend !== 'cuda') {
    throw new InputError('E_INPUT_OPTION', `Expected one of auto|cpu|cuda for backend but received '${String(backend)}'`);
  }
  if (!Number.isInteger(device) || device < 0) {
    throw new InputError('E_INPUT_OPTION', `Expected a non-negative integer for device but received '${String(device)}'`);
  }
  if (backend === 'cpu') return { name: 'cpu', addon: cpuAddon() };
  const cuda = cudaAddon();
  let reason = cuda ? '' : (cudaLoadError() ?? 'the CUDA addon is not built');
  if (cuda) {
    try {
      const devices = cuda.devices();
      if (devices.some((d) => d.index === device)) return { name: 'cuda', addon: cuda, device };
      reason = devices.length === 0 ? 'no CUDA device found' : `no CUDA device ${device} (found ${devices.length})`;
    } catch (err) {
      reason = (err as Error).message;
    }
  }
  if (backend === 'cuda') {
    throw new InputError('E_BACKEND_UNAVAILABLE', `backend 'cuda' was asked for but cannot run here: ${reason}`);
  }
  return { name: 'cpu', addon: cpuAddon(), fallbackReason: `CUDA not used: ${reason}` };
}
