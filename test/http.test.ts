// serve() and listenHttp(): HTTP and HTTPS on the activated socket, through
// the real systemd-socket-activate, with real clients (curl, a TLS client,
// raw keep-alive connections) in the runtime running this file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { fixtureCommand, freePort, type Run, RUNTIME, selfSigned, SSA, start, tempDir } from "./_util.ts";

/** Runs a program to its end (bounded), resolving with its exit code and output. */
function run(
  cmd: string,
  args: string[],
  ms = 30000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: ms, maxBuffer: 16 << 20, encoding: "latin1" }, (err, stdout, stderr) => {
      const code = err
        ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1)
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Waits (bounded) until the fixture says it is ready or failed. */
async function ready(r: Run, ms = 15000): Promise<string> {
  const deadline = Date.now() + ms;
  while (!/^(ready|[A-Z]+:) /m.test(r.stderr())) {
    if (Date.now() > deadline) throw new Error(`no ready line within ${ms} ms: ${r.stderr()}`);
    await new Promise((res) => setTimeout(res, 20));
  }
  return r.stderr();
}

/** Starts the HTTP fixture under systemd-socket-activate and triggers it with curl. */
async function activated(
  mode: string,
  env: Record<string, string> = {},
  scheme = "http",
): Promise<{ r: Run; port: number; base: string }> {
  const port = await freePort();
  // systemd-socket-activate passes on only the variables named by -E.
  const pass = Object.keys(env).flatMap((k) => ["-E", k]);
  const r = start([
    SSA,
    "-l",
    `127.0.0.1:${port}`,
    ...pass,
    ...fastSwitch(),
    ...fixtureCommand("http.ts"),
    mode,
  ], env);
  const base = `${scheme}://127.0.0.1:${port}`;
  // curl must not connect before systemd-socket-activate listens (a refused
  // connection starts nothing).
  await r.stderrMatch(/Listening on/);
  // The first connection is what starts the server (wait up to 20 s for it).
  const first = await run("curl", ["-sS", "-m", "20", ...curlTls(env), `${base}/n/0`]);
  if (first.code !== 0) await ready(r).catch(() => {});
  return { r, port, base };
}

/**
 * SOCKET_ACTIVATE_HTTP_FAST=0 in the test's environment forces serve() onto
 * its supported node:http path in the servers too (systemd-socket-activate
 * passes on only what -E names): test/run.sh runs this file both ways.
 */
function fastSwitch(): string[] {
  const v = process.env.SOCKET_ACTIVATE_HTTP_FAST;
  return v === undefined ? [] : ["-E", `SOCKET_ACTIVATE_HTTP_FAST=${v}`];
}

function curlTls(env: Record<string, string>): string[] {
  return env.TLS_CERT ? ["--cacert", env.TLS_CERT] : [];
}

async function stop(r: Run): Promise<void> {
  try {
    r.signal("SIGTERM");
  } catch { /* gone */ }
  await r.exited();
}

/** A self-signed certificate for localhost and 127.0.0.1, made by the openssl CLI. */
/**
 * `total` GET /n/<i> requests over `conns` keep-alive connections (each one
 * sends its requests one after another on the same socket), checking every
 * response's status and body. Resolves with the number of connections the
 * requests were actually sent over; rejects on the first error.
 */
function keepAliveLoad(port: number, total: number, conns: number): Promise<number> {
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1");
      let buf = Buffer.alloc(0);
      let want = -1;
      const timer = setTimeout(() => {
        s.destroy();
        reject(
          new Error(`request ${want} got no answer within 20 s (buffered ${JSON.stringify(String(buf))})`),
        );
      }, 20000);
      const send = () => {
        if (next >= total) {
          clearTimeout(timer);
          s.end();
          return resolve();
        }
        want = next++;
        s.write(`GET /n/${want} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      };
      s.on("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`connection failed at request ${want}: ${e.message}`));
      });
      s.on("close", () => {
        if (next < total || want >= 0 && buf.length > 0) {
          clearTimeout(timer);
          reject(new Error(`the server closed a keep-alive connection at request ${want}`));
        }
      });
      s.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const head = buf.subarray(0, end).toString("latin1");
          const len = /\r\ncontent-length: *(\d+)/i.exec(head);
          if (!len) {
            s.destroy();
            return reject(new Error(`no Content-Length in ${JSON.stringify(head)}`));
          }
          const size = Number(len[1]);
          if (buf.length < end + 4 + size) return;
          const body = buf.subarray(end + 4, end + 4 + size).toString();
          buf = buf.subarray(end + 4 + size);
          if (!head.startsWith("HTTP/1.1 200 ") || body !== `n=${want}`) {
            s.destroy();
            return reject(new Error(`request ${want}: ${JSON.stringify(head)} ${JSON.stringify(body)}`));
          }
          if (/\r\nconnection: *close/i.test(head)) {
            s.destroy();
            return reject(new Error(`request ${want} was answered with Connection: close`));
          }
          send();
        }
      });
      s.once("connect", send);
    });
  return Promise.all(Array.from({ length: conns }, one)).then(() => conns);
}

test("serve() answers 1,000 keep-alive requests over 50 connections, every one checked", async () => {
  const { r, port } = await activated("serve");
  assert.match(
    await ready(r),
    /ready .*"activated":true,"addr":\{"transport":"tcp","hostname":"127\.0\.0\.1"/,
  );
  assert.equal(await keepAliveLoad(port, 1000, 50), 50);
  await stop(r);
});

test("serve() echoes a 1 MiB POST body intact (curl)", async () => {
  const { r, base } = await activated("serve");
  const dir = tempDir();
  const body = new Uint8Array(1 << 20);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7919 + (i >> 11)) & 0xff;
  fs.writeFileSync(path.join(dir, "in"), body);
  const c = await run("curl", [
    "-sS",
    "-f",
    "-H",
    "Content-Type: application/octet-stream",
    "--data-binary",
    `@${path.join(dir, "in")}`,
    "-o",
    path.join(dir, "out"),
    `${base}/echo`,
  ]);
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(new Uint8Array(fs.readFileSync(path.join(dir, "out"))), body);
  await stop(r);
});

test("serve() streams a response: the chunks arrive separately, as produced", async () => {
  const { r, port } = await activated("serve");
  const s = net.connect(port, "127.0.0.1");
  const arrivals: { at: number; text: string }[] = [];
  const t0 = Date.now();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stream not done: ${JSON.stringify(arrivals)}`)), 10000);
    s.on("data", (d) => arrivals.push({ at: Date.now() - t0, text: String(d) }));
    s.on("error", reject);
    s.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
    s.write("GET /stream HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  });
  const all = arrivals.map((a) => a.text).join("");
  assert.match(all, /^HTTP\/1\.1 200 /);
  assert.match(all, /\r\ntransfer-encoding: chunked\r\n/i);
  const first = arrivals.find((a) => a.text.includes("chunk 0"))!;
  const last = arrivals.find((a) => a.text.includes("chunk 2"))!;
  assert.ok(first && last, JSON.stringify(arrivals));
  assert.ok(!first.text.includes("chunk 2"), "the first chunk waited for the last");
  assert.ok(last.at - first.at >= 450, `chunks 0 and 2 arrived ${last.at - first.at} ms apart, 600 expected`);
  await stop(r);
});

test("serve() with curl: keep-alive reuse, HEAD, 404, the client's address, FastResponse", async () => {
  const { r, base } = await activated("serve");
  const c = await run("curl", ["-sS", "-v", `${base}/who`, `${base}/n/7`]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout, "tcp 127.0.0.1 http:n=7");
  assert.match(c.stderr, /Re-using existing connection|Reusing existing/i);
  const head = await run("curl", ["-sS", "-I", `${base}/n/5`]);
  assert.match(head.stdout, /^HTTP\/1\.1 200 /);
  assert.match(head.stdout, /content-length: 3\r\n/i);
  const missing = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", `${base}/nothing`]);
  assert.equal(missing.stdout, "404");
  // FastResponse: what Response would have sent, in every runtime.
  const fast = await run("curl", ["-sS", "-i", `${base}/fast`, `${base}/fast.json`]);
  assert.match(fast.stdout, /^HTTP\/1\.1 200 /);
  assert.match(fast.stdout, /\r\nx-fast: 1\r\n/i);
  const [text, json] = fast.stdout.split(/(?=HTTP\/1\.1 201 )/);
  assert.match(text, /\r\ncontent-length: 4\r\n/i);
  // Bun's own Response gives a string body no Content-Type when headers are
  // given (Bun 1.4; Bun.serve adds one on the wire, its node:http does not).
  if (RUNTIME !== "bun" || process.env.SOCKET_ACTIVATE_HTTP_FAST !== "0") {
    assert.match(text, /\r\ncontent-type: text\/plain;charset=UTF-8\r\n/i);
  }
  assert.match(text, /\r\n\r\nfast$/);
  assert.match(json ?? "", /\r\ncontent-type: application\/json\r\n/i);
  assert.match(json ?? "", /\r\n\r\n\{"fast":true\}$/);
  const fastHead = await run("curl", ["-sS", "-I", `${base}/fast`]);
  assert.match(fastHead.stdout, /content-length: 4\r\n/i);
  await stop(r);
});

test("serve() drops a request body the handler left unread: the next request on the connection is answered", async () => {
  // Deno's node:http stalls the connection otherwise (denoland/deno#36821).
  const { r, base } = await activated("serve");
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "in"), "x".repeat(300000));
  const post = ["-m", "10", "--data-binary", `@${path.join(dir, "in")}`];
  const c = await run("curl", [
    "-sS",
    ...post,
    `${base}/n/1`,
    "--next",
    ...post,
    "-w",
    " %{num_connects}",
    `${base}/n/2`,
  ]);
  assert.equal(c.code, 0, c.stderr);
  if (RUNTIME === "deno" && process.env.SOCKET_ACTIVATE_HTTP_FAST !== "0") {
    // Deno's fast path is Deno.serve's own server, which closes a connection
    // whose request body was left unread once it has answered (Deno.serve on
    // a port does the same): curl opens a second one, and nothing stalls.
    assert.match(c.stdout, /^n=1n=2 [01]$/);
  } else assert.equal(c.stdout, "n=1n=2 0"); // the second request made no new connection
  await stop(r);
});

test("serve(): the request works as a real Request: instanceof, Headers, clone(), json()", async () => {
  // Node's bridge hands handlers a view of node:http's request that becomes
  // a real Request where one is needed (runtimes/node_api/request.ts).
  const { r, base } = await activated("serve");
  const body = JSON.stringify({ hello: "wörld" });
  const c = await run("curl", ["-sS", "-H", "x-test: yes", "--data-binary", body, `${base}/real`]);
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(JSON.parse(Buffer.from(c.stdout, "latin1").toString()), {
    instance: true,
    headers: true,
    xTest: "yes",
    cloneInstance: true,
    cloned: body,
    json: { hello: "wörld" },
    used: true,
    again: "TypeError",
  });
  await stop(r);
});

// Deno.serve's own Request (Deno's fast path) fails in fetch() ("Blob URL
// fetch only supports GET method", Deno 2.9): the runtime's, not the bridge's.
const DENO_FAST = RUNTIME === "deno" && process.env.SOCKET_ACTIVATE_HTTP_FAST !== "0";

test("serve(): fetch(request) sends the request on", {
  skip: DENO_FAST && "Deno.serve's own Request fails in fetch() (Deno 2.9): no bridge of this package's",
}, async () => {
  const { r, base } = await activated("serve");
  // fetch(request) sends it on to where its Host says: a node:http echo here.
  const seen: string[] = [];
  const echo = http.createServer((req, res) => {
    let got = "";
    req.on("data", (d) => (got += d)).on("end", () => {
      seen.push(`${req.method} ${req.url} ${req.headers["x-test"]} ${got}`);
      res.end("relayed");
    });
  });
  await new Promise<void>((ok) => echo.listen(0, "127.0.0.1", ok));
  const port = (echo.address() as net.AddressInfo).port;
  const relay = await run("curl", [
    "-sS",
    "-D",
    "-",
    "-H",
    `Host: 127.0.0.1:${port}`,
    "-H",
    "x-test: yes",
    "--data-binary",
    "ping",
    `${base}/relay`,
  ]);
  echo.close();
  assert.equal(relay.code, 0, relay.stderr);
  assert.match(relay.stdout, /\r\n\r\nrelayed$/);
  assert.deepEqual(seen, ["POST /relay yes ping"]);
  const direct = /\r\nx-direct: ([^\r]*)\r\n/i.exec(relay.stdout)?.[1];
  // Node 24 and 26's undici takes only a Request it built itself: there the
  // handler needs request.clone() (docs/http.md).
  const major = Number(process.versions.node.split(".")[0]);
  if (RUNTIME === "node" && major >= 24) assert.match(direct ?? "", /^TypeError: /);
  else assert.equal(direct, "ok");
  await stop(r);
});

test("serve(): request.signal aborts when the client goes away before the response", async () => {
  const { r, base } = await activated("serve");
  const c = await run("curl", ["-sS", "-m", "1", `${base}/wait`]);
  assert.equal(c.code, 28, c.stderr); // curl gave up: time-out
  await r.stderrMatch(/signal aborted/);
  await stop(r);
});

test("serve() closes gracefully: a request in flight is answered, then the process exits 0", async () => {
  const { r, base } = await activated("serve");
  const slow = run("curl", ["-sS", "-m", "10", `${base}/slow`]);
  await new Promise((res) => setTimeout(res, 300));
  r.signal("SIGTERM");
  const c = await slow;
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout, "slow");
  assert.equal(await r.exited(), 0);
  assert.match(r.stderr(), /closed\n/);
});

test("serve({ idleExit }) exits 0 once no connection has been open for that long, not before", async () => {
  const t0 = Date.now();
  const { r, base } = await activated("serve", { IDLE_EXIT: "1" });
  // curl's connection from activated() has closed: the idle clock runs.
  const again = await run("curl", ["-sS", "-H", "Connection: close", `${base}/n/1`]);
  assert.equal(again.stdout, "n=1");
  const closedAt = Date.now();
  assert.equal(await r.exited(10000), 0, r.stderr());
  const idle = Date.now() - closedAt;
  assert.ok(idle >= 900, `exited ${idle} ms after the last connection closed, 1 s expected`);
  assert.ok(Date.now() - t0 < 10000);
});

test("serve() with tls: HTTPS checked by a TLS client that trusts the self-signed certificate", async () => {
  const certs = await selfSigned();
  const env = { TLS_CERT: certs.cert, TLS_KEY: certs.key };
  const { r, port } = await activated("serve", env, "https");
  const base = `https://localhost:${port}`;
  const resolve = ["--resolve", `localhost:${port}:127.0.0.1`];
  const ok = await run("curl", ["-sS", "--cacert", certs.cert, ...resolve, `${base}/who`, `${base}/n/3`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, "tcp 127.0.0.1 https:n=3");
  // The same client without the certificate must refuse (exit 60: it could
  // not verify the peer): the TLS is real, not a formality.
  const untrusted = await run("curl", ["-sS", ...resolve, `${base}/n/1`]);
  assert.equal(untrusted.code, 60, untrusted.stderr);
  // node:tls in this runtime as a second client, checking the certificate too.
  const tlsBody = await new Promise<string>((res, rej) => {
    const s = tls.connect({
      port,
      host: "127.0.0.1",
      servername: "localhost",
      ca: fs.readFileSync(certs.cert),
    });
    let out = "";
    const timer = setTimeout(() => rej(new Error(`no answer: ${out}`)), 10000);
    s.on("secureConnect", () => s.write("GET /n/9 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
    s.on("data", (d) => (out += d));
    s.on("error", rej);
    s.on("close", () => {
      clearTimeout(timer);
      res(out);
    });
  });
  assert.match(tlsBody, /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nn=9$/);
  // Plain HTTP to the HTTPS socket: anything but an HTTP 200.
  const plain = await new Promise<string>((res) => {
    const s = net.connect(port, "127.0.0.1");
    let out = "";
    const timer = setTimeout(() => {
      s.destroy();
      res(out);
    }, 3000);
    s.on("connect", () => s.write("GET /n/1 HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    s.on("data", (d) => (out += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      res(out);
    });
  });
  assert.doesNotMatch(plain, /HTTP\/1\.[01] 200/);
  assert.doesNotMatch(plain, /n=1/);
  await stop(r);
});

test("serve() with tls echoes a 1 MiB POST body over HTTPS", async () => {
  const certs = await selfSigned();
  const env = { TLS_CERT: certs.cert, TLS_KEY: certs.key };
  const { r, port } = await activated("serve", env, "https");
  const body = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
  fs.writeFileSync(path.join(certs.dir, "in"), body);
  const c = await run("curl", [
    "-sS",
    "-f",
    "--cacert",
    certs.cert,
    "--resolve",
    `localhost:${port}:127.0.0.1`,
    "--data-binary",
    `@${path.join(certs.dir, "in")}`,
    "-o",
    path.join(certs.dir, "out"),
    `https://localhost:${port}/echo`,
  ]);
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(new Uint8Array(fs.readFileSync(path.join(certs.dir, "out"))), body);
  await stop(r);
});

test("serve() listens on the fallback when not activated", async () => {
  const port = await freePort();
  const r = start([...fixtureCommand("http.ts"), "serve"], { FALLBACK_PORT: String(port) });
  assert.match(
    await ready(r),
    /ready .*"activated":false,"addr":\{"transport":"tcp","hostname":"127\.0\.0\.1","port":\d+/,
  );
  const c = await run("curl", ["-sS", `http://127.0.0.1:${port}/n/4`]);
  assert.equal(c.stdout, "n=4");
  await stop(r);
});

test("serve() through node:http's own listen({ fd }): works in Node and Deno, refused in Bun, which ignores the fd", async () => {
  const { r, base } = await activated("guard");
  const out = await ready(r);
  if (RUNTIME === "bun") {
    // Bun's http.Server binds a random port on :: and reports listening
    // (oven-sh/bun#22559): the guard must stop it, not serve elsewhere.
    assert.equal(await r.exited(), 1);
    assert.match(
      out,
      /EADDRNOTAVAIL: The runtime was handed fd 3 "unknown" .* but listens on .*: it ignored the fd/,
    );
    return;
  }
  assert.match(out, /ready .*"activated":true/);
  assert.equal((await run("curl", ["-sS", `${base}/n/2`])).stdout, "n=2");
  await stop(r);
});

test("listenHttp() puts a node:http server on the activated socket", async () => {
  const { r, base } = await activated("node-http");
  assert.match(await ready(r), /ready \{"activated":true,"fd":3,"name":"unknown","addr":\{"transport":"tcp"/);
  const c = await run("curl", ["-sS", `${base}/who`, `${base}/n/8`]);
  assert.equal(c.stdout, "tcp 127.0.0.1n=8");
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "in"), "x".repeat(300000));
  const e = await run("curl", ["-sS", "--data-binary", `@${path.join(dir, "in")}`, `${base}/echo`]);
  assert.equal(e.stdout, "x".repeat(300000));
  // server.close() stops accepting in every runtime (in Bun: the relay too).
  r.signal("SIGTERM");
  assert.equal(await r.exited(), 0);
});

test("listenHttp() puts a node:https server on the activated socket, TLS included", async () => {
  const certs = await selfSigned();
  const env = { TLS_CERT: certs.cert, TLS_KEY: certs.key };
  const { r, port } = await activated("node-https", env, "https");
  assert.match(await ready(r), /ready \{"activated":true/);
  const resolve = ["--resolve", `localhost:${port}:127.0.0.1`];
  const c = await run("curl", [
    "-sS",
    "--cacert",
    certs.cert,
    ...resolve,
    `https://localhost:${port}/n/6`,
  ]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout, "n=6");
  const plain = await run("curl", [
    "-sS",
    "-m",
    "5",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    `http://127.0.0.1:${port}/n/1`,
  ]);
  assert.notEqual(plain.stdout, "200");
  await stop(r);
});
