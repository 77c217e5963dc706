// serve() against the runtime's own server (issue 24): one set of requests,
// sent as raw bytes to serve() on an activated socket and to Deno.serve or
// Bun.serve on a port, the same handler behind both (test/fixtures/hostile.ts).
// Status, the meaningful headers (Content-Type, a HEAD's Content-Length),
// the body bytes, whether the connection stays open, pipelining and
// request.signal on a client that goes away must agree; in Node, whose
// node:http has no fetch-style twin, serve() must agree with what Deno.serve
// and Bun.serve agree on. The cases where serve() answers otherwise on
// purpose (src/_http_check.ts's rules: TRACE/TRACK/CONNECT, hostile Host
// values, the body limit, Bun's relative URL, and what a path's own parser
// decides) are listed below with the reason, and checked to still differ:
// a runtime that changes turns a stale exception into a failure.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fixtureCommand, freePort, ROOT, type Run, RUNTIME, SSA, start } from "./_util.ts";
import { type Exchange, exchange, type Target } from "./_raw_http.ts";

type Subject = "node" | "deno-fast" | "deno-http" | "bun-fast" | "bun-http";
type Native = "deno" | "bun";

interface Case {
  name: string;
  req: string;
  /** Requests in `req` (pipelining). */
  count?: number;
  heads?: boolean[];
  /** Why serve() answers otherwise here, per path. */
  except?: Partial<Record<Subject, string>>;
}

const get = (target: string, host: string | null, version = "1.1", extra = "") =>
  `GET ${target} HTTP/${version}\r\n${host === null ? "" : `Host: ${host}\r\n`}${extra}\r\n`;
const post = (target: string, body: string, extra = "") =>
  `POST ${target} HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

// What src/_http_check.ts decides against a runtime's own server.
const HOST_400 = "a Host that is not an authority gets 400 (src/_http_check.ts)";
const TRACE_501 = "TRACE, TRACK and CONNECT get 501 (undici's Request cannot carry them)";
const ABS_HOST = "an absolute-form target gives only its path; the authority is the Host's (Bun.serve's way)";
const LIMIT = "maxRequestBodySize 100000 in serve(); Deno.serve has no limit";
const BUN_RELATIVE = "Bun.serve gives a relative req.url without Host; serve() the listening address";
const LLHTTP = "node:http's parser (llhttp, in Deno's node:http too) refuses it first";
const BUN_DUP_HOST =
  "Bun.serve takes the first of two Host lines; serve() over node:http answers 400 (RFC 9112 §3.2), as Deno.serve does";
const ASTERISK =
  "serve() passes OPTIONS * on as http://host/* (Deno.serve's way); Bun.serve's parser refuses it";

const CASES: Case[] = [
  { name: "GET /", req: get("/", "h") },
  { name: "a path and query", req: get("/a/b?c=d&e", "h") },
  { name: "HEAD", req: "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", heads: [true] },
  { name: "POST echo", req: post("/echo", "hello") },
  {
    name: "POST echo, chunked",
    req:
      "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
  },
  {
    name: "POST read, chunked with a trailer",
    req:
      "POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    except: {
      "bun-http":
        "Bun.serve reads a chunked trailer as a request of its own (400); node:http takes it. And Bun's " +
        "new Response(text) has no Content-Type in its headers (Bun.serve adds it as it sends), so none goes out",
    },
  },
  { name: "PUT echo", req: post("/echo", "abc").replace("POST", "PUT") },
  { name: "PATCH echo", req: post("/echo", "ab").replace("POST", "PATCH") },
  { name: "DELETE", req: get("/x", "h").replace("GET", "DELETE") },
  { name: "OPTIONS /", req: get("/", "h").replace("GET", "OPTIONS") },
  {
    name: "POST echo, 64 KiB",
    req: post("/echo", "x".repeat(65536)),
    except: {
      "deno-http":
        "hyper closes a connection whose request body was still being echoed back; node:http keeps it",
    },
  },
  { name: "Expect: 100-continue", req: post("/echo", "hello", "Expect: 100-continue\r\n") },
  { name: "HTTP/1.0 with Host", req: get("/ten", "h", "1.0") },
  { name: "HTTP/1.0 keep-alive", req: get("/ten", "h", "1.0", "Connection: keep-alive\r\n") },
  { name: "Connection: close", req: get("/", "h", "1.1", "Connection: close\r\n") },
  { name: "percent-escapes", req: get("/%7e/%41?x=%20", "h") },
  { name: "//double", req: get("//double/x", "h") },
  { name: "dot segments", req: get("/a/../b/./c", "h") },
  { name: "an empty query", req: get("/?", "h") },
  { name: "a repeated header", req: get("/", "h", "1.1", "X-A: 1\r\nX-A: 2\r\n") },
  { name: "an 8 KiB header", req: get("/", "h", "1.1", `X-A: ${"a".repeat(8192)}\r\n`) },
  { name: "Host with a port", req: get("/p", "h:8080") },
  { name: "Host in capitals, port 80", req: get("/p", "H.Example:80") },
  { name: "Host [::1]:8", req: get("/p", "[::1]:8") },
  {
    name: "pipelined: GET, POST echo, GET",
    req: get("/p1", "h") + post("/echo", "abc") + get("/p3", "h"),
    count: 3,
  },
  // Where serve() differs on purpose.
  {
    name: "TRACE",
    req: get("/", "h").replace("GET", "TRACE"),
    except: {
      node: TRACE_501,
      "deno-fast": TRACE_501,
      "deno-http": TRACE_501,
      "bun-fast": TRACE_501,
      "bun-http": TRACE_501,
    },
  },
  {
    name: "TRACK",
    req: get("/", "h").replace("GET", "TRACK"),
    except: { "deno-fast": TRACE_501, "deno-http": LLHTTP, "bun-http": LLHTTP },
  },
  {
    name: "CONNECT",
    req: "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    except: {
      node: TRACE_501,
      "deno-fast": TRACE_501,
      "deno-http": TRACE_501,
      "bun-fast": TRACE_501,
      "bun-http": TRACE_501,
    },
  },
  {
    name: "an unknown method",
    req: get("/", "h").replace("GET", "FOO"),
    except: { "deno-http": LLHTTP, "bun-http": LLHTTP },
  },
  ...["h/admin#", "[::1", "a:99999", "x y", "user@h", "h:abc", "a, b"].map((h): Case => ({
    name: `Host ${JSON.stringify(h)}`,
    req: get("/public", h),
    except: {
      node: HOST_400,
      "deno-fast": HOST_400,
      "deno-http": HOST_400,
      "bun-fast": HOST_400,
      "bun-http": HOST_400,
    },
  })),
  {
    name: "two Host lines",
    req: "GET /p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    except: { "bun-http": BUN_DUP_HOST },
  },
  {
    name: "no Host, HTTP/1.0",
    req: get("/x?y", null, "1.0"),
    except: { "bun-fast": BUN_RELATIVE, "bun-http": BUN_RELATIVE },
  },
  {
    name: "empty Host",
    req: get("/x?y", ""),
    except: { "bun-fast": BUN_RELATIVE, "bun-http": BUN_RELATIVE },
  },
  {
    name: "no Host, HTTP/1.1",
    req: get("/x?y", null),
    except: {
      "deno-http": "node:http answers 400 without Host on HTTP/1.1 (RFC 9112 §3.2), as Bun.serve does",
    },
  },
  { name: "OPTIONS *", req: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", except: { "bun-http": ASTERISK } },
  { name: "GET *", req: get("*", "h") },
  {
    name: "absolute-form, another host",
    req: get("http://other/p?q", "h"),
    except: { "deno-fast": ABS_HOST, "deno-http": ABS_HOST },
  },
  {
    name: "absolute-form with user info",
    req: get("http://user:pass@other/p", "h"),
    except: { "deno-fast": ABS_HOST, "deno-http": ABS_HOST },
  },
  {
    name: "absolute-form, ftp",
    req: get("ftp://other/p", "h"),
    except: {
      "deno-fast": "an absolute-form target other than http(s) gets 400, as Bun.serve answers",
      "deno-http": "an absolute-form target other than http(s) gets 400, as Bun.serve answers",
    },
  },
  {
    name: "a Content-Length above the limit",
    req: "POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 100001\r\n\r\n",
    except: { "deno-fast": LIMIT, "deno-http": LIMIT },
  },
  {
    name: "a chunked body past the limit",
    req: `POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${
      `ea60\r\n${"a".repeat(60000)}\r\n`.repeat(2)
    }0\r\n\r\n`,
    except: { "deno-fast": LIMIT, "deno-http": LIMIT },
  },
];

/** An answer reduced to what must agree. */
interface Answer {
  closed: boolean;
  responses: { status: number; type?: string; length?: string; body: string }[];
}

function reduce(x: Exchange, heads: boolean[], selves: string[]): Answer {
  return {
    closed: x.closed,
    responses: x.responses.map((r, i) => {
      let body = new TextDecoder().decode(r.body);
      try {
        // The handler's JSON: the server's own address (its port differs
        // between the two servers; Deno.serve's localhost:port stand-in
        // included) is SELF.
        const j = JSON.parse(body);
        if (typeof j.url === "string") {
          try {
            const u = new URL(j.url);
            if (selves.includes(u.host)) {
              u.hostname = "self";
              u.port = "";
            }
            j.url = u.href;
          } catch { /* a URL new URL() cannot parse: compared as it is */ }
          body = JSON.stringify(j);
        }
      } catch { /* not JSON */ }
      return {
        status: r.status,
        // Bun writes charset=utf-8 where Deno and Node write UTF-8.
        type: r.headers["content-type"]?.toLowerCase().replace(/\s/g, ""),
        length: heads[i] ? r.headers["content-length"] : undefined,
        body,
      };
    }),
  };
}

const short = (a: Answer) => {
  const s = JSON.stringify(a);
  return s.length > 600 ? `${s.slice(0, 600)}...` : s;
};

interface Server {
  run: Run;
  target: Target;
  selves: string[];
  stop(): Promise<void>;
}

const BODY_LIMIT = "100000";

async function startSubject(fast: boolean): Promise<Server> {
  const port = await freePort();
  const env: Record<string, string> = { BODY_LIMIT, SOCKET_ACTIVATE_HTTP_FAST: fast ? "1" : "0" };
  const run = start([
    SSA,
    "-l",
    `127.0.0.1:${port}`,
    ...Object.keys(env).flatMap((k) => ["-E", k]),
    ...fixtureCommand("hostile.ts"),
  ], env);
  await run.stderrMatch(/Listening on/);
  await exchange({ port }, get("/started", "h"), { ms: 20000 });
  await run.stderrMatch(/^ready /m, 20000);
  return server(run, port);
}

/** Deno.serve or Bun.serve with the same handler, in a process of its own. */
async function startNative(rt: Native): Promise<Server> {
  const port = await freePort();
  const bin = path.join(ROOT, "node_modules", ".bin", rt);
  const f = path.join(ROOT, "test", "fixtures", "hostile.ts");
  const run = start(rt === "deno" ? [bin, "run", "-A", f] : [bin, "run", f], {
    NATIVE_PORT: String(port),
    BODY_LIMIT,
  });
  await run.stderrMatch(/^ready native/m, 20000);
  return server(run, port);
}

function server(run: Run, port: number): Server {
  return {
    run,
    target: { port },
    selves: [`127.0.0.1:${port}`, `localhost:${port}`],
    async stop() {
      if (run.child.exitCode !== null || run.child.signalCode !== null) return;
      run.signal("SIGTERM");
      await run.exited();
    },
  };
}

async function ask(s: Server, c: Case): Promise<Answer> {
  const heads = c.heads ?? [];
  const x = await exchange(s.target, c.req, { count: c.count ?? 1, heads, ms: 3000, settle: 100 });
  return reduce(x, heads, s.selves);
}

/** A client that goes away while the handler waits on request.signal: the signal aborts. */
async function abortSeen(s: Server): Promise<string> {
  await exchange(s.target, get("/wait", "h"), { ms: 300 });
  const deadline = Date.now() + 5000;
  let n = "0";
  while (Date.now() < deadline) {
    n = new TextDecoder().decode((await exchange(s.target, get("/aborted", "h"))).responses[0]?.body);
    if (n !== "0") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return n;
}

/** Compares `subject` with `reference` case by case; the differences that are not listed, and the listed ones that vanished. */
/** An answer without its Content-Types. */
const untyped = (a: Answer): Answer => ({
  ...a,
  responses: a.responses.map((r) => ({ ...r, type: undefined })),
});

async function compare(
  id: Subject,
  subject: Server,
  reference: (c: Case) => Promise<{ want: Answer; typeless: boolean } | undefined>,
) {
  const wrong: string[] = [];
  let compared = 0;
  for (const c of CASES) {
    const ref = await reference(c);
    if (ref === undefined) continue; // the references disagree (Node)
    const want = ref.want;
    let got = await ask(subject, c);
    if (ref.typeless) got = untyped(got);
    const why = c.except?.[id];
    const same = JSON.stringify(got) === JSON.stringify(want);
    compared++;
    if (!same && why === undefined) {
      wrong.push(`${c.name}: serve() ${short(got)}, the runtime's server ${short(want)}`);
    }
    if (same && why !== undefined) wrong.push(`${c.name}: listed as an exception (${why}) but now the same`);
  }
  return { wrong, compared };
}

const SUBJECTS: { id: Subject; fast: boolean }[] = RUNTIME === "node"
  ? [{ id: "node", fast: false }]
  : [{ id: `${RUNTIME}-fast` as Subject, fast: true }, { id: `${RUNTIME}-http` as Subject, fast: false }];

const natives: Native[] = RUNTIME === "node" ? ["deno", "bun"] : [RUNTIME];
const missing = natives.find((n) => !fs.existsSync(path.join(ROOT, "node_modules", ".bin", n)));

for (const { id, fast } of SUBJECTS) {
  const against = RUNTIME === "node"
    ? "what Deno.serve and Bun.serve agree on"
    : `${RUNTIME === "deno" ? "Deno" : "Bun"}.serve`;
  test(`serve() (${id}) answers as ${against}, but for the listed exceptions`, {
    skip: missing ? `node_modules/.bin/${missing} is missing` : false,
  }, async () => {
    const refs = await Promise.all(natives.map(startNative));
    const s = await startSubject(fast);
    try {
      const { wrong, compared } = await compare(id, s, async (c) => {
        const answers = await Promise.all(refs.map((r) => ask(r, c)));
        // Node: only where both agree; where they differ only in Content-Type
        // (Bun's Response.json says charset=utf-8, Deno's does not), on the rest.
        const same = (a: Answer[]) => a.every((x) => JSON.stringify(x) === JSON.stringify(a[0]));
        if (same(answers)) return { want: answers[0], typeless: false };
        const typeless = answers.map(untyped);
        return same(typeless) ? { want: typeless[0], typeless: true } : undefined;
      });
      assert.deepEqual(wrong, []);
      assert.ok(compared >= (RUNTIME === "node" ? 25 : CASES.length), `only ${compared} cases compared`);
      // request.signal when the client goes away, the same in both.
      for (const r of refs) assert.equal(await abortSeen(r), "1", "the runtime's own server");
      assert.equal(await abortSeen(s), "1", "serve()");
    } finally {
      await s.stop();
      await Promise.all(refs.map((r) => r.stop()));
    }
  });
}
