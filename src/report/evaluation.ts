/**
 * `mother eval`: scores a recovered forest against a truth.json (the zoo's format), matching models
 * by id. Metrics come from graph/eval.ts; this file matches ids, builds families and reports.
 *
 * - edge accuracy: the paper's metric, a model counts when its predicted parent is its true parent
 *   (right place and direction); a true root counts when predicted as a root.
 * - undirected accuracy: as above, but an edge predicted the wrong way round also counts.
 * - clustering ARI: truth families are the connected components of the truth parents; predicted
 *   families are the result's `family` fields when every row has one, else components of the
 *   predicted parents.
 */
import { printable } from './text.js';
import { InputError } from '../errors.js';
import { adjustedRandIndex, edgeAccuracy, undirectedAccuracy } from '../graph/eval.js';

export interface ParentRow {
  id: string;
  parent: string | null;
  family?: number;
}

export type WrongKind = 'reversed' | 'misplaced' | 'missed-root' | 'false-root';

export interface WrongEdge {
  id: string;
  truth: string | null;
  predicted: string | null;
  kind: WrongKind;
}

export interface Evaluation {
  models: number;
  correct: number;
  edgeAccuracy: number;
  undirectedAccuracy: number;
  ari: number;
  truthFamilies: number;
  predictedFamilies: number;
  /** Where predicted families came from. */
  familiesFrom: 'family field' | 'parents';
  wrong: WrongEdge[];
}

/** Reads `{"models":[{"id","parent",...}]}` (truth.json or a mother JSON report) from parsed JSON. */
export function parentRows(json: unknown, what: string, file?: string): ParentRow[] {
  const models = (json as { models?: unknown } | null)?.models;
  if (!Array.isArray(models)) throw new InputError('E_INPUT_FORMAT', `${what} has no "models" array`, { file });
  const seen = new Set<string>();
  return models.map((row, i) => {
    const r = row as { id?: unknown; parent?: unknown; family?: unknown } | null;
    if (!r || typeof r.id !== 'string') throw new InputError('E_INPUT_FORMAT', `${what}: models[${i}] has no string "id"`, { file });
    if (seen.has(r.id)) throw new InputError('E_INPUT_FORMAT', `${what}: model id '${r.id}' appears twice`, { file });
    seen.add(r.id);
    const parent = r.parent ?? null;
    if (parent !== null && typeof parent !== 'string')
      throw new InputError('E_INPUT_FORMAT', `${what}: model '${r.id}' has a "parent" that is neither a string nor null`, { file });
    const out: ParentRow = { id: r.id, parent };
    if (typeof r.family === 'number' && Number.isInteger(r.family)) out.family = r.family;
    return out;
  });
}

/** Connected components of a parent forest, cycle-safe (union-find), as labels 0..k-1. */
export function componentsOf(parent: (number | null)[]): number[] {
  const up = parent.map((_, i) => i);
  const find = (x: number): number => {
    while (up[x] !== x) x = up[x] = up[up[x]!]!;
    return x;
  };
  parent.forEach((p, i) => {
    if (p !== null && p >= 0) up[find(i)] = find(p);
  });
  const label = new Map<number, number>();
  return parent.map((_, i) => {
    const r = find(i);
    if (!label.has(r)) label.set(r, label.size);
    return label.get(r)!;
  });
}

function listIds(ids: string[], max = 5): string {
  const shown = ids.slice(0, max).map((s) => `'${s}'`).join(', ');
  return ids.length > max ? `${shown} and ${ids.length - max} more` : shown;
}

export function evaluate(truth: ParentRow[], predicted: ParentRow[], names = { truth: 'truth', result: 'result' }): Evaluation {
  if (truth.length === 0) throw new InputError('E_INPUT_FORMAT', `${names.truth} lists no models`);
  const index = new Map(truth.map((r, i) => [r.id, i]));
  const predById = new Map(predicted.map((r) => [r.id, r]));
  const missing = truth.filter((r) => !predById.has(r.id)).map((r) => r.id);
  const extra = predicted.filter((r) => !index.has(r.id)).map((r) => r.id);
  if (missing.length || extra.length) {
    const parts: string[] = [];
    if (missing.length) parts.push(`${names.result} lacks ${missing.length} model(s) of ${names.truth}: ${listIds(missing)}`);
    if (extra.length) parts.push(`${names.result} has ${extra.length} model(s) not in ${names.truth}: ${listIds(extra)}`);
    throw new InputError('E_INPUT_MISMATCH', parts.join('; '));
  }
  for (const r of truth)
    if (r.parent !== null && !index.has(r.parent))
      throw new InputError('E_INPUT_FORMAT', `${names.truth}: parent '${r.parent}' of '${r.id}' is not a model of ${names.truth}`);

  // -1: a predicted parent that names no model; never equal to a true parent.
  const toIndex = (p: string | null): number | null => (p === null ? null : (index.get(p) ?? -1));
  const t = truth.map((r) => toIndex(r.parent));
  const pr = truth.map((r) => toIndex(predById.get(r.id)!.parent));
  const edge = edgeAccuracy(t, pr);
  const undirected = undirectedAccuracy(t, pr);

  const truthFam = componentsOf(t);
  const useField = truth.every((r) => predById.get(r.id)!.family !== undefined);
  const predFam = useField ? truth.map((r) => predById.get(r.id)!.family!) : componentsOf(pr);

  const wrong: WrongEdge[] = [];
  truth.forEach((r) => {
    const p = predById.get(r.id)!.parent;
    if (p === r.parent) return;
    let kind: WrongKind;
    if (r.parent === null) kind = 'missed-root';
    else if (p === null) kind = 'false-root';
    else if (truth[index.get(p) ?? -1]?.parent === r.id) kind = 'reversed';
    else kind = 'misplaced';
    wrong.push({ id: r.id, truth: r.parent, predicted: p, kind });
  });

  return {
    models: truth.length,
    correct: truth.length - wrong.length,
    edgeAccuracy: edge,
    undirectedAccuracy: undirected,
    ari: adjustedRandIndex(truthFam, predFam),
    truthFamilies: new Set(truthFam).size,
    predictedFamilies: new Set(predFam).size,
    familiesFrom: useField ? 'family field' : 'parents',
    wrong,
  };
}

const r4 = (x: number): number => Number(x.toFixed(4));

export function formatEvaluationJson(e: Evaluation): string {
  return (
    JSON.stringify(
      {
        models: e.models,
        correct: e.correct,
        edgeAccuracy: r4(e.edgeAccuracy),
        undirectedAccuracy: r4(e.undirectedAccuracy),
        ari: r4(e.ari),
        truthFamilies: e.truthFamilies,
        predictedFamilies: e.predictedFamilies,
        familiesFrom: e.familiesFrom,
        wrong: e.wrong,
      },
      null,
      2,
    ) + '\n'
  );
}

export function formatEvaluationText(e: Evaluation): string {
  const lines = [
    `edge accuracy        ${e.edgeAccuracy.toFixed(4)}  (${e.correct}/${e.models} parents right)`,
    `undirected accuracy  ${e.undirectedAccuracy.toFixed(4)}`,
    `clustering ARI       ${e.ari.toFixed(4)}  (${e.truthFamilies} true families, ${e.predictedFamilies} predicted from ${e.familiesFrom})`,
  ];
  if (e.wrong.length) {
    lines.push(`wrong edges (${e.wrong.length}):`);
    const w = Math.max(...e.wrong.map((x) => printable(x.id).length));
    const show = (p: string | null): string => (p === null ? '(root)' : printable(p));
    for (const x of e.wrong) lines.push(`  ${printable(x.id).padEnd(w)}  predicted ${show(x.predicted)}, true ${show(x.truth)}  [${x.kind}]`);
  } else lines.push('wrong edges: none');
  return lines.join('\n') + '\n';
}

/* ---- Typed heritage graphs (TensorLock-style scoring) ---- */

export interface TypedEdgeRow {
  id: string;
  parents: { id: string; relation: string }[];
  /** Truth: { correct } of the card's claim; result: { agrees }. */
  claim?: boolean | null;
}

export interface Prf {
  truth: number;
  predicted: number;
  correct: number;
  precision: number;
  recall: number;
  f1: number;
}

export interface TypedEvaluation {
  /** Edges (child, parent), relation ignored. */
  untyped: Prf;
  /** Edges (child, parent, relation). */
  typed: Prf;
  /** Typed edges per relation type (of the truth's and the result's edges of that type). */
  perRelation: Record<string, Prf>;
  /** Merges whose every parent was found. */
  mergesComplete: { merges: number; complete: number };
  /** Card claims of the truth judged as the truth does (wrong ones flagged, right ones not). */
  claims: { total: number; judgedRight: number; wrongFlagged: number; wrongTotal: number; rightFlagged: number; unjudged: number };
  /** Truth models absent from the result (unread): their edges count as missed. */
  missing: string[];
}

function prf(truth: number, predicted: number, correct: number): Prf {
  const precision = predicted ? correct / predicted : truth ? 0 : 1;
  const recall = truth ? correct / truth : 1;
  const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
  return { truth, predicted, correct, precision, recall, f1 };
}

/** Rows of a typed graph: `parents: [{id, relation}]` per model, else `parent` as a fine-tune edge. */
export function typedRows(json: unknown, what: string, file?: string): TypedEdgeRow[] {
  const models = (json as { models?: unknown } | null)?.models;
  if (!Array.isArray(models)) throw new InputError('E_INPUT_FORMAT', `${what} has no "models" array`, { file });
  return models.map((row, i) => {
    const r = row as { id?: unknown; parent?: unknown; parents?: unknown; declared?: unknown } | null;
    if (!r || typeof r.id !== 'string') throw new InputError('E_INPUT_FORMAT', `${what}: models[${i}] has no string "id"`, { file });
    let parents: { id: string; relation: string }[];
    if (Array.isArray(r.parents))
      parents = r.parents.map((p, k) => {
        const q = p as { id?: unknown; relation?: unknown } | null;
        if (!q || typeof q.id !== 'string' || typeof q.relation !== 'string')
          throw new InputError('E_INPUT_FORMAT', `${what}: models[${i}].parents[${k}] needs a string "id" and "relation"`, { file });
        return { id: q.id, relation: q.relation };
      });
    else parents = typeof r.parent === 'string' ? [{ id: r.parent, relation: 'finetune' }] : [];
    const d = r.declared as { correct?: unknown; agrees?: unknown } | null | undefined;
    const claim = d && typeof d === 'object' ? (typeof d.correct === 'boolean' ? d.correct : typeof d.agrees === 'boolean' ? d.agrees : null) : undefined;
    return { id: r.id, parents, ...(claim !== undefined ? { claim } : {}) };
  });
}

/** Whether a truth file carries typed parents (`parents` arrays). */
export function isTyped(json: unknown): boolean {
  const models = (json as { models?: unknown } | null)?.models;
  return Array.isArray(models) && models.some((m) => Array.isArray((m as { parents?: unknown } | null)?.parents));
}

/**
 * Scores a typed graph against a typed truth, as TensorLock does: precision, recall and F1 of
 * the edges, untyped and typed, per relation type; merges with all their parents; card claims
 * judged right. A truth model missing from the result (unread) has all its edges missed.
 */
export function evaluateTyped(truth: TypedEdgeRow[], result: TypedEdgeRow[]): TypedEvaluation {
  const byId = new Map(result.map((r) => [r.id, r]));
  const known = new Set(truth.map((r) => r.id));
  const missing = truth.filter((r) => !byId.has(r.id)).map((r) => r.id);
  const edges = (rows: TypedEdgeRow[]) => rows.flatMap((r) => r.parents.map((p) => ({ child: r.id, parent: p.id, relation: p.relation })));
  const T = edges(truth);
  const P = edges(result.filter((r) => known.has(r.id)));
  const key = (e: { child: string; parent: string }) => `${e.child}\u0000${e.parent}`;
  const tkey = (e: { child: string; parent: string; relation: string }) => `${key(e)}\u0000${e.relation}`;
  const Tu = new Set(T.map(key)), Tt = new Set(T.map(tkey));
  const untyped = prf(Tu.size, new Set(P.map(key)).size, [...new Set(P.map(key))].filter((k) => Tu.has(k)).length);
  const Pt = new Set(P.map(tkey));
  const typed = prf(Tt.size, Pt.size, [...Pt].filter((k) => Tt.has(k)).length);
  const perRelation: Record<string, Prf> = {};
  for (const rel of [...new Set([...T, ...P].map((e) => e.relation))].sort()) {
    const t = new Set(T.filter((e) => e.relation === rel).map(tkey));
    const p = new Set(P.filter((e) => e.relation === rel).map(tkey));
    perRelation[rel] = prf(t.size, p.size, [...p].filter((k) => t.has(k)).length);
  }
  const merges = truth.filter((r) => r.parents.some((p) => p.relation === 'merge'));
  const complete = merges.filter((r) => {
    const got = new Set((byId.get(r.id)?.parents ?? []).map((p) => p.id));
    return r.parents.every((p) => got.has(p.id));
  }).length;
  const claims = { total: 0, judgedRight: 0, wrongFlagged: 0, wrongTotal: 0, rightFlagged: 0, unjudged: 0 };
  for (const r of truth) {
    if (typeof r.claim !== 'boolean') continue;
    claims.total++;
    const got = byId.get(r.id)?.claim;
    if (!r.claim) claims.wrongTotal++;
    if (typeof got !== 'boolean') { claims.unjudged++; continue; }
    if (got === r.claim) claims.judgedRight++;
    if (!r.claim && !got) claims.wrongFlagged++;
    if (r.claim && !got) claims.rightFlagged++;
  }
  return { untyped, typed, perRelation, mergesComplete: { merges: merges.length, complete }, claims, missing };
}

const p4 = (x: Prf) => ({ ...x, precision: r4(x.precision), recall: r4(x.recall), f1: r4(x.f1) });

export function formatTypedJson(e: TypedEvaluation): Record<string, unknown> {
  return {
    untyped: p4(e.untyped),
    typed: p4(e.typed),
    perRelation: Object.fromEntries(Object.entries(e.perRelation).map(([k, v]) => [k, p4(v)])),
    mergesComplete: e.mergesComplete,
    claims: e.claims,
    missing: e.missing,
  };
}

export function formatTypedText(e: TypedEvaluation): string {
  const row = (name: string, x: Prf) =>
    `  ${name.padEnd(10)} P ${x.precision.toFixed(3)}  R ${x.recall.toFixed(3)}  F1 ${x.f1.toFixed(3)}  (${x.correct} right of ${x.predicted} predicted, ${x.truth} true)`;
  const lines = ['typed heritage graph (edges child <- parent):', row('untyped', e.untyped), row('typed', e.typed)];
  for (const [k, v] of Object.entries(e.perRelation)) lines.push(row(k, v));
  lines.push(`  merges with every parent found: ${e.mergesComplete.complete}/${e.mergesComplete.merges}`);
  const c = e.claims;
  lines.push(`  card claims judged right: ${c.judgedRight}/${c.total} (wrong claims flagged ${c.wrongFlagged}/${c.wrongTotal}, right claims flagged ${c.rightFlagged}, not judged ${c.unjudged})`);
  if (e.missing.length) lines.push(`  not in the result (edges counted missed): ${listIds(e.missing)}`);
  return lines.join('\n') + '\n';
}
