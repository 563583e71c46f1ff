// Scopes free every tensor made inside them except what the callback returns (and tensors
// passed to keep()). Gradients assigned to leaves are kept automatically.
//
// It knows tensors only by this shape, so tensor.ts (which registers each new tensor here) and
// this module do not import each other.
/** What a scope tracks: a tensor, as far as disposing it goes. */
export interface Scoped {
  readonly storage: unknown;
  readonly shape: readonly number[];
  dispose(): void;
}

const stack: Set<Scoped>[] = [];

export function trackInScope(t: Scoped): void {
  stack[stack.length - 1]?.add(t);
}

/** Takes a tensor out of every open scope so no scope disposes it. */
export function keep<T extends Scoped>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(value: unknown, into: Set<Scoped>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if ((value as Scoped).storage !== undefined && (value as Scoped).shape !== undefined) {
    into.add(value as Scoped);
    return;
  }
  for (const v of Array.isArray(value) ? value : Object.values(value as object)) collect(v, into, seen);
}

/** Runs fn; disposes the tensors it created, except the ones in its result. */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Scoped>();
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
  if (result instanceof Promise)
    throw new Error(
      'scope: the callback returned a Promise; scopes are synchronous (await outside, or read results after the scope)',
    );
  const out = new Set<Scoped>();
  collect(result, out);
  for (const t of mine) {
    if (out.has(t)) trackInScope(t);
    else t.dispose();
  }
  return result;
}
