/** Option-object checks shared by recover() and inspectModel(). */
import { InputError } from '../errors.js';

/** Levenshtein distance, for "did you mean" on unknown option keys. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

/**
 * Throws E_INPUT_OPTION for an own key of `o` that `fn` does not read (a typo, an option of another
 * tool): an option with no effect is an error, not silence. Suggests the nearest known key.
 */
export function checkOptionKeys(o: object, known: readonly string[], fn: string): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const near = known.map((x) => [x, editDistance(k, x)] as const).sort((a, b) => a[1] - b[1])[0];
    const hint = near && near[1] <= Math.max(2, Math.floor(k.length / 3)) ? `; did you mean '${near[0]}'?` : '';
    throw new InputError('E_INPUT_OPTION', `Unknown option '${k}' for ${fn}${hint} (known: ${known.join(', ')})`);
  }
}
