// UDP and unix datagrams in Deno on an inherited fd: Deno's node:dgram
// refuses an fd (ERR_INVALID_FD_TYPE) and Deno.listenDatagram({ fd })
// silently binds a random port, so datagrams go through recvfrom/sendto over
// FFI (--allow-ffi), with poll() on FFI's thread pool (nonblocking: true).
// The fallback uses node:dgram.
import { ActivationError } from "../../src/errors.ts";
import type { DgramAdapter } from "../../src/_net.ts";
import { nodeDgram } from "../node_api/dgram.ts";
import { ffiDgram } from "../ffi/dgram.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const D = (): Any => (globalThis as Any).Deno;

let lib: Any;

function symbols(): Any {
  if (lib) return lib;
  try {
    lib = D().dlopen("libc.so.6", {
      poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
      read: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
      recvfrom: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"], result: "isize" },
      sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
      __errno_location: { parameters: [], result: "pointer" },
    }).symbols;
  } catch (e) {
    throw new ActivationError(
      "EPERM",
      `Deno cannot read from an inherited datagram socket or FIFO without FFI (${
        (e as Error).message
      }): run it with --allow-ffi`,
    );
  }
  return lib;
}

/** The Deno datagram adapter. */
export const denoDgram: DgramAdapter = {
  bindFd: (fd, family, onMessage) =>
    Promise.resolve().then(() => {
      const s = symbols();
      return ffiDgram(
        {
          // poll() on FFI's thread pool: the event loop goes on meanwhile.
          wait: (pfd) => s.poll(pfd, 1n, 100),
          recvfrom: (fd, buf, flags, addr, alen) =>
            Number(s.recvfrom(fd, buf, BigInt(buf.length), flags, addr, alen)),
          sendto: (fd, buf, flags, addr) =>
            Number(s.sendto(fd, buf, BigInt(buf.length), flags, addr, addr.length)),
          errno: () => new (D().UnsafePointerView)(s.__errno_location()).getInt32(),
        },
        fd,
        family,
        onMessage,
      );
    }),
  bindAddr: (target, onMessage) => nodeDgram.bindAddr(target, onMessage),
};

/** A FIFO fd as a stream: read(2) on FFI's thread pool, which may block there. */
export function fifoReadable(fd: number): ReadableStream<Uint8Array> {
  const s = symbols();
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const buf = new Uint8Array(65536);
      const n = Number(await s.read(fd, buf, BigInt(buf.length)));
      if (n <= 0) c.close();
      else c.enqueue(buf.subarray(0, n));
    },
  });
}
