// Accept loops that no client can stop. accept() fails for reasons that
// belong to one connection as well as for a closed listener, and Deno's
// Listener rejects with both alike: a loop that takes every rejection for
// "closed" (as Deno's own `for await (const conn of listener)` does for all
// but BadResource and Interrupted, by throwing) stops serving at the first
// client that resets while queued. Node's libuv and Bun's uSockets retry
// these themselves.

/** What a failed accept() means for the loop that called it. */
export type AcceptVerdict = "again" | "backoff" | "closed";

// Failures of the connection being accepted: accept(2) on Linux "passes
// already-pending network errors on the new socket as an error code from
// accept()" and asks callers to retry on ENETDOWN, EPROTO, ENOPROTOOPT,
// EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP and ENETUNREACH; ECONNABORTED
// is a connection aborted while queued, EPERM one a firewall rule refused.
// Deno 2.9 asks each accepted socket for its peer address (getpeername),
// which fails with ENOTCONN, rejected as Deno.errors.NotConnected, for a
// client that reset while queued (measured with strace; denoland/deno#8499,
// closed as stale). Deno names the rest by class: ConnectionReset,
// ConnectionAborted, NotConnected, TimedOut, WouldBlock, Interrupted (EINTR;
// a closed listener is told by the loop's own flag).
const PER_CONNECTION = new Set([
  "ECONNABORTED",
  "ECONNRESET",
  "ENOTCONN",
  "EPROTO",
  "EPERM",
  "ETIMEDOUT",
  "ENETDOWN",
  "ENOPROTOOPT",
  "EHOSTDOWN",
  "ENONET",
  "EHOSTUNREACH",
  "EOPNOTSUPP",
  "ENETUNREACH",
  "EAGAIN",
  "EWOULDBLOCK",
  "EINTR",
  "ConnectionReset",
  "ConnectionAborted",
  "NotConnected",
  "TimedOut",
  "WouldBlock",
  "Interrupted",
]);

/**
 * Which failures end an accept loop, which are retried at once and which
 * after a pause. Only a listener that is gone (Deno's BadResource, EBADF)
 * ends it. A shortage (EMFILE, ENFILE, ENOBUFS, ENOMEM) and any failure not
 * known to be a connection's are retried after a pause: at once, they would
 * spin, and an unknown one must not stop a server either
 * (denoland/deno#10148: EMFILE ended Deno's accept loops).
 */
export function acceptVerdict(error: unknown): AcceptVerdict {
  const e = error as { code?: unknown; name?: unknown } | null | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const name = typeof e?.name === "string" ? e.name : "";
  if (name === "BadResource" || code === "EBADF") return "closed";
  if (PER_CONNECTION.has(code) || PER_CONNECTION.has(name)) return "again";
  return "backoff";
}

const FIRST_PAUSE = 10, LONGEST_PAUSE = 1000, SAY_EVERY = 10_000;

/** A listener whose accept() the wrapper replaces. */
export interface Accepting<C> {
  accept(): Promise<C>;
}

/**
 * Replaces `listener.accept` (on the instance: Deno's async iterator calls
 * it too) with one that rejects only once the listener is closed: a
 * connection's failure is skipped, a shortage retried after 10 ms, doubling
 * up to 1 s while it lasts, and said on stderr at most every 10 s (clients
 * that come and go under a shortage would otherwise make a line each).
 * Returns the stop to call when the listener is closed: it ends a pause at
 * once, so the next accept() meets the closed listener and a stopped server
 * leaves no timer behind.
 */
export function keepAccepting<C>(listener: Accepting<C>): () => void {
  const accept = listener.accept.bind(listener);
  let stopped = false;
  let pause = 0;
  let said = -Infinity;
  let wake: (() => void) | undefined;
  listener.accept = async (): Promise<C> => {
    for (;;) {
      try {
        const conn = await accept();
        pause = 0;
        return conn;
      } catch (e) {
        const verdict = stopped ? "closed" : acceptVerdict(e);
        if (verdict === "closed") throw e;
        if (verdict === "again") continue;
        pause = pause === 0 ? FIRST_PAUSE : Math.min(pause * 2, LONGEST_PAUSE);
        if (Date.now() - said >= SAY_EVERY) {
          said = Date.now();
          console.error(
            `socket-activate: accept failed (${describe(e)}): accepting again in ${pause} ms, pausing up ` +
              `to ${LONGEST_PAUSE / 1000} s while it lasts (said at most every ${SAY_EVERY / 1000} s)`,
          );
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pause);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    }
  };
  return () => {
    stopped = true;
    wake?.();
  };
}

function describe(e: unknown): string {
  const x = e as { code?: unknown; name?: unknown; message?: unknown } | null | undefined;
  const code = typeof x?.code === "string" ? x.code : typeof x?.name === "string" ? x.name : "";
  const message = typeof x?.message === "string" ? x.message : String(e);
  return code !== "" && !message.startsWith(code) ? `${code}: ${message}` : message;
}
