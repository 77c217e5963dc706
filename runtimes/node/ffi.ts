// The Node shim's libc over node:ffi (Node 26), loaded only where
// ffi_gate.ts found node:ffi: the same symbol tables and calls Deno and Bun
// use (runtimes/ffi/libc.ts), with their definitions translated.
import type { FdPassing } from "../../src/_runtime.ts";
import type { Addr, RawDgram } from "../../src/_net.ts";
import { ffiDgram, timerWait } from "../ffi/dgram.ts";
import { fdPassingVia, LIBC, sendWithFdsVia } from "../ffi/libc.ts";
import type { NodeFfi } from "./ffi_gate.ts";
import { nodeKeys, nodeLibc } from "./ffi_libc.ts";

type Fn = (...args: unknown[]) => unknown;

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
  const keys = nodeLibc(ffi) === null ? undefined : nodeKeys();
  if (keys === undefined) return undefined;
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
