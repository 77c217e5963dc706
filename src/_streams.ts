// The web streams of a Conn, built once for every adapter from its write,
// closeWrite and async iterator, and only when first asked for: Node and
// Deno load web streams lazily, about 2 ms on first use.
//
// A class, with the getters on its prototype: an idle connection costs what
// its fields cost. The first version put per-connection getters on an
// Object.create() of a per-connection object, which made every connection a
// prototype of its own in V8 (maps, descriptor arrays, prototype info) and
// cost Node about 1.5 KiB per idle connection (issue 29).
import type { Addr, Conn } from "./_net.ts";

/** Told, once, when a connection has closed: listen()'s tracker, without a promise and a closure per connection. */
export interface CloseWatcher {
  gone(conn: Conn): void;
}

const RESOLVED = Promise.resolve();

/**
 * A connection as an adapter implements it; `readable`, `writable` and
 * `closed` come from here. The adapter calls `closedNow()` once the
 * connection is fully closed.
 */
export abstract class StreamConn implements Conn {
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;
  #writeDone = false;
  #it: AsyncIterator<Uint8Array> | undefined;
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;
  #isClosed = false;
  /** Told when the connection has closed (see closedNow). */
  watcher: CloseWatcher | undefined;

  abstract readonly remoteAddr: Addr;
  abstract readonly localAddr: Addr;

  // Made when first asked for: listen()'s tracker watches through `watcher`.
  get closed(): Promise<void> {
    return this.#closed ??= this.#isClosed ? RESOLVED : new Promise<void>((r) => (this.#resolveClosed = r));
  }

  /** Settles `closed` and tells the watcher; once. */
  closedNow(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#resolveClosed?.();
    this.watcher?.gone(this);
  }
  abstract write(data: Uint8Array): Promise<void>;
  abstract closeWrite(): Promise<void>;
  abstract [Symbol.asyncIterator](): AsyncIterator<Uint8Array>;
  abstract close(): void;

  get readable(): ReadableStream<Uint8Array> {
    const it = () => (this.#it ??= this[Symbol.asyncIterator]());
    return this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (c) => {
        const r = await it().next();
        if (r.done) c.close();
        else c.enqueue(r.value);
      },
      cancel: () => {
        // Stop delivering but keep the connection for what is still
        // being written: input from here on is read and dropped.
        if (this.#writeDone) return this.close();
        const drop = (): unknown => it().next().then((r) => (r.done ? undefined : drop()), () => {});
        drop();
      },
    });
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => {
        this.#writeDone = true;
        return this.closeWrite();
      },
      abort: () => this.close(),
    });
  }
}
