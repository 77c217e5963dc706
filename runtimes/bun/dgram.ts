// Datagrams in Bun: node:dgram on a UDP fd (bind({ fd }) works in Bun), FFI
// recvfrom/sendto on a unix datagram fd (Bun's dgram is UDP only). Bun's FFI
// calls are synchronous, so readability is polled with a zero timeout on a
// timer, backing off to 20 ms while idle: fine for control sockets, not for
// floods.
import type { DgramAdapter } from "../../src/_net.ts";
import { nodeDgram } from "../node_api/dgram.ts";
import { ffiDgram, timerWait } from "../ffi/dgram.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
let lib: Any;
let read: Any;

function symbols(): Any {
  if (lib) return lib;
  const ffi = (process as Any).getBuiltinModule("bun:ffi");
  lib = ffi.dlopen("libc.so.6", {
    poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
    recvfrom: { args: ["i32", "ptr", "u64", "i32", "ptr", "ptr"], returns: "i64" },
    sendto: { args: ["i32", "ptr", "u64", "i32", "ptr", "u32"], returns: "i64" },
    __errno_location: { args: [], returns: "ptr" },
  }).symbols;
  read = ffi.read;
  return lib;
}

/** The Bun datagram adapter. */
export const bunDgram: DgramAdapter = {
  bindFd(fd, family, onMessage) {
    if (family !== "unix") return nodeDgram.bindFd(fd, family, onMessage);
    const s = symbols();
    return Promise.resolve(ffiDgram(
      {
        wait: timerWait((pfd) => s.poll(pfd, 1, 0)),
        recvfrom: (fd, buf, flags, addr, alen) => Number(s.recvfrom(fd, buf, buf.length, flags, addr, alen)),
        sendto: (fd, buf, flags, addr) => Number(s.sendto(fd, buf, buf.length, flags, addr, addr.length)),
        errno: () => read.i32(s.__errno_location()),
      },
      fd,
      family,
      onMessage,
    ));
  },
  bindAddr: (target, onMessage) => nodeDgram.bindAddr(target, onMessage),
};
