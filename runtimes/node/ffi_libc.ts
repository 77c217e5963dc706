// libc through node:ffi (Node 26), bound on first need and synchronously, for
// listenFds(), which is synchronous: ./runtime.ts require()s this file where
// node:ffi is there (never on Node 22 and 24), ./ffi.ts imports it.
import type { FdState } from "../../src/_runtime.ts";
import { LIBC, type Libc, makeLibc, pidfdIdVia, setCloexecVia, type SymbolDef } from "../ffi/libc.ts";
import type { NodeFfi } from "./ffi_gate.ts";

type Fn = (...args: unknown[]) => unknown;

// node:ffi's type names: no usize/isize, and `buffer` takes a Uint8Array
// (with its offset) as a pointer.
const TYPE = { i32: "i32", i64: "i64", usize: "u64", isize: "i64", buffer: "buffer" } as const;

// Node 26.1 documented `parameters`/`result`; 26.12 takes `arguments`/`return`
// and silently ignores the others (a function of no arguments returning
// nothing). Which one this Node reads is found by a call, not by its version.
export type Keys = readonly [string, string];
const SHAPES: Keys[] = [["arguments", "return"], ["parameters", "result"]];

function probeKeys(ffi: NodeFfi): Keys | undefined {
  for (const [args, ret] of SHAPES) {
    try {
      const close = ffi.dlopen(LIBC, { close: { [args]: ["i32"], [ret]: "i32" } }).functions.close as Fn;
      // close(-1) is EBADF and touches nothing: -1 only when both keys were read.
      if (close(-1) === -1) return [args, ret];
    } catch { /* this shape is refused: the next */ }
  }
  return undefined;
}

let libc: Libc | null | undefined;
let keys: Keys | undefined;

/** The definition keys this Node reads (after nodeLibc() bound libc). */
export const nodeKeys = (): Keys | undefined => keys;

/** libc bound through node:ffi, or null (no libc.so.6, as on musl; keys this Node does not take). */
export function nodeLibc(ffi: NodeFfi): Libc | null {
  if (libc !== undefined) return libc;
  try {
    keys = probeKeys(ffi);
    if (keys === undefined) return (libc = null);
    const [args, ret] = keys;
    const open = (defs: Record<string, SymbolDef>) => {
      const symbols: Record<string, Record<string, unknown>> = {};
      for (const [name, def] of Object.entries(defs)) {
        symbols[name] = { [args]: def.parameters.map((p) => TYPE[p]), [ret]: TYPE[def.result] };
      }
      return ffi.dlopen(LIBC, symbols).functions as Record<string, Fn>;
    };
    // Numbers for 64-bit arguments (node:ffi takes both); 64-bit results come back as BigInts.
    libc = makeLibc(open, false, process.arch, (buf) => ffi.getRawPointer(buf));
  } catch {
    libc = null;
  }
  return libc;
}

/** fcntl's F_SETFD as libsystemd's fd_cloexec(); undefined where libc cannot be bound. */
export function setCloexecNode(ffi: NodeFfi, fd: number): FdState | undefined {
  const c = nodeLibc(ffi);
  return c === null ? undefined : setCloexecVia(c, fd);
}

/** This process's pidfs inode id (LISTEN_PIDFDID); undefined without libc or pidfs. */
export function pidfdIdNode(ffi: NodeFfi): bigint | undefined {
  const c = nodeLibc(ffi);
  return c === null ? undefined : pidfdIdVia(c, process.pid, process.arch);
}
