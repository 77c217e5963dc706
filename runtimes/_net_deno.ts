// Stream sockets in Deno: Deno.listen for a socket of its own (native and
// fast), node:net for an inherited fd, since Deno.listen has no fd option and
// no public API turns an fd into a Deno listener (denoland/deno#6529, #14006).
import type { Addr, Conn, NetAdapter, Target } from "../src/_net.ts";
import type { Libc } from "./_libc.ts";
import { connFdDirect, type DirectSend, importNet, listenFdDirect } from "./_net_node.ts";
import { withStreams } from "../src/_streams.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const D = (): Any => (globalThis as Any).Deno;

function toAddr(a: Any, fallbackPath = ""): Addr {
  return a?.transport === "tcp"
    ? { transport: "tcp", hostname: a.hostname, port: a.port }
    : { transport: "unix", path: a?.path ?? fallbackPath };
}

/** A Deno.Conn as a Conn whose streams tell when both directions are done. */
function fromDenoConn(c: Any, localPath: string): Conn {
  let readDone = false, writeDone = false, isClosed = false;
  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  const close = () => {
    if (isClosed) return;
    isClosed = true;
    try {
      c.close();
    } catch { /* closed */ }
    closedResolve();
  };
  const settle = () => {
    if (readDone && writeDone) close();
  };
  const write = async (chunk: Uint8Array): Promise<void> => {
    let off = 0;
    while (off < chunk.length) off += await c.write(chunk.subarray(off));
  };
  const closeWrite = async (): Promise<void> => {
    try {
      await c.closeWrite();
    } catch { /* closed */ }
    writeDone = true;
    settle();
  };
  return withStreams({
    write,
    closeWrite,
    [Symbol.asyncIterator]() {
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          const buf = new Uint8Array(64 * 1024);
          let n: number | null = null;
          try {
            n = isClosed ? null : await c.read(buf);
          } catch (e) {
            readDone = true;
            settle();
            if (isClosed) return { done: true, value: undefined };
            throw e;
          }
          if (n === null) {
            readDone = true;
            settle();
            return { done: true, value: undefined };
          }
          return { done: false, value: buf.subarray(0, n) };
        },
        return(): Promise<IteratorResult<Uint8Array>> {
          close();
          return Promise.resolve({ done: true, value: undefined });
        },
      };
    },
    remoteAddr: toAddr(c.remoteAddr),
    localAddr: toAddr(c.localAddr, localPath),
    close,
    closed,
  });
}

const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;

/**
 * The Deno adapter. `libc` gives the FFI bindings where --allow-ffi is
 * granted (null otherwise): connections on an inherited fd then make their
 * first writes with send(2) (see fromSocket in _net_node.ts).
 */
export function makeDenoNet(libc: () => Libc | null): NetAdapter {
  let direct: DirectSend | undefined;
  const sender = (): DirectSend | undefined => {
    const c = libc();
    return c === null
      ? undefined
      : (direct ??= (sock, chunk) => c.send(sock, chunk, chunk.length, MSG_DONTWAIT | MSG_NOSIGNAL));
  };
  return {
    listenFd: (fd, onConn) => importNet().then(() => listenFdDirect(fd, onConn, sender())),
    connFd: (fd) => importNet().then(() => connFdDirect(fd, sender())),
    listenAddr: (target: Target, onConn) => {
      const path = "path" in target
        ? (target.path.startsWith("@") ? "\0" + target.path.slice(1) : target.path)
        : "";
      const l = "path" in target
        ? D().listen({ transport: "unix", path })
        : D().listen({ transport: "tcp", hostname: target.hostname, port: target.port });
      (async () => {
        for (;;) {
          let c;
          try {
            c = await l.accept();
          } catch {
            return; // the listener was closed
          }
          onConn(fromDenoConn(c, "path" in target ? target.path : ""));
        }
      })();
      return Promise.resolve({
        addr: toAddr(l.addr, "path" in target ? target.path : ""),
        sameFd: undefined,
        close: () => {
          try {
            l.close();
          } catch { /* closed */ }
        },
      });
    },
  };
}
