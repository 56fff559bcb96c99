/** `mother inspect` output: a model's files, parameters and per-tensor dtype, shape and kurtosis. */
import type { InspectResult } from '../inspect.js';
import { printable } from './text.js';

function kurtosisCell(k: number | null): string {
  if (k === null) return '-'; // dtype the kernels do not compute
  if (Number.isNaN(k)) return 'nan'; // constant tensor
  return k.toFixed(4);
}

function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = n;
  let u = 0;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${x.toFixed(1)} ${units[u]}`;
}

export function formatInspectText(r: InspectResult): string {
  const lines = [
    `model       ${printable(r.id)}`,
    `path        ${printable(r.path)}`,
    `files       ${r.files.map(printable).join(', ')}`,
    `parameters  ${r.parameters.toLocaleString('en-US')} (${bytesText(r.bytes)})`,
  ];
  if (r.metadata && Object.keys(r.metadata).length)
    lines.push(`metadata    ${Object.entries(r.metadata).map(([k, v]) => `${printable(k)}=${printable(v)}`).join(', ')}`);
  const rows = r.tensors.map((t) => [printable(t.name), t.dtype, t.shape.length ? t.shape.join('x') : '(scalar)', kurtosisCell(t.kurtosis), String(t.nonFinite)]);
  const head = ['tensor', 'dtype', 'shape', 'kurtosis', 'non-finite'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  // Numbers right-aligned, text left-aligned.
  const fmt = (row: string[]): string =>
    row.map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  lines.push('', fmt(head), ...rows.map(fmt));
  return lines.join('\n') + '\n';
}

/** JSON with NaN kurtosis as null (JSON has no NaN); `kurtosisComputed` tells the two nulls apart. */
export function formatInspectJson(r: InspectResult): string {
  const obj = {
    id: r.id,
    path: r.path,
    files: r.files,
    parameters: r.parameters,
    bytes: r.bytes,
    metadata: r.metadata,
    tensors: r.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      numel: t.numel,
      kurtosis: t.kurtosis === null || !Number.isFinite(t.kurtosis) ? null : Number(t.kurtosis.toPrecision(6)),
      kurtosisComputed: t.kurtosis !== null,
      nonFinite: t.nonFinite,
    })),
  };
  return JSON.stringify(obj, null, 2) + '\n';
}
