// Scopes free every tensor made inside them except what the callback returns (and tensors
// passed to keep()). Gradients assigned to leaves are kept automatically.
import type { Tensor } from './tensor.js';

const stack: Set<Tensor>[] = [];

export function trackInScope(t: Tensor): void {
  stack[stack.length - 1]?.add(t);
}

/** Takes a tensor out of every open scope so no scope disposes it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(value: unknown, into: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if ((value as Tensor).storage !== undefined && (value as Tensor).shape !== undefined) {
    into.add(value as Tensor);
    return;
  }
  for (const v of Array.isArray(value) ? value : Object.values(value as object)) collect(v, into, seen);
}

/** Runs fn; disposes the tensors it created, except the ones in its result. */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Tensor>();
  stack.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) throw new Error('scope: the callback returned a Promise; scopes are synchronous (await outside, or read results after the scope)');
  const out = new Set<Tensor>();
  collect(result, out);
  for (const t of mine) {
    if (out.has(t)) trackInScope(t);
    else t.dispose();
  }
  return result;
}
