// What serve() makes of a request before its handler sees it, one rule for
// every runtime and every path: the node:http bridge (runtimes/_http.ts, Node
// and the SOCKET_ACTIVATE_HTTP_FAST=0 paths of Deno and Bun) and the fast
// paths (runtimes/_http_fast.ts for Deno's and Bun's own servers). Loaded
// with them, never at import. The rules (README "Hostile requests"):
//
// - `req.url` is `${scheme}://${authority}${path and query of the target}`,
//   always a URL that new URL() parses.
// - The authority is the Host header's. A Host that is not an authority
//   (RFC 3986: a reg-name, IPv4 or [IPv6] address and an optional port up to
//   65535; no path, query, fragment, user info, space, bracket or list), or
//   more than one Host, gets 400, as RFC 9112 §3.2 asks: such a value would
//   otherwise end up in the URL's path (`Host: h/admin#` turns `GET /public`
//   into http://h/admin#/public, whose pathname is /admin) or in a URL that
//   new URL() cannot parse.
// - A missing or empty Host gets the listening address (127.0.0.1:8080,
//   [::1]:8080, 0.0.0.0:8080 as bound; localhost on a unix socket).
// - An absolute-form target (`GET http://other/p`, meant for a proxy) gives
//   its path and query; its authority (user info included) is not used, as in
//   Bun.serve, which shows JavaScript nothing else of it. Other schemes get 400.
// - The asterisk-form is passed on for OPTIONS as http://host/* (Deno.serve's
//   way) and gets 400 with any other method.
// - TRACE, TRACK and CONNECT get 501: the web Request cannot carry them in
//   Node (undici throws "Method is forbidden", and so does Deno's Request
//   constructor), a fetch handler cannot tunnel a CONNECT, and one answer in
//   every runtime beats three.
// - Request bodies above maxRequestBodySize get 413 and the connection closed.

/** The default limit on a request body: Bun.serve's own, 128 MiB. */
export const DEFAULT_MAX_REQUEST_BODY_SIZE = 128 * 1024 * 1024;

/** What a body above the limit makes a handler's read reject with (Bun.serve's words). */
export const BODY_TOO_LARGE = "Request body exceeded maxRequestBodySize";

/** serve()'s `maxRequestBodySize`, checked: undefined is the default, Infinity no limit. */
export function bodyLimit(limit: unknown): number {
  if (limit === undefined) return DEFAULT_MAX_REQUEST_BODY_SIZE;
  const quoted = typeof limit === "string" ? `"${limit}"` : String(limit);
  if (typeof limit !== "number") {
    throw new TypeError(`Cannot serve with maxRequestBodySize ${quoted}: give a number of bytes`);
  }
  if (!(limit >= 0) || (limit !== Infinity && !Number.isInteger(limit))) {
    throw new RangeError(
      `Cannot serve with maxRequestBodySize ${quoted}: give a whole number of bytes, 0 or more, or Infinity for no limit`,
    );
  }
  return limit;
}

/** TRACE, TRACK or CONNECT, in any case: methods answered 501. */
export function refusedMethod(m: string): boolean {
  const n = m.length;
  if (n !== 5 && n !== 7) return false;
  // PATCH and OPTIONS, the other methods of these lengths, skip the copy.
  const u = m === "PATCH" || m === "OPTIONS" ? m : m.toUpperCase();
  return u === "TRACE" || u === "TRACK" || u === "CONNECT";
}

// Characters of a reg-name (RFC 3986 unreserved and sub-delims, no
// pct-encoded): 1. Every one of them is a host character to the WHATWG URL
// parser in Node, Deno and Bun alike (test/hostile.test.ts checks it).
const REG = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=") {
  REG[c.charCodeAt(0)] = 1;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isHex = (c: number) => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

/**
 * Whether `s.slice(from, to)` is an authority (`host[:port]`) that gives an
 * http URL new URL() parses, its path left alone. One scan with no copy for
 * names and dotted-quad addresses; URL.canParse() settles the rare rest
 * (IPv6, pct-encoding, other numeric forms, punycode labels).
 */
export function hostOk(s: string, from = 0, to = s.length): boolean {
  if (from >= to) return false;
  let i = from;
  let parse = false;
  if (s.charCodeAt(i) === 91 /* [ */) {
    for (i++; i < to && s.charCodeAt(i) !== 93 /* ] */; i++) {
      const c = s.charCodeAt(i);
      if (!isHex(c) && c !== 58 && c !== 46) return false;
    }
    if (i === to) return false;
    i++;
    parse = true;
  } else {
    let label = i;
    for (; i < to; i++) {
      const c = s.charCodeAt(i);
      if (c === 58 /* : */) break;
      if (c === 46 /* . */) {
        label = i + 1;
        continue;
      }
      if (c >= 128 || REG[c] !== 1) {
        if (c !== 37 /* % */) return false;
        parse = true;
      }
      if (i === label && (c === 120 || c === 88) && s.slice(i, i + 4).toLowerCase() === "xn--") parse = true;
    }
    if (i === from) return false; // no host before the port
    // The WHATWG parser takes a host whose last label (one trailing dot
    // aside) starts with a digit for an IPv4 address, which can then fail to
    // parse (1.2.3.999, a.1): only a plain dotted quad is sure.
    let end = i;
    if (s.charCodeAt(end - 1) === 46) end--;
    let start = end;
    while (start > from && s.charCodeAt(start - 1) !== 46) start--;
    if (start < end && isDigit(s.charCodeAt(start)) && !dottedQuad(s, from, i)) parse = true;
  }
  if (i < to) {
    if (s.charCodeAt(i) !== 58 /* : */) return false;
    let port = 0;
    for (i++; i < to; i++) {
      const c = s.charCodeAt(i);
      if (!isDigit(c)) return false;
      port = port * 10 + (c - 48);
      if (port > 65535) return false;
    }
  }
  return !parse || URL.canParse(`http://${s.slice(from, to)}/`);
}

/** Four decimal numbers 0-255 without leading zeros, dot-separated. */
function dottedQuad(s: string, from: number, to: number): boolean {
  let parts = 0, value = 0, digits = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      parts++;
      value = digits = 0;
    } else {
      if (!isDigit(c) || (digits > 0 && value === 0) || ++digits > 3) return false;
      value = value * 10 + (c - 48);
    }
  }
  return parts === 4;
}

/** Where the authority that starts at `i` ends, as the WHATWG parser ends it for http(s). */
export function authorityEnd(url: string, i: number): number {
  for (; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 47 || c === 63 || c === 35 || c === 92) break; // / ? # \
  }
  return i;
}

/** The path and query of an absolute URL whose authority starts at `i`, in origin form. */
function pathFrom(url: string, i: number): string {
  i = authorityEnd(url, i);
  if (i === url.length) return "/";
  return url.charCodeAt(i) === 47 ? url.slice(i) : "/" + url.slice(i);
}

/** Where the authority starts after an http, https (or, with `unix`, http+unix) scheme; 0 for none. */
function afterScheme(url: string, unix: boolean): number {
  const head = url.slice(0, 12).toLowerCase();
  if (head.startsWith("http://")) return 7;
  if (head.startsWith("https://")) return 8;
  return unix && head === "http+unix://" ? 12 : 0;
}

/**
 * The path and query a request target (node:http's `req.url`) gives
 * `req.url`, or undefined for 400: origin-form as it is, `*` for OPTIONS as
 * "/*", absolute-form http(s) as its path and query ("/" for none).
 */
export function targetPath(method: string, target: string): string | undefined {
  if (target.charCodeAt(0) === 47) return target;
  if (target === "*") return method === "OPTIONS" ? "/*" : undefined;
  const i = afterScheme(target, false);
  return i === 0 ? undefined : pathFrom(target, i);
}

/** The authority a request without Host gets: the listening address. */
export function authorityOf(a: { transport: string; hostname?: string; port?: number } | undefined): string {
  if (a === undefined || a.hostname === undefined) return "localhost";
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

/**
 * For a fast path, where the runtime built `url`: undefined when it is
 * `${prefix}${host}${target}` already (the usual request: a few compares, no
 * copy), else the URL these rules give, or null for 400. `host` is the Host
 * header (null without one), `own` the listening address, `fallback` what
 * the runtime puts in place of a missing Host (Deno: localhost:port).
 * Deno builds `url` from an absolute-form target as it is, from HTTP/2's
 * :authority (there is no Host header then), and as http+unix:// on a unix
 * socket; Bun gives a relative URL for a Host it cannot parse or none,
 * normalizes the host ("H:80" -> "h") and drops an absolute-form target's
 * authority.
 */
export function fastUrl(
  url: string,
  host: string | null,
  prefix: string,
  own: string,
  fallback?: string,
): string | null | undefined {
  const n = prefix.length;
  if (host !== null && host !== "") {
    if (!hostOk(host)) return null;
    if (url.startsWith(prefix) && url.startsWith(host, n) && url.charCodeAt(n + host.length) === 47) {
      return undefined;
    }
  } else host = null;
  if (url.charCodeAt(0) === 47) return prefix + (host ?? own) + url;
  const i = afterScheme(url, true);
  if (i === 0) return null;
  const path = pathFrom(url, i);
  if (host === null && i === n && url.startsWith(prefix)) {
    // No Host but an authority the runtime did not make up: HTTP/2's
    // :authority (which its HTTP/2 stack has checked), kept.
    const authority = url.slice(n, authorityEnd(url, n));
    if (authority !== fallback && hostOk(authority)) host = authority;
  }
  const fixed = prefix + (host ?? own) + path;
  return fixed === url ? undefined : fixed;
}
