// The article's echo server (shared/seed), written once for every runtime:
// greet with whether the socket came from the service manager, then send back
// everything with ASCII letters upper-cased, until the client closes.
import { type Conn, listen, type Server } from "../listen.ts";
import { formatAddr } from "../_net.ts";
import { getRuntime } from "../_runtime.ts";
import { notify } from "../notify.ts";

/** Options for {@linkcode echoServer}. */
export interface EchoOptions {
  /** Port of the fallback socket. @default {8888} */
  port?: number;
  /** Host of the fallback socket. @default {"0.0.0.0"} */
  host?: string;
  /** A unix socket path (or `@abstract`) for the fallback instead of a port. */
  path?: string;
  /** The fd to serve by name. @default {the only fd passed} */
  name?: string;
  /** Log one line per connection to stderr. @default {true} */
  log?: boolean;
  /** Seconds without a connection after which an activated server exits. @default {never} */
  idleExit?: number;
}

/** Upper-cases ASCII letters in place; every other byte stays as it is. */
export function upcaseAscii(bytes: Uint8Array): Uint8Array {
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c >= 97 && c <= 122) bytes[i] = c - 32;
  }
  return bytes;
}

/** Sends the result's chunk back upper-cased, and takes it out of the result; resolves with its length. */
function echoBack(conn: Conn, r: IteratorResult<Uint8Array>): Promise<number> {
  const chunk = r.value as Uint8Array, n = chunk.length;
  r.value = undefined;
  return conn.write(upcaseAscii(chunk)).then(() => n);
}

/**
 * Sends states to the service manager one after another, in order, and
 * coalesces STATUS updates: with Node each one runs systemd-notify, which
 * must not fork once per connection under load.
 */
export class Notifier {
  #chain: Promise<unknown> = Promise.resolve();
  #statusPending = false;
  #status = "";
  #warned = false;

  /**
   * Whether a service manager listens (NOTIFY_SOCKET is set), and this
   * process still speaks for the service (not after a reload handed it over).
   */
  enabled = (getRuntime().getEnv("NOTIFY_SOCKET") ?? "") !== "";

  send(state: string): Promise<unknown> {
    if (!this.enabled) return this.#chain;
    return (this.#chain = this.#chain.then(() => notify(state)).catch((e) => this.#warn(e)));
  }

  /** Resolves when everything sent so far has gone out. */
  flush(): Promise<unknown> {
    return this.#chain;
  }

  status(text: string): void {
    this.#status = text;
    if (!this.enabled || this.#statusPending) return;
    this.#statusPending = true;
    this.#chain = this.#chain.then(() => {
      this.#statusPending = false;
      return notify(`STATUS=${this.#status}`);
    }).catch((e) => this.#warn(e));
  }

  #warn(e: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    getRuntime().write("stderr", `echo: cannot notify the service manager: ${(e as Error)?.message ?? e}\n`);
  }
}

/** Starts the echo server; resolves once it accepts connections. */
export function echoServer(options: EchoOptions = {}, notifier?: Notifier): Promise<Server> {
  const rt = getRuntime();
  const fallback = options.path !== undefined
    ? { path: options.path }
    : { port: options.port ?? 8888, hostname: options.host ?? "0.0.0.0" };
  let served = 0;
  const server: Promise<Server> = listen({
    name: options.name,
    fallback,
    watchdog: true,
    idleExit: options.idleExit,
    // `socket-activate echo` (src/cli/main.ts) stops on its own signal handlers, as it always has.
    signals: false,
  }, async (conn: Conn) => {
    const n = ++served;
    // A connection waiting in the inherited socket's backlog can arrive
    // before listen() has resolved: wait for the server to know what it is.
    const { activated } = await server;
    const started = Date.now();
    let bytes = 0;
    try {
      // conn.write and iteration rather than the web streams: the same in
      // every runtime, and they spare Node and Deno loading web streams
      // (about 2 ms) on the first connection.
      await conn.write(new TextEncoder().encode(`OHAI! systemd socket: ${activated}\n`));
      // By hand rather than `for await`: echoBack() takes the chunk out of
      // the result, so that an idle connection's suspended handler holds no
      // chunk (V8 keeps the last result and chunk in the frame until they
      // are overwritten: issue 29). A failure closes the connection (the
      // Tracker), as leaving a `for await` would.
      const chunks = conn[Symbol.asyncIterator]();
      for (let r = await chunks.next(); !r.done; r = await chunks.next()) bytes += await echoBack(conn, r);
      await conn.closeWrite();
    } finally {
      notifier?.status(`${served} connection(s) served`);
      if (options.log ?? true) {
        rt.write(
          "stderr",
          `echo: connection ${n} from ${formatAddr(conn.remoteAddr)}: ${bytes} bytes echoed in ${
            Date.now() - started
          } ms\n`,
        );
      }
    }
  });
  return server;
}
