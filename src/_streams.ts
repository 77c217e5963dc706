// The web streams of a Conn, built once for every adapter from its write,
// closeWrite and async iterator, and only when first asked for: Node and
// Deno load web streams lazily, about 2 ms on first use.
import type { Conn } from "./_net.ts";

/** What an adapter implements natively; `readable` and `writable` are added. */
export type NativeConn = Omit<Conn, "readable" | "writable">;

/** Adds lazy `readable` and `writable` to a native connection. */
export function withStreams(base: NativeConn): Conn {
  let readable: ReadableStream<Uint8Array> | undefined;
  let writable: WritableStream<Uint8Array> | undefined;
  let writeDone = false;
  let it: AsyncIterator<Uint8Array> | undefined;
  const conn = Object.create(base) as Conn;
  Object.defineProperties(conn, {
    readable: {
      get: () =>
        readable ??= new ReadableStream<Uint8Array>({
          async pull(c) {
            it ??= base[Symbol.asyncIterator]();
            const r = await it.next();
            if (r.done) c.close();
            else c.enqueue(r.value);
          },
          cancel() {
            // Stop delivering but keep the connection for what is still
            // being written: input from here on is read and dropped.
            if (writeDone) return base.close();
            it ??= base[Symbol.asyncIterator]();
            const drop = (): unknown => it!.next().then((r) => (r.done ? undefined : drop()), () => {});
            drop();
          },
        }),
    },
    writable: {
      get: () =>
        writable ??= new WritableStream<Uint8Array>({
          write: (chunk) => base.write(chunk),
          close: () => {
            writeDone = true;
            return base.closeWrite();
          },
          abort: () => base.close(),
        }),
    },
  });
  return conn;
}
