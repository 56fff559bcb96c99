/**
 * JSON report: the RecoverResult with a fixed key order and rounded numbers, so two runs diff cleanly.
 * `models` rows start with the zoo truth.json fields (id, path, parent), so the file can be fed to
 * `mother eval` or compared with a truth.json directly.
 */
import type { Diagnostics, Family, RecoveredModel, RecoverResult } from '../types.js';

/** Rounds to `decimals` places; non-finite values become null (JSON has no NaN/Infinity). */
export function round(x: number, decimals: number): number | null {
  if (!Number.isFinite(x)) return null;
  const r = Number(x.toFixed(decimals));
  return Object.is(r, -0) ? 0 : r;
}

/** Keeps `digits` significant digits: kurtosis ranges from ~0 to the hundreds. */
function roundSignificant(x: number, digits: number): number | null {
  if (!Number.isFinite(x)) return null;
  if (x === 0) return 0;
  return Number(x.toPrecision(digits));
}

function modelRow(m: RecoveredModel): Record<string, unknown> {
  const row: Record<string, unknown> = {
    id: m.id,
    path: m.path,
    parent: m.parent,
    confidence: round(m.confidence, 4),
    family: m.family,
    kurtosis: roundSignificant(m.kurtosis, 6),
  };
  if (m.runnerUp) row.runnerUp = { parent: m.runnerUp.parent, confidence: round(m.runnerUp.confidence, 4) };
  if (m.parents)
    row.parents = m.parents.map((p) => ({
      id: p.id, relation: p.relation, ...(p.weight !== undefined ? { weight: round(p.weight, 4) } : {}), confidence: round(p.confidence, 4),
    }));
  if (m.declared !== undefined)
    row.declared = m.declared === null ? null : {
      baseModel: Array.isArray(m.declared.baseModel) ? [...m.declared.baseModel] : m.declared.baseModel,
      relation: m.declared.relation, agrees: m.declared.agrees, note: m.declared.note,
    };
  if (m.format !== undefined) row.format = m.format;
  return row;
}

function familyRow(f: Family): Record<string, unknown> {
  return {
    index: f.index,
    root: f.root,
    size: f.members.length,
    members: [...f.members],
    distance: f.distance,
    evidence: f.evidence,
    direction: f.direction,
    architecture: f.architecture,
  };
}

function diagnosticsRow(d: Diagnostics): Record<string, unknown> {
  return {
    backend: d.backend,
    device: d.device,
    threads: d.threads,
    tensorsUsed: d.tensorsUsed,
    tensorsSkipped: d.tensorsSkipped.map((s) => {
      const row: Record<string, unknown> = { name: s.name, reason: s.reason };
      if (s.models) row.models = [...s.models];
      return row;
    }),
    bytesRead: d.bytesRead,
    seconds: {
      total: round(d.seconds.total, 3),
      headers: round(d.seconds.headers, 3),
      statistics: round(d.seconds.statistics, 3),
      graph: round(d.seconds.graph, 3),
    },
    warnings: [...d.warnings],
    skippedModels: d.skippedModels.map((m) => ({ path: m.path, code: m.code, message: m.message })),
    backendFallback: d.backendFallback,
  };
}

/** The report as a plain object (key order fixed); `formatJson` serialises it. */
export function toJsonObject(result: RecoverResult): Record<string, unknown> {
  return {
    models: result.models.map(modelRow),
    families: result.families.map(familyRow),
    diagnostics: diagnosticsRow(result.diagnostics),
  };
}

/** 2-space indented JSON, newline-terminated. */
export function formatJson(result: RecoverResult): string {
  return JSON.stringify(toJsonObject(result), null, 2) + '\n';
}
