// Whether this Node may use node:ffi (built in since 26.1, on by default since
// 26.9): asked lazily, on the first call that can use it, so that Node 22 and
// 24, and a Node 26 process that never notifies, load nothing for it. What
// binds libc lives in ./ffi.ts, loaded only where this says yes.

/** The part of node:ffi the package uses. */
export interface NodeFfi {
  dlopen(path: string, defs: Record<string, unknown>): { functions: Record<string, unknown> };
  getRawPointer(buf: ArrayBufferView): bigint;
}

let ffi: NodeFfi | null | undefined;

/**
 * node:ffi, or undefined: on Node 22 and 24, under `--no-experimental-ffi`,
 * under the permission model without `--allow-ffi`, and when
 * SOCKET_ACTIVATE_FFI=0 (read on every call, so that it can be set at any time).
 */
export function nodeFfi(): NodeFfi | undefined {
  if (process.env.SOCKET_ACTIVATE_FFI === "0") return undefined;
  return (ffi ??= loadFfi()) ?? undefined;
}

function loadFfi(): NodeFfi | null {
  const p = process as unknown as {
    getBuiltinModule?: (id: string) => unknown;
    permission?: { has(scope: string): boolean };
  };
  if (typeof p.getBuiltinModule !== "function") return null;
  // Under --permission without --allow-ffi node:ffi loads (and warns), and
  // then every dlopen throws ERR_ACCESS_DENIED.
  if (p.permission !== undefined && !p.permission.has("ffi")) return null;
  // Loading node:ffi prints "ExperimentalWarning: FFI is an experimental
  // feature" once a process. The package's own use must not add a line to a
  // service's log on every start: that one warning is dropped while the module
  // loads, every other warning passes.
  const emit = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]) {
    const type = typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    const text = typeof warning === "string" ? warning : warning.message;
    if (type === "ExperimentalWarning" && /^FFI is an experimental feature/.test(text)) return;
    return (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    const m = p.getBuiltinModule("node:ffi") as NodeFfi | undefined;
    return typeof m?.dlopen === "function" && typeof m.getRawPointer === "function" ? m : null;
  } catch {
    return null;
  } finally {
    process.emitWarning = emit;
  }
}
