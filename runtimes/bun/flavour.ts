// The Bun flavour (socket-activate/bun): Bun's own listener from Bun.listen,
// on the activated socket or the fallback.
import { ActivationError } from "../../src/errors.ts";
import {
  adopt,
  fallbackFailed,
  fallbackTarget,
  listenFailed,
  requireFallback,
  verifyListener,
} from "../../src/listen.ts";
import { getRuntime } from "../../src/_runtime.ts";
import type { ServerListening, ServerListenOptions } from "../node_api/flavour.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/**
 * Bun's own listener (`Bun.TCPSocketListener`), and where it listens.
 *
 * @example Stop Bun's listener
 * ```ts
 * import { type BunListening, listenBun } from "@socket-activate/socket-activate/bun";
 *
 * const { listener, activated }: BunListening = await listenBun({ fallback: { port: 8080 } }, {
 *   data() {},
 * });
 * console.error(`activated: ${activated}`);
 * listener.stop();
 * ```
 */
export interface BunListening extends ServerListening {
  /** What `Bun.listen` returned. */
  // deno-lint-ignore no-explicit-any
  listener: any;
}

/**
 * `Bun.listen` on the socket the service manager passed (`Bun.listen({ fd })`,
 * missing from Bun's type definitions), or on `fallback`, with the checks of
 * {@linkcode listen}. Resolves to Bun's own listener beside where it listens.
 *
 * @param options Which fd, and the fallback.
 * @param socket Bun's socket handlers (`open`, `data`, `close`, ...).
 * @returns Bun's listener and where it listens.
 * @throws {ActivationError} As {@linkcode listen} does; `EISCONN` for an
 * Accept=yes connection, which has no listener (serve it with listen()).
 *
 * @example Greet each connection
 * ```ts
 * import { listenBun } from "@socket-activate/socket-activate/bun";
 *
 * const { listener } = await listenBun({ fallback: { port: 8080 } }, {
 *   open(socket: { end(text: string): void }) {
 *     socket.end("hello\n");
 *   },
 *   data() {},
 * });
 * ```
 */
// deno-lint-ignore require-await -- async so that a synchronous throw reaches the caller as a rejection
export async function listenBun(
  options: ServerListenOptions,
  socket: Record<string, unknown>,
): Promise<BunListening> {
  const rt = getRuntime();
  const Bun = (globalThis as Any).Bun;
  const a = adopt(rt, options);
  if (a === undefined) {
    requireFallback(options.fallback);
    const fb = options.fallback;
    let listener: Any;
    try {
      listener = "path" in fb
        ? Bun.listen({ unix: fb.path.startsWith("@") ? "\0" + fb.path.slice(1) : fb.path, socket })
        : Bun.listen({ hostname: fb.hostname ?? "0.0.0.0", port: fb.port, socket });
    } catch (e) {
      throw fallbackFailed(fallbackTarget(fb), e);
    }
    const addr = "path" in fb
      ? { transport: "unix", path: fb.path } as const
      : { transport: "tcp", hostname: listener.hostname, port: listener.port } as const;
    return { listener, activated: false, fd: undefined, name: undefined, addr };
  }
  if (a.mode === "connection") {
    throw new ActivationError(
      "EISCONN",
      `fd ${a.f.fd} "${a.f.name}" is an Accept=yes connection, not a listener: serve it with listen(), ` +
        "or Bun.connect({ fd, socket })",
    );
  }
  let listener: Any;
  try {
    listener = Bun.listen({ fd: a.f.fd, socket });
  } catch (e) {
    throw listenFailed(rt, a, e);
  }
  const addr = verifyListener(a, {
    addr: typeof listener.port === "number" && listener.port > 0
      ? { transport: "tcp", hostname: listener.hostname, port: listener.port }
      : undefined,
    sameFd: typeof listener.fd === "number" ? listener.fd === a.f.fd : undefined,
    close: () => listener.stop(true),
  });
  return { listener, activated: true, fd: a.f.fd, name: a.f.name, addr };
}
