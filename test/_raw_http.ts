// HTTP/1.x as raw bytes, for test/hostile.test.ts and test/conformance.test.ts:
// send exactly the bytes a case names and read back what the server answers,
// parsed leniently enough to describe any server's answer (or its silence).
import * as net from "node:net";

/** Where a server listens: a TCP port on 127.0.0.1, or a unix socket path. */
export type Target = { port: number } | { path: string };

/** One response as it came over the wire. */
export interface RawResponse {
  status: number;
  /** Header names lower-cased, values as sent; repeated ones joined with ", ". */
  headers: Record<string, string>;
  /** The body, de-chunked; empty for HEAD, 1xx, 204 and 304. */
  body: Uint8Array;
}

/** What one exchange brought back. */
export interface Exchange {
  /** The final responses in order (1xx interim responses are in `interim`). */
  responses: RawResponse[];
  interim: number[];
  /** Whether the server closed the connection before `ms` ran out. */
  closed: boolean;
  /** Bytes after the last whole response (a cut or unparseable answer). */
  rest: number;
  /** A connection error (ECONNRESET, say), if one came. */
  error?: string;
}

const dec = new TextDecoder("latin1");

function indexOf(b: Uint8Array, seq: number[], from: number): number {
  outer: for (let i = from; i <= b.length - seq.length; i++) {
    for (let j = 0; j < seq.length; j++) if (b[i + j] !== seq[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Parses as many whole responses as `b` holds; `heads` says which requests
 * were HEAD (their responses have no body). `eof`: the connection is closed,
 * so a response without length ends there.
 */
export function parseResponses(
  b: Uint8Array,
  heads: boolean[],
  eof: boolean,
): { responses: RawResponse[]; interim: number[]; used: number } {
  const responses: RawResponse[] = [];
  const interim: number[] = [];
  let at = 0;
  for (;;) {
    const end = indexOf(b, [13, 10, 13, 10], at);
    if (end < 0) break;
    const lines = dec.decode(b.subarray(at, end)).split("\r\n");
    const m = /^HTTP\/\d\.\d (\d{3})/.exec(lines[0]);
    if (!m) break;
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      if (i < 0) continue;
      const k = l.slice(0, i).trim().toLowerCase(), v = l.slice(i + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    let p = end + 4;
    if (status < 200) {
      interim.push(status);
      at = p;
      continue;
    }
    const head = heads[responses.length] ?? false;
    let body: Uint8Array = new Uint8Array(0);
    if (!head && status !== 204 && status !== 304) {
      if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
        const parts: Uint8Array[] = [];
        for (;;) {
          const le = indexOf(b, [13, 10], p);
          if (le < 0) return { responses, interim, used: at };
          const size = parseInt(dec.decode(b.subarray(p, le)), 16);
          if (!(size >= 0)) return { responses, interim, used: at };
          if (size === 0) {
            const te = indexOf(b, [13, 10, 13, 10], le);
            // Trailers or none: the final CRLF may follow the size line directly.
            const fin = b[le + 2] === 13 && b[le + 3] === 10 ? le + 4 : te < 0 ? -1 : te + 4;
            if (fin < 0) return { responses, interim, used: at };
            p = fin;
            break;
          }
          if (le + 2 + size + 2 > b.length) return { responses, interim, used: at };
          parts.push(b.subarray(le + 2, le + 2 + size));
          p = le + 2 + size + 2;
        }
        body = concat(parts);
      } else if (headers["content-length"] !== undefined) {
        const n = Number(headers["content-length"].split(",")[0]);
        if (p + n > b.length) break;
        body = b.slice(p, p + n);
        p += n;
      } else if (eof) {
        body = b.slice(p);
        p = b.length;
      } else break;
    }
    responses.push({ status, headers, body });
    at = p;
  }
  return { responses, interim, used: at };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Sends `bytes` on a fresh connection and collects the answer: resolves once
 * `count` final responses have come and the connection has then stayed
 * quiet for `settle` ms (or closed), or after `ms` in any case. `heads`: which
 * of the requests are HEAD.
 */
export function exchange(
  target: Target,
  bytes: string | Uint8Array,
  opts: { count?: number; heads?: boolean[]; ms?: number; settle?: number; halfClose?: boolean } = {},
): Promise<Exchange> {
  const { count = 1, heads = [], ms = 5000, settle = 30, halfClose = false } = opts;
  const data = typeof bytes === "string" ? Uint8Array.from(bytes, (c) => c.charCodeAt(0)) : bytes;
  return new Promise((resolve) => {
    const s = "path" in target ? net.connect(target.path) : net.connect(target.port, "127.0.0.1");
    let buf: Uint8Array = new Uint8Array(0);
    let error: string | undefined;
    let done = false;
    let quiet: ReturnType<typeof setTimeout> | undefined;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(quiet);
      const r = parseResponses(buf, heads, closed);
      s.destroy();
      resolve({ responses: r.responses, interim: r.interim, closed, rest: buf.length - r.used, error });
    };
    const timer = setTimeout(() => finish(false), ms);
    s.on("data", (d: Uint8Array) => {
      buf = concat([buf, new Uint8Array(d)]);
      if (parseResponses(buf, heads, false).responses.length >= count) {
        clearTimeout(quiet);
        quiet = setTimeout(() => finish(false), settle);
      }
    });
    s.on("error", (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on("close", () => finish(true));
    s.on("connect", () => {
      s.write(data);
      if (halfClose) s.end();
    });
  });
}

/** The body as text. */
export const text = (r: RawResponse | undefined): string => (r ? new TextDecoder().decode(r.body) : "");
