// libc through Node's own FFI, `node:ffi`: in Node 26.1 behind
// --experimental-ffi, on by default since 26.9; Node 22 and 24 have none, and
// --no-experimental-ffi, or the permission model without --allow-ffi, takes it
// away. Where it works, Node takes the libc paths Deno and Bun already take
// (runtimes/ffi/libc.ts): sd_notify from the service's own PID, the fd store,
// LISTEN_PIDFDID, close-on-exec checked per fd, unix datagrams. Detected once,
// on first need, never at import: Node 22 and 24 load nothing more.
import { LIBC, type Libc, makeLibc, type SymbolDef } from "../ffi/libc.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** The environment variable that keeps the package off node:ffi ("0"). */
export const FFI_ENV = "SOCKET_ACTIVATE_FFI";

let libc: Libc | null | undefined;
let why: string | undefined;

/**
 * The first load of node:ffi emits one ExperimentalWarning ("FFI is an
 * experimental feature ..."). A service's log should not gain a line its
 * author never asked for on every start, so exactly that warning, emitted
 * while the package loads the module, is not passed on; any other warning is.
 */
function loadQuietly(): Any {
  const p = process as Any;
  const emit = p.emitWarning;
  p.emitWarning = function (warning: unknown, ...rest: unknown[]) {
    const type = typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    if (type === "ExperimentalWarning" && /^FFI is an experimental feature/.test(String(warning))) return;
    return emit.call(this, warning, ...rest);
  };
  try {
    return p.getBuiltinModule?.("node:ffi");
  } finally {
    p.emitWarning = emit;
  }
}

/**
 * libc over node:ffi, or undefined where Node has none that works (see
 * `ffiAbsence()` for why). The definitions are written in Deno's notation
 * (`parameters`/`result`, `usize`); Node 26.12 takes `arguments`/`return` and
 * u64/i64, and binds a function of no arguments, without an error, from keys
 * it does not know: they are translated here, and a probe call proves that a
 * bound function takes its arguments before anything relies on it.
 */
export function nodeLibc(): Libc | undefined {
  if (libc !== undefined) return libc ?? undefined;
  libc = null;
  if (process.env[FFI_ENV] === "0") {
    why = `${FFI_ENV}=0 keeps the package off node:ffi`;
    return undefined;
  }
  let ffi: Any;
  try {
    ffi = loadQuietly();
  } catch (e) {
    why = `node:ffi failed to load (${(e as Error).message})`;
    return undefined;
  }
  if (typeof ffi?.dlopen !== "function") {
    why = `Node ${process.versions.node} has no node:ffi (Node 26.9 and later have it on by default; ` +
      "26.1 to 26.8 with --experimental-ffi)";
    return undefined;
  }
  const open = (defs: Record<string, SymbolDef>) => {
    const symbols: Record<string, { arguments: string[]; return: string }> = {};
    for (const [name, def] of Object.entries(defs)) {
      symbols[name] = {
        arguments: def.parameters.map((p) => (p === "usize" ? "u64" : p)),
        return: def.result === "isize" ? "i64" : def.result,
      };
    }
    return ffi.dlopen(LIBC, symbols).functions;
  };
  try {
    // The probe: labs(-7) is 7 only from a function that took its argument.
    const { functions } = ffi.dlopen(LIBC, { labs: { arguments: ["i64"], return: "i64" } });
    if (Number(functions.labs(-7)) !== 7) throw new Error("labs(-7) did not answer 7");
    const bound = makeLibc(open, false, process.arch, (buf) => BigInt(ffi.getRawPointer(buf)));
    bound.fcntl(0, 1, 0); // bind the core now: a failure shows here, not later
    libc = bound;
  } catch (e) {
    const code = (e as { code?: string }).code;
    why = code === "ERR_ACCESS_DENIED"
      ? "the permission model is on without --allow-ffi"
      : `node:ffi could not bind ${LIBC} (${(e as Error).message})`;
    return undefined;
  }
  return libc;
}

/** Why nodeLibc() is undefined, for error messages: "" where it works or was not yet asked. */
export function ffiAbsence(): string {
  return why ?? "";
}
