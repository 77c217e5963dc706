// The Deno flavour (socket-activate/deno): Deno's own listener, a
// Deno.Listener, on the activated socket or the fallback. Deno.listen takes
// no fd (denoland/deno#14006): the listener is one that took the inherited
// socket over (runtimes/ffi/takeover.ts through deno/net.ts), which needs FFI.
import { ActivationError } from "../../src/errors.ts";
import { adopt, fallbackFailed, fallbackTarget, requireFallback, verifyListener } from "../../src/listen.ts";
import { getRuntime } from "../../src/_runtime.ts";
import { loadLibc } from "./runtime.ts";
import { keepAccepting, takeOverListener } from "./net.ts";
import type { ServerListening, ServerListenOptions } from "../node_api/flavour.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/**
 * Deno's own listener (`Deno.Listener`), and where it listens.
 *
 * @example Stop Deno's listener
 * ```ts
 * import { type DenoListening, listenDeno } from "@socket-activate/socket-activate/deno";
 *
 * const { listener, activated }: DenoListening = await listenDeno({ fallback: { port: 8080 } });
 * console.error(`activated: ${activated}`);
 * listener.close();
 * ```
 */
export interface DenoListening extends ServerListening {
  /**
   * The `Deno.Listener` (a `Deno.TcpListener` or `Deno.UnixListener`). Its
   * `addr` is that of the private listener the socket was put under: the
   * socket's own address is `addr` beside it. Closing it closes the
   * inherited fd too. Its `accept()`, and so `for await`, skips a client
   * that failed before it was accepted (one that reset while queued, say)
   * and waits out a shortage of fds: it rejects only once the listener is
   * closed.
   */
  // deno-lint-ignore no-explicit-any
  listener: any;
}

/**
 * A `Deno.Listener` on the socket the service manager passed, or on
 * `fallback` (`Deno.listen`), with the checks of {@linkcode listen}: accept
 * with `for await (const conn of listener)` or `listener.accept()`, or hand
 * it to anything that takes a Deno.Listener. An inherited socket needs
 * `--allow-ffi` (or `-A`), and the permission for the private listener it is
 * put under: `--allow-net` (127.0.0.1) for TCP, `--allow-net`,
 * `--allow-read` and `--allow-write` (the temp directory) for a unix socket.
 *
 * @param options Which fd, and the fallback.
 * @returns Deno's listener and where it listens.
 * @throws {ActivationError} As {@linkcode listen} does; `EISCONN` for an
 * Accept=yes connection, which has no listener (serve it with listen());
 * `EPERM` where FFI or a permission is missing.
 *
 * @example Greet each connection
 * ```ts
 * import { listenDeno } from "@socket-activate/socket-activate/deno";
 *
 * const { listener } = await listenDeno({ fallback: { port: 8080 } });
 * for await (const conn of listener) {
 *   await conn.write(new TextEncoder().encode("hello\n"));
 *   conn.close();
 * }
 * ```
 */
// deno-lint-ignore require-await -- async so that a synchronous throw reaches the caller as a rejection
export async function listenDeno(options: ServerListenOptions = {}): Promise<DenoListening> {
  const rt = getRuntime();
  const D = (globalThis as Any).Deno;
  if (rt.name !== "deno" || D === undefined) {
    throw new ActivationError("ENOTSUP", "listenDeno() needs Deno: use listen() or listenServer() elsewhere");
  }
  const a = adopt(rt, options);
  if (a === undefined) {
    requireFallback(options.fallback);
    const target = fallbackTarget(options.fallback);
    let listener: Any;
    try {
      listener = "path" in target
        ? D.listen({
          transport: "unix",
          path: target.path.startsWith("@") ? "\0" + target.path.slice(1) : target.path,
        })
        : D.listen({ transport: "tcp", hostname: target.hostname, port: target.port });
    } catch (e) {
      throw fallbackFailed(target, e);
    }
    const stop = keepAccepting(listener);
    const close = listener.close.bind(listener);
    listener.close = () => {
      stop();
      close();
    };
    const addr = "path" in target
      ? { transport: "unix", path: target.path } as const
      : { transport: "tcp", hostname: listener.addr.hostname, port: listener.addr.port } as const;
    return { listener, activated: false, fd: undefined, name: undefined, addr };
  }
  if (a.mode === "connection") {
    throw new ActivationError(
      "EISCONN",
      `fd ${a.f.fd} "${a.f.name}" is an Accept=yes connection, not a listener: serve it with listen()`,
    );
  }
  const taken = takeOverListener(a.f.fd, loadLibc());
  if (taken === undefined) {
    throw new ActivationError(
      "EPERM",
      `Deno cannot put fd ${a.f.fd} "${a.f.name}" under a Deno.Listener here: it needs --allow-ffi (or -A) and ` +
        "--allow-net (a unix socket also --allow-read and --allow-write); listen() and listenServer() " +
        "serve it through node:net without them",
    );
  }
  const { listener } = taken;
  // Deno's close() closes only the fd the listener holds (the takeover's
  // dup): this one closes the inherited fd too, as Deno.listen's would its own.
  listener.close = taken.close;
  const addr = verifyListener(a, { addr: taken.addr, sameFd: true, close: taken.close });
  return { listener, activated: true, fd: a.f.fd, name: a.f.name, addr };
}
