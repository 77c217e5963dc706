// serve() against what security scanners, proxies and attackers send (issue
// 24): the request classes of a public HTTP/1.1 compliance and security probe
// (Http11Probe), written anew as raw bytes, sent one by one to serve() on a
// socket activated by systemd-socket-activate, on every path of the runtime
// running this file (Node: node:http; Deno and Bun: the fast path and, with
// SOCKET_ACTIVATE_HTTP_FAST=0, node:http), over TCP and a unix socket. After
// each request the server must still answer; where the rules of
// src/_http_check.ts say what the handler sees (the Host values, the target
// forms, TRACE/TRACK/CONNECT, the body limit), that is checked too. What the
// runtime's own parser refuses first (an unknown method, broken framing) is
// the runtime's business: test/conformance.test.ts compares it with the
// runtime's own server.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fixtureCommand, freePort, type Run, RUNTIME, SSA, start, tempDir } from "./_util.ts";
import { type Exchange, exchange, type Target, text } from "./_raw_http.ts";
import { bodyLimit, fastUrl, hostOk, refusedMethod, targetPath } from "../src/_http_check.ts";

// ---- The rules themselves (src/_http_check.ts), in this runtime's URL parser.

/**
 * Whether this runtime's URL parser takes the A-label "xn--a" (not valid
 * punycode): Node 20 and 22 (ada 2), Deno and Bun refuse it, Node 24 and 26
 * (ada 4) take it. The rule is the runtime's own: a Host that new URL()
 * cannot parse gets 400, one it parses is served.
 */
const PUNY_PARSES = URL.canParse("http://xn--a/");

test("hostOk(): every reg-name character is a host character to this runtime's URL parser", () => {
  for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=") {
    assert.equal(hostOk(`a${c}b`), true, c);
    assert.equal(new URL(`http://a${c}b/p?q`).pathname, "/p", c);
  }
});

test("hostOk() refuses what is not an authority, and what new URL() cannot parse", () => {
  for (
    const h of [
      "",
      "h/admin#",
      "h/admin?",
      "h#x",
      "h?x",
      "h\\admin",
      "[::1",
      "[",
      "]",
      "[::1]x",
      "[v1.x]",
      "[fe80::1%25eth0]",
      "a:99999",
      "h:65536",
      "h:-1",
      "h:+80",
      "h:abc",
      ":80",
      "x y",
      "h\tx",
      "user@h",
      "u:p@h",
      "a, b",
      "h\u00e9",
      "1.2.3.999",
      "1.2.3.4.5",
      "08.1.1.1",
      "a.1",
      "a.0x",
      // An A-label that is not valid punycode: refused where this runtime's
      // URL parser refuses it (Node 24 and 26, whose ada 4 takes it, serve it).
      ...(PUNY_PARSES ? [] : ["xn--a", "XN--a"]),
      "a%2fb",
      "a%zz",
      '"h"',
      "h|x",
      "h<x>",
    ]
  ) assert.equal(hostOk(h), false, JSON.stringify(h));
});

test("hostOk() accepts authorities, and each gives a URL whose path it leaves alone", () => {
  for (
    const h of [
      "h",
      "h:8080",
      "h:",
      "H.Example:80",
      "localhost",
      "a_b.c",
      "a,b",
      "a.",
      "a..b",
      "a%41",
      "10.0.0.1:8080",
      "127.0.0.1",
      "0x7f.1",
      "1.2.3",
      "123abc",
      "xn--ls8h",
      "[::1]",
      "[::1]:8",
      "[::ffff:1.2.3.4]",
      "h:000080",
    ]
  ) {
    assert.equal(hostOk(h), true, h);
    assert.equal(new URL(`http://${h}/p?q`).pathname, "/p", h);
  }
});

test("hostOk() never accepts a value that makes new URL() fail or changes the path (random strings)", () => {
  // A fixed-seed generator: the same strings in every runtime, every run.
  let seed = 24;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const alphabet = "ab1.0x:[]%@/#?\\ ,-_~!*2f5F9";
  let accepted = 0;
  for (let n = 0; n < 20000; n++) {
    let h = "";
    for (let i = 1 + Math.floor(rnd() * 10); i > 0; i--) h += alphabet[Math.floor(rnd() * alphabet.length)];
    if (!hostOk(h)) continue;
    accepted++;
    let pathname: string;
    try {
      pathname = new URL(`http://${h}/p?q`).pathname;
    } catch {
      pathname = "THROWS";
    }
    assert.equal(pathname, "/p", JSON.stringify(h));
  }
  assert.ok(accepted > 1000, `only ${accepted} accepted: the generator no longer tests much`);
});

test("targetPath(): origin-form as it is, * for OPTIONS, absolute-form's path, nothing else", () => {
  assert.equal(targetPath("GET", "/a?b"), "/a?b");
  assert.equal(targetPath("OPTIONS", "*"), "/*");
  assert.equal(targetPath("GET", "*"), undefined);
  assert.equal(targetPath("GET", "http://user:pass@host/p?q"), "/p?q");
  assert.equal(targetPath("GET", "HTTPS://other"), "/");
  assert.equal(targetPath("GET", "http://other?q"), "/?q");
  assert.equal(targetPath("GET", "http://h/admin#/x"), "/admin#/x");
  assert.equal(targetPath("GET", "ftp://other/p"), undefined);
  assert.equal(targetPath("GET", "abc"), undefined);
  assert.equal(targetPath("GET", ""), undefined);
});

test("fastUrl(): the usual request untouched; the runtimes' other forms made the same", () => {
  const f = (url: string, host: string | null, fallback?: string) =>
    fastUrl(url, host, "http://", "127.0.0.1:8080", fallback);
  assert.equal(f("http://h/p?q", "h"), undefined);
  assert.equal(f("http://h:8080/", "h:8080"), undefined);
  assert.equal(f("http://h/admin#/public", "h/admin#"), null, "a Host with a path");
  assert.equal(f("/public", "x y"), null, "Bun's relative URL for a Host it cannot parse");
  assert.equal(f("/x?y", null), "http://127.0.0.1:8080/x?y", "Bun without Host");
  assert.equal(f("/x?y", ""), "http://127.0.0.1:8080/x?y", "Bun with an empty Host");
  assert.equal(
    f("http://localhost:8080/x", null, "localhost:8080"),
    "http://127.0.0.1:8080/x",
    "Deno without Host",
  );
  assert.equal(f("http+unix://h/x", "h"), "http://h/x", "Deno on a unix socket");
  assert.equal(f("http+unix://%2Frun%2Fs.sock/x", null), "http://127.0.0.1:8080/x", "Deno, unix, no Host");
  assert.equal(f("http://other/p", "h"), "http://h/p", "Deno's absolute-form target");
  assert.equal(f("http://user:pass@other/p", "h"), "http://h/p", "user info never gets through");
  assert.equal(f("ftp://other/p", "h"), null);
  assert.equal(f("http://h.example/", "H.Example:80"), "http://H.Example:80/", "Bun's normalized host");
  assert.equal(f("http://other:81/p", null), undefined, "HTTP/2's :authority, no Host header");
  assert.equal(fastUrl("https://h/", "h", "https://", "x"), undefined);
});

test("refusedMethod(): TRACE, TRACK and CONNECT in any case, nothing else", () => {
  for (const m of ["TRACE", "TRACK", "CONNECT", "trace", "Connect"]) assert.equal(refusedMethod(m), true, m);
  for (const m of ["GET", "POST", "PATCH", "OPTIONS", "DELETE", "PROPFIND", "TRACES", "CONNEC"]) {
    assert.equal(refusedMethod(m), false, m);
  }
});

test("serve() refuses a maxRequestBodySize that is not a byte count, naming it", async () => {
  const entry = RUNTIME === "deno"
    ? "../runtimes/deno.ts"
    : RUNTIME === "bun"
    ? "../runtimes/bun.ts"
    : "../runtimes/node.ts";
  const { serve } = await import(entry);
  const port = await freePort();
  const handler = () => new Response("x");
  const options = { fallback: { port, hostname: "127.0.0.1" } };
  for (const bad of [-1, 1.5, NaN, -Infinity]) {
    await assert.rejects(serve({ ...options, maxRequestBodySize: bad }, handler), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(
        e.message,
        new RegExp(`^Cannot serve with maxRequestBodySize ${String(bad)}: give a whole number`),
      );
      return true;
    });
  }
  await assert.rejects(serve({ ...options, maxRequestBodySize: "1000" }, handler), (e: Error) => {
    assert.ok(e instanceof TypeError, String(e));
    assert.match(e.message, /^Cannot serve with maxRequestBodySize "1000": give a number of bytes$/);
    return true;
  });
  assert.equal(bodyLimit(undefined), 128 * 1024 * 1024);
  assert.equal(bodyLimit(Infinity), Infinity);
  assert.equal(bodyLimit(0), 0);
});

// ---- serve() on an activated socket, every path of this runtime.

type PathId = "node" | "deno-fast" | "deno-http" | "bun-fast" | "bun-http";
const PATHS: { id: PathId; env: Record<string, string> }[] = RUNTIME === "node"
  ? [{ id: "node", env: {} }]
  : [
    { id: `${RUNTIME}-fast` as PathId, env: { SOCKET_ACTIVATE_HTTP_FAST: "1" } },
    { id: `${RUNTIME}-http` as PathId, env: { SOCKET_ACTIVATE_HTTP_FAST: "0" } },
  ];
// Deno's fast path has a second way in, without FFI: node:net's taken
// streams (TCP only), served by the same per-connection code.
const DENO_NET = { SOCKET_ACTIVATE_HTTP_FAST: "1", DENO_VIA: "node-net" };

interface Server {
  run: Run;
  target: Target;
  /** The authority a request without Host gets. */
  self: string;
  stop(): Promise<void>;
}

async function startServer(env: Record<string, string>, transport: "tcp" | "unix"): Promise<Server> {
  let listen: string, target: Target, self: string, dir: string | undefined;
  if (transport === "tcp") {
    const port = await freePort();
    listen = `127.0.0.1:${port}`;
    target = { port };
    self = listen;
  } else {
    dir = tempDir();
    listen = path.join(dir, "http.sock");
    target = { path: listen };
    self = "localhost";
  }
  const run = start([
    SSA,
    "-l",
    listen,
    ...Object.keys(env).flatMap((k) => ["-E", k]),
    ...fixtureCommand("hostile.ts"),
  ], env);
  await run.stderrMatch(/Listening on/);
  // The first connection starts the server.
  await exchange(target, "GET /started HTTP/1.1\r\nHost: h\r\n\r\n", { ms: 20000 });
  await run.stderrMatch(/^ready /m, 20000);
  return {
    run,
    target,
    self,
    async stop() {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      // Already gone (what the probe then reports): nothing to stop.
      if (run.child.exitCode !== null || run.child.signalCode !== null) return;
      run.signal("SIGTERM");
      assert.equal(await run.exited(), 0, run.stderr());
    },
  };
}

/** What one case expects; `except` overrides it for one path, saying why. */
interface Expect {
  /** The status; "refused" is anything but a handler's 2xx, a closed connection included. */
  status?: number | "refused";
  /** The pathname and search the handler's new URL(req.url) found. */
  path?: string;
  /** The host of req.url ("SELF": the listening address); by default, new URL() of the Host header's. */
  host?: string;
  method?: string;
}
interface Case extends Expect {
  name: string;
  req: string;
  /** Half-close after sending: for requests the server would otherwise wait on. */
  halfClose?: boolean;
  except?: Partial<Record<PathId, Expect & { why: string }>>;
}

const get = (target: string, host: string | null, version = "1.1") =>
  `GET ${target} HTTP/${version}\r\n${host === null ? "" : `Host: ${host}\r\n`}\r\n`;

const HOSTS_REFUSED = [
  "h/admin#",
  "h/admin?",
  "h#x",
  "h\\admin",
  "[::1",
  "a:99999",
  "x y",
  "user@h",
  "h:abc",
  "[",
  "a, b",
  "1.2.3.999",
  ...(PUNY_PARSES ? [] : ["xn--a"]),
  ":80",
  "h:65536",
  "[::1]x",
  "h\tx",
];
const HOSTS_SERVED = [
  "h",
  "h:8080",
  "H.Example:80",
  "[::1]:8",
  "a,b",
  "a%41",
  "10.0.0.1:8080",
  "h:",
  "a_b.c",
  "0x7f.1",
  ...(PUNY_PARSES ? ["xn--a"] : []),
];

const BUN_FIRST_HOST =
  "Bun.serve takes the first of two Host lines, and finding a second would cost every request Bun's Headers object";

const CASES: Case[] = [
  // Host forms: never part of the path, and never a URL that cannot parse.
  ...HOSTS_REFUSED.map((h): Case => ({
    name: `Host ${JSON.stringify(h)}`,
    req: get("/public", h),
    status: 400,
  })),
  ...HOSTS_SERVED.map((h): Case => ({
    name: `Host ${JSON.stringify(h)}`,
    req: get("/public", h),
    status: 200,
    path: "/public",
  })),
  {
    name: "two Host lines",
    req: "GET /p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    status: 400,
    except: { "bun-fast": { status: 200, path: "/p", host: "a", why: BUN_FIRST_HOST } },
  },
  {
    name: "two equal Host lines",
    req: "GET /p HTTP/1.1\r\nHost: h\r\nhost: h\r\n\r\n",
    status: 400,
    except: { "bun-fast": { status: 200, path: "/p", host: "h", why: BUN_FIRST_HOST } },
  },
  { name: "no Host, HTTP/1.0", req: get("/x?y", null, "1.0"), status: 200, path: "/x?y", host: "SELF" },
  {
    name: "OPTIONS / HTTP/1.0, no Host (HAProxy's httpchk)",
    req: "OPTIONS / HTTP/1.0\r\n\r\n",
    status: 200,
    path: "/",
    host: "SELF",
    method: "OPTIONS",
  },
  { name: "empty Host, HTTP/1.0", req: get("/x?y", "", "1.0"), status: 200, path: "/x?y", host: "SELF" },
  { name: "empty Host, HTTP/1.1", req: get("/x?y", ""), status: 200, path: "/x?y", host: "SELF" },
  {
    name: "no Host, HTTP/1.1",
    req: get("/x?y", null),
    status: 400,
    except: {
      "deno-fast": {
        status: 200,
        path: "/x?y",
        host: "SELF",
        why: "Deno.serve serves it, and its Request tells JavaScript no HTTP version",
      },
    },
  },
  // Request-target forms.
  {
    name: "OPTIONS *",
    req: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    status: 200,
    path: "/*",
    method: "OPTIONS",
    except: {
      "bun-fast": { status: 400, why: "Bun.serve's parser refuses the asterisk-form before JavaScript runs" },
    },
  },
  { name: "GET *", req: get("*", "h"), status: 400 },
  { name: "absolute-form with user info", req: get("http://user:pass@host/p", "h"), status: 200, path: "/p" },
  { name: "absolute-form, another host", req: get("http://other/p?q", "h"), status: 200, path: "/p?q" },
  { name: "absolute-form, HTTPS in capitals", req: get("HTTPS://other/p", "h"), status: 200, path: "/p" },
  { name: "absolute-form, no path", req: get("http://other", "h"), status: 200, path: "/" },
  { name: "absolute-form, only a query", req: get("http://other?q", "h"), status: 200, path: "/?q" },
  {
    name: "absolute-form, HTTP/1.0 without Host",
    req: get("http://other/p", null, "1.0"),
    status: 200,
    path: "/p",
    host: "SELF",
    except: {
      "deno-fast": {
        status: 200,
        path: "/p",
        host: "other",
        why: "without Host Deno's URL cannot tell this from HTTP/2's :authority, which is kept",
      },
    },
  },
  { name: "absolute-form, ftp", req: get("ftp://other/p", "h"), status: 400 },
  { name: "a relative target", req: get("abc", "h"), status: "refused" },
  { name: "//evil/x", req: get("//evil/x", "h"), status: 200, path: "//evil/x" },
  { name: "dot segments", req: get("/a/../b", "h"), status: 200, path: "/b" },
  { name: "a fragment in the target", req: get("/a#b", "h"), status: 200, path: "/a" },
  { name: "a bad percent-escape", req: get("/%zz", "h"), status: 200, path: "/%zz" },
  { name: "a backslash", req: get("/\\x", "h"), status: 200, path: "//x" },
  // Methods.
  { name: "TRACE", req: get("/", "h").replace("GET", "TRACE"), status: 501 },
  {
    name: "TRACE with a body",
    req: "TRACE / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\ntest",
    status: 501,
  },
  { name: "TRACE, Max-Forwards", req: "TRACE / HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n\r\n", status: 501 },
  { name: "TRACK", req: get("/", "h").replace("GET", "TRACK"), status: "refused" },
  { name: "trace", req: get("/", "h").replace("GET", "trace"), status: "refused" },
  { name: "CONNECT", req: "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", status: 501 },
  { name: "CONNECT, origin-form", req: "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", status: "refused" },
  { name: "PROPFIND", req: get("/", "h").replace("GET", "PROPFIND"), status: 200, method: "PROPFIND" },
  { name: "DELETE", req: get("/", "h").replace("GET", "DELETE"), status: 200, method: "DELETE" },
  { name: "an unknown method", req: get("/", "h").replace("GET", "FOO") },
  { name: "a lower-case method", req: get("/", "h").replace("GET", "get") },
  // Header and framing oddities: the runtime's parser answers; serving goes on.
  {
    name: "Content-Length and chunked",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  },
  {
    name: "two Content-Lengths",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
  },
  { name: "Content-Length -1", req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n" },
  { name: "Content-Length abc", req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n" },
  { name: "Content-Length +5", req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello" },
  {
    name: "Content-Length 2^64",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n",
    halfClose: true,
  },
  {
    name: "Transfer-Encoding gzip, chunked",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
  },
  {
    name: "Transfer-Encoding chunked, gzip",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    halfClose: true,
  },
  {
    name: "Transfer-Encoding xchunked",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    halfClose: true,
  },
  {
    name: "a bad chunk size",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
  },
  {
    name: "a chunk extension",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
  },
  {
    name: "a chunk of 2^64",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    halfClose: true,
  },
  {
    name: "a cut body",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
    halfClose: true,
  },
  { name: "a cut head", req: "GET / HTTP/1.1\r\nHost: h\r\n", halfClose: true },
  { name: "obs-fold", req: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n" },
  { name: "a header without colon", req: "GET / HTTP/1.1\r\nHost: h\r\nBad\r\n\r\n" },
  { name: "a space before the colon", req: "GET / HTTP/1.1\r\nHost : h\r\n\r\n" },
  { name: "an empty header name", req: "GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n" },
  { name: "NUL in a header value", req: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u0000b\r\n\r\n" },
  { name: "CR in a header value", req: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n" },
  { name: "bare LF line ends", req: "GET / HTTP/1.1\nHost: h\n\n" },
  { name: "a 64 KiB target", req: get("/" + "a".repeat(65536), "h") },
  { name: "a 100 KiB header", req: `GET / HTTP/1.1\r\nHost: h\r\nX-A: ${"a".repeat(102400)}\r\n\r\n` },
  { name: "200 headers", req: `GET / HTTP/1.1\r\nHost: h\r\n${"X-A: a\r\n".repeat(200)}\r\n` },
  { name: "two spaces in the request line", req: "GET  / HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "HTTP/1.2", req: get("/", "h", "1.2") },
  { name: "HTTP/2.0 in a request line", req: get("/", "h", "2.0") },
  { name: "HTTP/0.9", req: "GET /\r\n\r\n" },
  { name: "a trailing word in the request line", req: "GET / HTTP/1.1 x\r\nHost: h\r\n\r\n" },
  { name: "a leading space", req: " GET / HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "empty lines first", req: "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "the HTTP/2 preface", req: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", halfClose: true },
  {
    name: "a TLS ClientHello",
    req: "\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003" + "\u0000".repeat(32),
    halfClose: true,
  },
  { name: "NUL in the target", req: "GET /a\u0000b HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "raw non-ASCII in the target", req: "GET /\u00e9 HTTP/1.1\r\nHost: h\r\n\r\n" },
  {
    name: "Expect: 100-continue",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
  },
  {
    name: "an unknown Expect",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: bogus\r\n\r\nhello",
  },
  {
    name: "Upgrade: websocket",
    req: "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
  },
  {
    name: "Upgrade: h2c",
    req:
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
  },
  {
    name: "a request after a Content-Length: 0 body",
    req: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
  },
  {
    name: "random bytes",
    req: Array.from({ length: 200 }, (_, i) => String.fromCharCode((i * 97 + 13) % 256)).join(""),
    halfClose: true,
  },
];

/** What the answer to `c` was, and what was expected of it where they differ; undefined when they agree. */
function judge(c: Case, id: PathId, x: Exchange, self: string): string | undefined {
  const want: Expect = { ...c, ...c.except?.[id] };
  const r = x.responses[0];
  const got = r === undefined ? (x.closed ? "closed without an answer" : "no answer") : String(r.status);
  const describe = () => `${got}${r ? ` ${text(r).slice(0, 160)}` : ""}`;
  if (want.status === "refused") {
    return r !== undefined && r.status < 300 ? `reached the handler: ${describe()}` : undefined;
  }
  if (want.status !== undefined && r?.status !== want.status) {
    return `wanted ${want.status}, got ${describe()}`;
  }
  if (r?.status !== 200 || (want.path === undefined && want.method === undefined)) return undefined;
  let seen: { method: string; url: string; path: string; host: string | null };
  try {
    seen = JSON.parse(text(r));
  } catch {
    return `not the handler's JSON: ${describe()}`;
  }
  if (want.path !== undefined && seen.path !== want.path) return `the handler saw ${seen.path} (${seen.url})`;
  if (want.method !== undefined && seen.method !== want.method) {
    return `the handler saw method ${seen.method}`;
  }
  const wantHost = want.host === "SELF"
    ? self
    : want.host ?? (seen.host ? new URL(`http://${seen.host}/`).host : undefined);
  const host = new URL(seen.url).host;
  if (wantHost !== undefined && host !== new URL(`http://${wantHost}/`).host) {
    return `req.url ${seen.url}: host ${host}, wanted ${wantHost}`;
  }
  return undefined;
}

/** A request every path must answer the same way: the server is still serving. */
async function serving(s: Server): Promise<string | undefined> {
  const x = await exchange(s.target, get("/health", "h"), { ms: 5000 });
  const r = x.responses[0];
  if (r?.status === 200 && JSON.parse(text(r)).path === "/health") return undefined;
  return `then no longer serving (${r ? r.status : x.closed ? "closed" : "no answer"}); exit: ${
    s.run.child.exitCode ?? s.run.child.signalCode ?? "still running"
  }; stderr: ${s.run.stderr().slice(-600)}`;
}

async function probe(id: PathId, s: Server, cases: Case[]): Promise<string[]> {
  const failures: string[] = [];
  for (const c of cases) {
    const x = await exchange(s.target, c.req, { ms: 1500, halfClose: c.halfClose });
    const bad = judge(c, id, x, s.self);
    if (bad) failures.push(`${c.name}: ${bad}`);
    const down = await serving(s);
    if (down) {
      failures.push(`${c.name}: ${down}`);
      break;
    }
  }
  return failures;
}

for (const p of PATHS) {
  test(`serve() (${p.id}) survives every request class of the probe and answers each as the rules say`, async () => {
    const s = await startServer(p.env, "tcp");
    try {
      assert.deepEqual(await probe(p.id, s, CASES), []);
    } finally {
      await s.stop();
    }
  });

  test(`serve() (${p.id}) on a unix socket: the Host and target forms, the listening address "localhost"`, async () => {
    const s = await startServer(p.env, "unix");
    try {
      const cases = CASES.filter((c) => c.path !== undefined || c.status === 400 || c.status === 501);
      assert.deepEqual(await probe(p.id, s, cases), []);
    } finally {
      await s.stop();
    }
  });

  if (p.id === "deno-fast") {
    test("serve()'s Deno fast path through node:net survives every request class and answers each as the rules say", async () => {
      const s = await startServer(DENO_NET, "tcp");
      try {
        assert.deepEqual(await probe(p.id, s, CASES), []);
      } finally {
        await s.stop();
      }
    });
  }

  test(`serve() (${p.id}) with maxRequestBodySize: 413 before reading a Content-Length above it, 413 and closed once a chunked body passes it`, async () => {
    const s = await startServer({ ...p.env, BODY_LIMIT: "1000" }, "tcp");
    try {
      const post = (head: string) => `POST /read HTTP/1.1\r\nHost: h\r\n${head}\r\n`;
      // Content-Length above the limit, no body sent: answered at once, the handler never called.
      let x = await exchange(s.target, post("Content-Length: 1001\r\n"), { ms: 5000, settle: 3000 });
      assert.equal(x.responses[0]?.status, 413, JSON.stringify(x));
      assert.equal(x.responses[0].headers.connection?.toLowerCase(), "close");
      assert.ok(x.closed, "the connection is closed after the 413");
      // A chunked body that passes it: 413, closed, the handler's read rejected.
      const chunk = (n: number) => `${n.toString(16)}\r\n${"a".repeat(n)}\r\n`;
      x = await exchange(s.target, post("Transfer-Encoding: chunked\r\n") + chunk(600) + chunk(600), {
        ms: 5000,
        settle: 3000,
      });
      assert.equal(x.responses[0]?.status, 413, JSON.stringify(x));
      assert.ok(x.closed, "the connection is closed after the 413");
      await s.run.stderrMatch(/read failed: Request body exceeded maxRequestBodySize/);
      // Up to the limit, both ways: read whole.
      x = await exchange(s.target, post("Content-Length: 1000\r\n") + "a".repeat(1000));
      assert.equal(text(x.responses[0]), "read 1000");
      x = await exchange(
        s.target,
        post("Transfer-Encoding: chunked\r\n") + chunk(500) + chunk(500) + "0\r\n\r\n",
      );
      assert.equal(text(x.responses[0]), "read 1000");
      // A client that keeps sending: the 413 comes, the connection closes, long before 10 MB are through.
      x = await exchange(s.target, post("Transfer-Encoding: chunked\r\n") + chunk(60000).repeat(160), {
        ms: 10000,
        settle: 5000,
      });
      assert.equal(x.responses[0]?.status, 413, JSON.stringify(x));
      assert.ok(x.closed);
      // The refusals are the client's doing: nothing logged as a handler failure.
      assert.doesNotMatch(s.run.stderr(), /handler failed|serving a request failed/);
      assert.equal(await serving(s), undefined);
    } finally {
      await s.stop();
    }
  });

  test(`serve() (${p.id}): the default maxRequestBodySize is 128 MiB, and Infinity lifts it`, async () => {
    const big = (n: number, expect = "") =>
      `POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: ${n}\r\n${
        expect ? `Expect: ${expect}\r\n` : ""
      }\r\n`;
    const s = await startServer(p.env, "tcp");
    try {
      let x = await exchange(s.target, big(128 * 1024 * 1024 + 1), { ms: 5000 });
      assert.equal(x.responses[0]?.status, 413, JSON.stringify(x));
      // Exactly the limit: the server asks for the body.
      x = await exchange(s.target, big(128 * 1024 * 1024, "100-continue"), { ms: 2000 });
      assert.deepEqual(x.interim, [100], JSON.stringify(x));
      assert.equal(x.responses.length, 0);
    } finally {
      await s.stop();
    }
    const u = await startServer({ ...p.env, BODY_LIMIT: "Infinity" }, "tcp");
    try {
      const x = await exchange(u.target, big(2 ** 40, "100-continue"), { ms: 2000 });
      assert.deepEqual(x.interim, [100], JSON.stringify(x));
      assert.equal(x.responses.length, 0);
    } finally {
      await u.stop();
    }
  });
}

// listenHttp() hands the requests to the program's own node:http server: no
// rule of serve()'s applies, but no request may stop it either (in Bun a
// node:net listener on the fd relays each connection to it).
test("listenHttp(): a node:http server on the activated socket survives every request class of the probe", async () => {
  const s = await startServer({ LISTEN_HTTP: "1" }, "tcp");
  try {
    const failures: string[] = [];
    for (const c of CASES) {
      await exchange(s.target, c.req, { ms: 1500, halfClose: c.halfClose });
      const down = await serving(s);
      if (down) {
        failures.push(`${c.name}: ${down}`);
        break;
      }
    }
    assert.deepEqual(failures, []);
  } finally {
    await s.stop();
  }
});
