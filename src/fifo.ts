import { ActivationError } from "./errors.ts";
import { inspectWith } from "./inspect_fd.ts";
import { adoptFd, notPassedError } from "./listen.ts";
import { getRuntime } from "./_runtime.ts";

/**
 * Options for {@linkcode openFifo}.
 *
 * @example The FIFO named control
 * ```ts
 * import { type FifoOptions, openFifo } from "@socket-activate/socket-activate";
 *
 * const options: FifoOptions = { name: "control" }; // FileDescriptorName=control
 * const { fd } = await openFifo(options);
 * console.log(`reading fd ${fd}`);
 * ```
 */
export interface FifoOptions {
  /** The fd by its LISTEN_FDNAMES name. @default {the only fd passed} */
  name?: string;
  /** The fd by position (0 is fd 3). @default {the only fd passed} */
  index?: number;
}

/**
 * A FIFO from {@linkcode openFifo}.
 *
 * @example Count what writers put in
 * ```ts
 * import { type Fifo, openFifo } from "@socket-activate/socket-activate";
 *
 * const fifo: Fifo = await openFifo();
 * let bytes = 0;
 * for await (const chunk of fifo.readable) console.log(`${(bytes += chunk.length)} bytes so far`);
 * ```
 */
export interface Fifo {
  /** The inherited fd. */
  readonly fd: number;
  /** Its LISTEN_FDNAMES name. */
  readonly name: string;
  /** What writers put into the FIFO, chunk by chunk. */
  readonly readable: ReadableStream<Uint8Array>;
}

/**
 * The FIFO the service manager passed (`ListenFIFO=`) as a readable stream,
 * the same in every runtime: `node:fs` reads it in Node and Bun, `read(2)`
 * on FFI's thread pool in Deno (`--allow-ffi`), whose `node:fs` cannot use a
 * raw fd. systemd opens the FIFO read-write, so the stream does not end when
 * a writer goes away.
 *
 * @param options Which fd.
 * @returns The FIFO's stream.
 * @throws {ActivationError} `ENOENT` when not activated or no fd fits,
 * `ENOTSOCK`-style `EPROTOTYPE` when the fd is not a FIFO.
 *
 * @example Log every line written to the FIFO
 * ```ts
 * import { openFifo } from "@socket-activate/socket-activate";
 *
 * const { readable } = await openFifo({ name: "control" });
 * const reader = readable.getReader();
 * for (let r = await reader.read(); !r.done; r = await reader.read()) {
 *   console.log(new TextDecoder().decode(r.value));
 * }
 * ```
 */
export async function openFifo(options: FifoOptions = {}): Promise<Fifo> {
  const rt = getRuntime();
  const f = adoptFd(rt, options);
  if (f === undefined) {
    throw new ActivationError(
      "ENOENT",
      "Not socket-activated: no FIFO was passed (ListenFIFO= in the .socket unit)",
    );
  }
  const info = inspectWith(rt, f.fd);
  if (info.kind !== "fifo") {
    throw notPassedError(f, info) ?? new ActivationError(
      "EPROTOTYPE",
      `fd ${f.fd} "${f.name}" is a ${[info.kind, info.type].filter(Boolean).join(" ")}` +
        `${info.target ? ` (${info.target})` : ""}, not a FIFO: openFifo() reads ListenFIFO= fds`,
    );
  }
  return { fd: f.fd, name: f.name, readable: await rt.fifoReadable(f.fd) };
}
