// The Node shim's libc over node:ffi (Node 26), loaded only where
// ffi_gate.ts found node:ffi: the same symbol tables and calls Deno and Bun
// use (runtimes/ffi/libc.ts), with their definitions translated.
import type { FdPassing } from "../../src/_runtime.ts";
import type { Addr, RawDgram } from "../../src/_net.ts";
import { ffiDgram, timerWait } from "../ffi/dgram.ts";
import { fdPassingVia, LIBC, type Libc, makeLibc, sendWithFdsVia, type SymbolDef } from "../ffi/libc.ts";
import type { NodeFfi } from "./ffi_gate.ts";

type Fn = (...args: unknown[]) => unknown;

// node:ffi's type names: no usize/isize, and `buffer` takes a Uint8Array
// (with its offset) as a pointer.
const TYPE = { i32: "i32", i64: "i64", usize: "u64", isize: "i64", buffer: "buffer" } as const;

// Node 26.1 documented `parameters`/`result`; 26.12 takes `arguments`/`return`
// and silently ignores the others (a function of no arguments returning
// nothing). Which one this Node reads is found by a call, not by its version.
type Keys = readonly [string, string];
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

/**
 * sd_notify as libsystemd sends it, from this process (its PID in
 * SCM_CREDENTIALS, so NotifyAccess=main accepts it): whether it was sent;
 * undefined where libc cannot be bound, for the caller to fall back to
 * systemd-notify. Nothing from src/ here: the chunks the Node build loads at
 * import stay as they were without FFI.
 */
export function notifyVia(ffi: NodeFfi, path: Uint8Array, state: string): boolean | undefined {
  const c = nodeLibc(ffi);
  return c === null ? undefined : sendWithFdsVia(c, path, new TextEncoder().encode(state), []);
}

/** FDSTORE=1 and BARRIER=1: sendmsg with SCM_RIGHTS, pipe2, poll; undefined without libc. */
export function fdPassingNode(ffi: NodeFfi): FdPassing | undefined {
  const c = nodeLibc(ffi);
  return c === null ? undefined : fdPassingVia(c);
}

let dgramFns: Record<string, Fn> | undefined;

/**
 * A unix datagram socket over recvfrom/sendto, as Bun serves one: node:ffi's
 * calls are synchronous (each blocks the event loop while it runs), so
 * readability is polled with a zero timeout on a timer. Undefined without libc.
 */
export function unixDgram(
  ffi: NodeFfi,
  fd: number,
  onMessage: (data: Uint8Array, from: Addr) => void,
): RawDgram | undefined {
  if (nodeLibc(ffi) === null || keys === undefined) return undefined;
  const [args, ret] = keys;
  const f = (dgramFns ??= ffi.dlopen(LIBC, {
    poll: { [args]: ["buffer", "u64", "i32"], [ret]: "i32" },
    recvfrom: { [args]: ["i32", "buffer", "u64", "i32", "buffer", "buffer"], [ret]: "i64" },
    sendto: { [args]: ["i32", "buffer", "u64", "i32", "buffer", "u32"], [ret]: "i64" },
    __errno_location: { [args]: [], [ret]: "pointer" },
  }).functions as Record<string, Fn>);
  const getInt32 = (ffi as unknown as { getInt32(p: bigint): number }).getInt32;
  return ffiDgram(
    {
      wait: timerWait((pfd) => f.poll(pfd, 1, 0) as number),
      recvfrom: (fd, buf, flags, addr, alen) => Number(f.recvfrom(fd, buf, buf.length, flags, addr, alen)),
      sendto: (fd, buf, flags, addr) => Number(f.sendto(fd, buf, buf.length, flags, addr, addr.length)),
      errno: () => getInt32(f.__errno_location() as bigint),
    },
    fd,
    "unix",
    onMessage,
  );
}
