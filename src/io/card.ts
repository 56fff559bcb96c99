/**
 * Model-card metadata, as optional evidence (the weights decide): README.md YAML front matter
 * (`base_model`, `base_model_relation`) and config.json (`_name_or_path`, `architectures`).
 * Parsed with the `yaml` library; a card that cannot be parsed is no card, never an error.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The yaml library, loaded on first use (commands that read no card never load it). */
let yamlParse: ((src: string, options?: object) => unknown) | undefined;
async function loadYaml(): Promise<(src: string, options?: object) => unknown> {
  yamlParse ??= (await import('yaml')).parse as (src: string, options?: object) => unknown;
  return yamlParse;
}

export interface ModelCard {
  /** README front matter base_model: one hub id or a list, null when absent. */
  baseModel: string | string[] | null;
  /** README front matter base_model_relation (adapter, merge, quantized, finetune), or null. */
  relation: string | null;
  /** config.json _name_or_path, or null. */
  nameOrPath: string | null;
  /** config.json architectures, or null. */
  architectures: string[] | null;
}

/** The YAML front matter of a README (between a first line `---` and the next `---`), or null. */
export async function frontMatter(text: string): Promise<Record<string, unknown> | null> {
  const m = /^\uFEFF?---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(\r?\n|$)/.exec(text);
  if (!m) return null;
  const parseYaml = await loadYaml();
  try {
    const v: unknown = parseYaml(m[1]!, { maxAliasCount: 100 });
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function strings(v: unknown): string | string[] | null {
  if (typeof v === 'string' && v.trim()) return v.trim();
  if (Array.isArray(v)) {
    const s = v.filter((x): x is string => typeof x === 'string' && x.trim() !== '').map((x) => x.trim());
    return s.length === 0 ? null : s.length === 1 ? s[0]! : s;
  }
  return null;
}

async function readText(path: string, limit = 1 << 20): Promise<string | null> {
  try {
    const text = await readFile(path, 'utf8');
    return text.length > limit ? text.slice(0, limit) : text;
  } catch {
    return null;
  }
}

/** Reads the card of a model folder; null when it has neither a README nor a config.json. */
export async function readCard(dir: string): Promise<ModelCard | null> {
  // One listing first: most folders of a large zoo have neither file, and an open that fails costs an exception.
  const names = await readdir(dir).then((n) => new Set(n), () => undefined);
  const text = (name: string) => (names && !names.has(name) ? null : readText(join(dir, name)));
  const [readme, config] = await Promise.all([text('README.md'), text('config.json')]);
  if (readme === null && config === null) return null;
  const fm = readme === null ? null : await frontMatter(readme);
  let cfg: Record<string, unknown> | null = null;
  if (config !== null)
    try {
      const v: unknown = JSON.parse(config);
      if (v && typeof v === 'object' && !Array.isArray(v)) cfg = v as Record<string, unknown>;
    } catch {
      cfg = null;
    }
  const rel = fm?.base_model_relation;
  const arch = strings(cfg?.architectures);
  return {
    baseModel: strings(fm?.base_model),
    relation: typeof rel === 'string' && rel.trim() ? rel.trim() : null,
    nameOrPath: typeof cfg?._name_or_path === 'string' ? cfg._name_or_path : null,
    architectures: arch === null ? null : Array.isArray(arch) ? arch : [arch],
  };
}

/**
 * The model (id) a hub name refers to, among `ids`: the id itself, the folder form `org--name`,
 * the cache form `models--org--name`; a bare name (no '/') matches the one id whose name part is
 * it. null when nothing (or more than one model) matches: the claim names a model not here.
 */
export function resolveModelName(name: string, ids: readonly string[]): string | null {
  const n = name.trim().replace(/^https?:\/\/huggingface\.co\//, '').replace(/\/+$/, '');
  if (!n) return null;
  const forms = [n, n.replace(/\//g, '--'), `models--${n.replace(/\//g, '--')}`];
  for (const f of forms) if (ids.includes(f)) return f;
  const lower = forms.map((f) => f.toLowerCase());
  const ci = ids.filter((id) => lower.includes(id.toLowerCase()));
  if (ci.length === 1) return ci[0]!;
  if (!n.includes('/')) {
    const byName = ids.filter((id) => id.split(/\/|--/).pop() === n);
    if (byName.length === 1) return byName[0]!;
  }
  return null;
}
