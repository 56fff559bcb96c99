/**
 * Placement between a parent, a grandparent and a sibling, settled by the placement distance alone.
 *
 * The directed tree (spectrum.ts) adds direction votes to the placement distance, and along a
 * lineage those votes favour older parents: a cue that changes monotonically from g to a to x
 * separates x from its grandparent g more clearly than from its parent a, so vote(g -> x) is at
 * least vote(a -> x) (lm-chain t1-v2: kurtosis votes 0.47 from its grandparent, 0.13 from its
 * parent). Where the placement distances of the two are within that bias, the tree hangs x from
 * g. The same bias keeps drift-together siblings apart, so it is not removed from the tree (votes
 * that only penalise a reversed edge were tried: docs/method.md, Variants). These two moves,
 * after the tree, let the placement distance decide the choice between a parent and a grandparent:
 *
 * - **adopt**: x hangs from g, and a sibling a (another child of g) is nearer to x by the
 *   placement distance and x carries a's own update: kappa0 = <x - g, a - g> / |a - g|^2 in
 *   [MIN_INHERITED, 1 / MIN_INHERITED] (a child of a is a + u_x, kappa0 = 1 + <u_x, u_a>/|u_a|^2).
 *   x moves below a (the nearest such a). Without the kappa0 test drift-together siblings would be
 *   chained; with it, 2 of the 612 true sibling pairs of 15 zoo splits pass, against 243 of the 265
 *   true parent-child-grandparent chains.
 * - **lift**: x hangs from a, and a's parent g is nearer to x than a is: x moves up to g. A move to
 *   an ancestor claims less, so no inheritance test; it also gives back a true edge that the
 *   inheritance constraint forbade (a fine-tune that overwrote its parent's update).
 *
 * Both run to a fixed point (at most n rounds each): afterwards no child is nearer to its
 * grandparent than to its parent, and none is nearer to an inheriting sibling. Neither can make a
 * cycle (a sibling is never in x's subtree; a grandparent is an ancestor). No fitted constant: the
 * kappa0 interval is the inheritance constraint's own bound and its reciprocal.
 */
import { carriedShare, MIN_INHERITED } from './inheritance.js';

/**
 * Applies `move` (x, current parents) -> new parent of x or -1 for no move, over every non-root x,
 * until a round moves nothing (at most n rounds). Local indices, parent -1 at a root.
 */
function untilSettled(n: number, parent: ArrayLike<number>, move: (x: number, out: Int32Array) => number): { parent: Int32Array; moved: number } {
  const out = Int32Array.from(parent);
  let moved = 0;
  for (let round = 0; round < n; round++) {
    let changed = false;
    for (let x = 0; x < n; x++) {
      if (out[x] < 0) continue;
      const to = move(x, out);
      if (to >= 0) { out[x] = to; moved++; changed = true; }
    }
    if (!changed) break;
  }
  return { parent: out, moved };
}

/**
 * Moves, to a fixed point, every x whose parent g has another child a that is nearer to x (D) and
 * whose update x carries (see the file comment) below the nearest such a. Local indices, parent -1
 * at a root; returns new parents and the number of moves.
 */
export function adoptBySibling(D: Float64Array, S2: Float64Array, n: number, parent: ArrayLike<number>): { parent: Int32Array; moved: number } {
  return untilSettled(n, parent, (x, out) => {
    const g = out[x];
    let best = -1;
    for (let a = 0; a < n; a++) {
      if (a === x || out[a] !== g || !(D[a * n + x] < D[g * n + x])) continue;
      const k = carriedShare(S2, n, x, a, g);
      if (!(k >= MIN_INHERITED && k <= 1 / MIN_INHERITED)) continue;
      if (best < 0 || D[a * n + x] < D[best * n + x]) best = a;
    }
    return best;
  });
}

/**
 * Moves, to a fixed point, every x that is nearer (D) to its grandparent than to its parent up to
 * the grandparent. Local indices, parent -1 at a root; returns new parents and the number of moves.
 */
export function liftToGrandparent(D: Float64Array, n: number, parent: ArrayLike<number>): { parent: Int32Array; moved: number } {
  return untilSettled(n, parent, (x, out) => {
    const a = out[x], g = out[a];
    return g >= 0 && D[g * n + x] < D[a * n + x] ? g : -1;
  });
}

/** adoptBySibling, then liftToGrandparent: the tree's parents with placement settled. */
export function settlePlacement(D: Float64Array, S2: Float64Array, n: number, parent: ArrayLike<number>): Int32Array {
  return liftToGrandparent(D, n, adoptBySibling(D, S2, n, parent).parent).parent;
}
