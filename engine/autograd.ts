// The tape: each op's output holds a GradNode (inputs + backward rule). backward() walks the
// nodes reachable from the root in reverse topological order, so a tensor used several times
// gets its gradients summed once before they flow further (never once per path).
import { Tensor, formatShape, type GradNode } from './tensor.js';
import { keep, scope } from './scope.js';

let gradEnabled = true;
/** Work deferred until the running backward pass ends (null outside one). */
let backwardEnd: (() => void)[] | null = null;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording anything on the tape. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Attaches a backward rule to `out` when gradients are on and an input wants one. With
 * `gradTerms` > 1 the rule receives up to that many gradient terms unsummed (GradNode).
 */
export function record(
  out: Tensor,
  op: string,
  inputs: Tensor[],
  backward: GradNode['backward'],
  gradTerms = 1,
): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward, gradTerms };
  }
  return out;
}

/**
 * The .grad of a leaf that accumulates its gradient, for a backward rule that adds its gradient
 * of `t` straight into it (in the kernel that computes it, sparing a separate accumulation) and
 * returns null for `t`; null when `t` is not such a leaf (the rule then returns the gradient).
 */
export function leafGradTarget(t: Tensor): Tensor | null {
  return t.requiresGrad && !t.node && t.grad ? t.grad : null;
}

/**
 * Runs `fn` when the backward pass now running ends, before backward() returns (rules may leave
 * work they share to one dispatch there); false, and nothing registered, outside a backward pass.
 */
export function atBackwardEnd(fn: () => void): boolean {
  if (!backwardEnd) return false;
  backwardEnd.push(fn);
  return true;
}

/** A tensor sharing the storage of `t` but cut from the tape. */
export function detach(t: Tensor): Tensor {
  return view(t);
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i];
      if (next.requiresGrad && next.node && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order; // inputs before outputs
}

/**
 * Back-propagates from `root`; leaves that require gradients accumulate into .grad.
 * The arithmetic is injected (add, in-place accumulate, clone) to keep this file free of kernels.
 */
export function runBackward(
  root: Tensor,
  seed: Tensor,
  add: (a: Tensor, b: Tensor) => Tensor,
  accumulate: (into: Tensor, x: Tensor) => void,
  clone: (x: Tensor) => Tensor,
): void {
  if (!root.requiresGrad) {
    throw new Error(
      `backward: ${root.describe()} does not require grad; no input on its path was marked requireGrad()`,
    );
  }
  // Every stored gradient is a Tensor object owned by exactly one slot (views share storage
  // cheaply), so each can be disposed as soon as its slot is consumed.
  // The gradient terms of each tensor not yet back-propagated: one, or up to its rule's gradTerms.
  const grads = new Map<Tensor, Tensor[]>([[root, [seed]]]);
  const owned = new Set<Tensor>([seed]);
  const own = (gi: Tensor): Tensor => {
    const o = owned.has(gi) ? view(gi) : gi;
    owned.add(o);
    return o;
  };
  const sum = (a: Tensor, b: Tensor): Tensor => {
    const s = add(a, b);
    owned.delete(a);
    if (a !== seed) a.dispose();
    return s;
  };
  const order = topoOrder(root);
  const outer = backwardEnd;
  const deferred: (() => void)[] = (backwardEnd = []);
  try {
    noGrad(() => {
      for (let i = order.length - 1; i >= 0; i--) {
        const t = order[i];
        const terms = grads.get(t);
        const node = t.node;
        if (!terms || !node) continue;
        grads.delete(t);
        // A scope per rule frees its temporaries; the returned gradients survive it.
        const inGrads = scope(() => node.backward(terms[0], terms.slice(1)));
        node.inputs.forEach((input, k) => {
          const gi = inGrads[k];
          if (!gi || !input.requiresGrad) return;
          if (gi.shape.length !== input.shape.length || gi.shape.some((d, j) => d !== input.shape[j])) {
            throw new Error(
              `backward of ${node.op}: gradient ${formatShape(gi.shape)} does not match input ${formatShape(input.shape)} (engine bug)`,
            );
          }
          if (input.node) {
            const prev = grads.get(input);
            if (!prev) grads.set(input, [own(gi)]);
            else if (prev.length < (input.node.gradTerms ?? 1)) prev.push(own(gi));
            else prev[prev.length - 1] = own(sum(prev[prev.length - 1], gi));
          } else if (input.grad) {
            accumulate(input.grad, gi);
          } else {
            // A leaf keeps its gradient and later contributions are added to it in place, so it
            // must not share storage with a gradient still flowing elsewhere.
            input.grad = keep(gi.storage.refs === 1 && !owned.has(gi) ? gi : clone(gi));
            owned.add(input.grad);
          }
        });
        for (const g of terms) {
          owned.delete(g);
          if (g !== seed) g.dispose();
        }
        for (const gi of inGrads) if (gi && !terms.includes(gi) && !owned.has(gi)) gi.dispose();
      }
    });
  } finally {
    // Also after a failure: deferred work must not leak into the next backward pass.
    backwardEnd = outer;
    noGrad(() => deferred.forEach((fn) => fn()));
  }
}

function view(t: Tensor): Tensor {
  t.storage.retain();
  return new Tensor(t.storage, t.shape, t.dtype);
}
