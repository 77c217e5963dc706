// The README's code blocks, and the blocks in docs/ marked runnable, run as a
// reader pastes them: in a fresh project that installed the packed tarball,
// under the runtime each line names, through the real systemd-socket-activate
// where they serve a socket, checked against what the text says they print.
// A README claim is a test.
//
// Every fenced block in README.md carries a marker, an HTML comment before the
// fence (GitHub and JSR render nothing of it); in docs/ only marked blocks run:
//   <!-- test: file NAME... -->  saved as each NAME in the document's project
//   <!-- test: install -->       one command per runtime that makes a project
//   <!-- test: serve -->         one server per line: each is started, checked
//                                by the `client` blocks that follow, stopped
//                                with SIGTERM (exit 0; systemd-socket-activate
//                                --accept itself dies of the signal)
//   <!-- test: client -->        `$ command` lines and the output each prints,
//                                run against every server of the serve block
//   <!-- test: console -->       the same, run on its own; a command under
//                                systemd-socket-activate gets one connection,
//                                which starts what it activates
//   <!-- test: units -->         a unit file per block (`# /etc/systemd/system/
//                                NAME (Runtime)`): systemd-analyze verify, then
//                                ExecStart= from / under systemd-socket-activate
//                                serves the echo (READY=1 with Type=notify)
//   <!-- test: skip: REASON -->  not run; REASON is the skipped test's
//
// A line is for the runtime its comment names (`# Node`, `# Deno`, `# Bun`),
// else for the runtime it starts (node, npx or npm; deno; bun or bunx). Each
// host runtime runs the lines for itself, with its own binary as `node`,
// `deno` or `bun` (test/run.sh runs this file under every Node line, Deno and
// Bun), and skips the others, saying which host runs them.
//
// What the test changes, and nothing else: the registry (a local one serving
// the packed tarball, through NPM_CONFIG_REGISTRY, so the install lines run as
// written and offline; JSR cannot be served so, and is skipped), each port the
// text uses (a fresh one per server, bound on 127.0.0.1, `localhost` read as
// 127.0.0.1), and in unit files /srv/app/ (the project) and /usr/bin/RUNTIME
// (this runtime's binary).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import {
  exchange,
  expectedEcho,
  freePort,
  ROOT,
  type Run,
  RUNTIME,
  SSA,
  start,
  tempDir,
  until,
} from "./_util.ts";

type Rt = "node" | "deno" | "bun";
const KINDS = ["file", "install", "serve", "client", "console", "units", "skip"] as const;
type Kind = typeof KINDS[number];

interface Block {
  doc: string;
  /** 1-based line of the opening fence. */
  line: number;
  kind: string | undefined;
  args: string;
  lang: string;
  body: string;
}

/** The fenced blocks of a Markdown file, each with the marker before it. */
function codeBlocks(doc: string): Block[] {
  const lines = fs.readFileSync(path.join(ROOT, doc), "utf8").split("\n");
  const out: Block[] = [];
  let marker: { kind: string; args: string } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!--\s*test:\s*([\w-]+):?\s*([\s\S]*?)\s*-->\s*$/.exec(lines[i]);
    if (m) {
      marker = { kind: m[1], args: m[2] };
      continue;
    }
    const fence = /^\s*(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]);
    if (fence) {
      const start = i;
      const body: string[] = [];
      for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence[1]); i++) body.push(lines[i]);
      out.push({
        doc,
        line: start + 1,
        kind: marker?.kind,
        args: marker?.args ?? "",
        lang: fence[2],
        body: body.join("\n") + "\n",
      });
      marker = undefined;
      continue;
    }
    if (lines[i].trim() !== "") marker = undefined;
  }
  return out;
}

/** The runtime a command line is for: its comment's, else the one it starts. */
function runtimeOf(line: string): Rt | undefined {
  const tag = /#\s*(Node|Deno|Bun)\b/.exec(line);
  if (tag) return tag[1].toLowerCase() as Rt;
  const words = line.split(" #")[0].split(/\s+/);
  if (words.includes("deno")) return "deno";
  if (words.includes("bun") || words.includes("bunx")) return "bun";
  if (words.some((w) => w === "node" || w === "npx" || w === "npm")) return "node";
  return undefined;
}

const commands = (b: Block) => b.body.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));

/** `$ command` lines of a console block, each with the output it prints. */
function transcript(b: Block): { cmd: string; out: string }[] {
  const steps: { cmd: string; out: string[] }[] = [];
  for (const l of b.body.replace(/\n$/, "").split("\n")) {
    if (l.startsWith("$ ")) steps.push({ cmd: l.slice(2), out: [] });
    else if (steps.length > 0) steps[steps.length - 1].out.push(l);
  }
  return steps.map((s) => ({ cmd: s.cmd, out: s.out.join("\n") }));
}

// The ports the docs use; each becomes a fresh port when a block runs.
const DOC_PORTS = ["8888", "8080", "8443", "9000", "2000"];
type Ports = Map<string, number>;

async function freshPorts(): Promise<Ports> {
  const m: Ports = new Map();
  for (const p of DOC_PORTS) m.set(p, await freePort());
  return m;
}

/** The text with its ports fresh and bound on loopback, and unit paths on this machine. */
function localize(text: string, ports: Ports, dir?: string): string {
  let t = text.replace(/\blocalhost\b/g, "127.0.0.1")
    .replace(
      /(-l |--listen |ListenStream=|ListenDatagram=)(\d+)(?=\s|$)/gm,
      (_, pre, p) => `${pre}127.0.0.1:${p}`,
    )
    .replace(/\b\d{4}\b/g, (p) => String(ports.get(p) ?? p));
  if (dir !== undefined) {
    t = t.replaceAll("/srv/app/", `${dir}/`).replaceAll(`/usr/bin/${RUNTIME} `, `${bin}/${RUNTIME} `);
  }
  return t;
}

const g = globalThis as { Deno?: { execPath(): string } };
const runtimeBin = RUNTIME === "deno" ? g.Deno!.execPath() : process.execPath;
const otherHost = (rt: Rt) => `a ${rt} line: ${rt === "node" ? "node --test" : `${rt} test`} runs it`;
// Node strips types from 22.18 on (process.features.typescript).
const stripsTypes = RUNTIME === "node" &&
  (process as unknown as { features: { typescript?: string } }).features.typescript !== undefined;

const DOCS = [
  "README.md",
  ...fs.readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`),
];
const README = codeBlocks("README.md");

let work = "";
/** This runtime's binary under the name the docs type (a symlink), first in PATH. */
let bin = "";
let tarball = "";
let registry: http.Server | undefined;
let env: Record<string, string> = {};

before(async () => {
  assert.ok(
    fs.existsSync(path.join(ROOT, "dist", "cli.cjs")),
    "no dist/: build it first (node_modules/.bin/tsup)",
  );
  work = tempDir();
  execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", work], {
    cwd: ROOT,
    stdio: "ignore",
  });
  tarball = path.join(work, fs.readdirSync(work).find((f) => f.endsWith(".tgz"))!);
  registry = await serveRegistry(tarball);
  const url = `http://127.0.0.1:${(registry.address() as net.AddressInfo).port}/`;
  bin = path.join(work, "bin");
  fs.mkdirSync(bin);
  fs.symlinkSync(runtimeBin, path.join(bin, RUNTIME));
  const home = path.join(work, "home");
  fs.mkdirSync(home);
  env = {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: home,
    NO_COLOR: "1",
    NPM_CONFIG_REGISTRY: url,
    BUN_CONFIG_REGISTRY: url,
    npm_config_cache: path.join(work, "npm-cache"),
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
    BUN_INSTALL_CACHE_DIR: path.join(work, "bun-cache"),
    DENO_DIR: path.join(work, "deno-dir"),
    DENO_NO_UPDATE_CHECK: "1",
  };
});

after(async () => {
  await new Promise((r) => registry ? registry.close(r) : r(undefined));
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A registry of one package: the packument and the tarball, on 127.0.0.1. */
async function serveRegistry(tgz: string): Promise<http.Server> {
  const bytes = fs.readFileSync(tgz);
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
  const server = http.createServer((req, res) => {
    const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const file = `/${pkg.name}/-/${pkg.name}-${pkg.version}.tgz`;
    if (req.url === `/${pkg.name}`) {
      const { devDependencies: _, scripts: __, ...manifest } = pkg;
      const version = {
        ...manifest,
        dist: {
          tarball: base + file,
          integrity: `sha512-${crypto.createHash("sha512").update(bytes).digest("base64")}`,
          shasum: crypto.createHash("sha1").update(bytes).digest("hex"),
        },
      };
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({
        name: pkg.name,
        "dist-tags": { latest: pkg.version },
        versions: { [pkg.version]: version },
      }));
    } else if (req.url === file) {
      res.setHeader("content-type", "application/octet-stream");
      res.end(bytes);
    } else {
      res.statusCode = 404;
      res.end("{}");
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return server;
}

/** Runs a shell line in `cwd` and resolves with its exit status and output; bounded. */
async function sh(
  line: string,
  cwd: string,
  ms = 20000,
): Promise<{ status: number | string; out: string; err: string }> {
  const r = start(["sh", "-c", line], env, cwd);
  const status = await r.exited(ms);
  return { status, out: r.stdout(), err: r.stderr() };
}

const JSR_SKIP = "JSR: the test's registry serves npm packages only, and jsr.io is not reachable offline";
const installLines = () =>
  README.filter((b) => b.kind === "install").flatMap(commands).filter((l) => runtimeOf(l) === RUNTIME);

// Two fresh projects, made as the README's Quick start makes them (its install
// line for this runtime): the README's own, and one for docs/, which build on
// the README's files.
const projects = new Map<string, Promise<string>>();
function project(doc: string): Promise<string> {
  const key = doc === "README.md" ? doc : "docs";
  if (!projects.has(key)) {
    projects.set(
      key,
      (async () => {
        const dir = path.join(work, `project-${projects.size}`);
        fs.mkdirSync(dir);
        for (const line of installLines().filter((l) => !l.includes("jsr:"))) {
          const r = await sh(line, dir, 120000);
          assert.equal(r.status, 0, `${line}\n${r.out}${r.err}`);
        }
        if (key === "docs") {
          for (const b of README.filter((b) => b.kind === "file")) {
            for (const name of b.args.split(/\s+/)) fs.writeFileSync(path.join(dir, name), b.body);
          }
        }
        return dir;
      })(),
    );
  }
  return projects.get(key)!;
}

/** The ports something listens on (TCP) or receives on (UDP) on this machine, from /proc/net. */
function listeningPorts(): Set<number> {
  const ports = new Set<number>();
  const tables = { tcp: "0A", tcp6: "0A", udp: "07", udp6: "07" }; // TCP_LISTEN, TCP_CLOSE (unconnected)
  for (const [table, state] of Object.entries(tables)) {
    for (const row of fs.readFileSync(`/proc/net/${table}`, "utf8").split("\n").slice(1)) {
      const cols = row.trim().split(/\s+/);
      if (cols[3] === state) ports.add(parseInt(cols[1].split(":").pop()!, 16));
    }
  }
  return ports;
}

/** Waits until something listens on `port`, without connecting (which would activate it). */
async function listening(run: Run, port: number): Promise<void> {
  await until(
    () => listeningPorts().has(port) || run.child.exitCode !== null,
    15000,
    () => `a listener on port ${port}; stderr:\n${run.stderr()}`,
  );
  assert.equal(run.child.exitCode, null, `exited before listening:\n${run.stdout()}${run.stderr()}`);
}

const firstPort = (line: string) => Number(/127\.0\.0\.1:(\d+)/.exec(line)?.[1]);
// What systemd-socket-activate itself says on stderr.
const ssaOwn = /^(Listening on|Communication attempt|Execing|Connection from|Spawned|Child \d+ died) /;

async function runTranscript(b: Block, dir: string, ports: Ports): Promise<void> {
  for (const step of transcript(b)) {
    const cmd = localize(step.cmd, ports, dir);
    let out: string;
    if (cmd.startsWith("systemd-socket-activate ")) {
      // It execs the program on the first connection: make one, then wait.
      const run = start(["sh", "-c", `exec ${cmd}`], env, dir);
      await listening(run, firstPort(cmd));
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(firstPort(cmd), "127.0.0.1", () => {
          s.end();
          resolve();
        });
        s.on("error", reject);
      });
      assert.equal(await run.exited(20000), 0, `${cmd}\n${run.stdout()}${run.stderr()}`);
      out = run.stdout();
    } else {
      const r = await sh(cmd, dir);
      assert.equal(r.status, 0, `${cmd}\n${r.out}${r.err}`);
      out = r.out;
    }
    assert.equal(out.replace(/\n$/, ""), localize(step.out, ports, dir), `what \`${step.cmd}\` prints`);
  }
}

const where = (b: Block) => `${b.doc}:${b.line}`;

for (const doc of DOCS) {
  const blocks = doc === "README.md" ? README : codeBlocks(doc);
  blocks.forEach((b, i) => {
    if (b.kind === undefined) return;
    const kind = b.kind as Kind;
    if (kind === "skip") {
      test(`${where(b)}: \`${b.body.split("\n")[0]}\``, { skip: b.args }, () => {});
    } else if (kind === "install") {
      for (const line of commands(b)) {
        const rt = runtimeOf(line);
        const skip = line.includes("jsr:") ? JSR_SKIP : rt !== RUNTIME ? otherHost(rt!) : false;
        test(`${where(b)}: \`${line}\` installs the package`, { skip }, async () => {
          const dir = await project(doc);
          const pkg = path.join(dir, "node_modules", "socket-activate", "package.json");
          assert.ok(fs.existsSync(pkg), `no ${pkg} after \`${line}\``);
          const version = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).version;
          assert.equal(JSON.parse(fs.readFileSync(pkg, "utf8")).version, version);
        });
      }
    } else if (kind === "file") {
      test(`${where(b)}: the block saved as ${b.args}`, async () => {
        const dir = await project(doc);
        for (const name of b.args.split(/\s+/)) fs.writeFileSync(path.join(dir, name), b.body);
      });
    } else if (kind === "serve") {
      const clients: Block[] = [];
      for (const next of blocks.slice(i + 1)) {
        if (next.kind === "serve") break;
        if (next.kind === "client") clients.push(next);
      }
      for (const line of commands(b)) {
        const rt = runtimeOf(line);
        if (rt === undefined) {
          test(`${where(b)}: \`${line}\` says which runtime it is for`, () => assert.fail("no runtime"));
          continue;
        }
        const types = /\.m?ts\b/.test(line.split(" #")[0]) && rt === "node" && RUNTIME === "node" &&
          !stripsTypes;
        const skip = rt !== RUNTIME
          ? otherHost(rt)
          : types
          ? `Node ${process.versions.node} does not run TypeScript as it is`
          : clients.length === 0
          ? "no client block follows"
          : false;
        test(
          `${where(b)}: \`${line}\` serves what ${clients.map(where).join(", ")} says`,
          { skip },
          async () => {
            const dir = await project(doc);
            const ports = await freshPorts();
            const cmd = localize(line, ports);
            const run = start(["sh", "-c", `exec ${cmd}`], env, dir);
            try {
              await listening(run, firstPort(cmd));
              for (const c of clients) await runTranscript(c, dir, ports);
            } finally {
              if (run.child.exitCode === null) run.signal("SIGTERM");
            }
            // systemd-socket-activate --accept itself dies of SIGTERM (its children have exited).
            const stopped = /^systemd-socket-activate .*--accept/.test(cmd) ? [0, 143, "SIGTERM"] : [0];
            const status = await run.exited();
            assert.ok(
              stopped.includes(status),
              `${cmd}: SIGTERM, then ${status}\n${run.stdout()}${run.stderr()}`,
            );
            if (cmd.startsWith("systemd-socket-activate ")) {
              const extra = run.stderr().split("\n").filter((l) => l && !ssaOwn.test(l));
              assert.deepEqual(
                extra,
                [],
                `${cmd}: nothing on stderr but systemd-socket-activate's own lines`,
              );
            }
          },
        );
      }
    } else if (kind === "console") {
      const rt = transcript(b).map((s) => runtimeOf(s.cmd)).find((r) => r !== undefined);
      const skip = rt !== undefined && rt !== RUNTIME ? otherHost(rt) : false;
      test(`${where(b)}: \`${transcript(b)[0]?.cmd}\` prints what the text shows`, { skip }, async () => {
        await runTranscript(b, await project(doc), await freshPorts());
      });
    } else if (kind === "units" && blocks.findIndex((x) => x.kind === "units") === i) {
      unitTests(doc, blocks.filter((x) => x.kind === "units"));
    } else if (!KINDS.includes(kind)) {
      test(`${where(b)}: a known marker`, () => assert.fail(`unknown marker "${b.kind}"`));
    }
  });
}

interface Unit {
  file: string;
  runtime: Rt | undefined;
  body: string;
}

/** The unit files of a document: verified, and each service's ExecStart= run, in this runtime. */
function unitTests(doc: string, blocks: Block[]): void {
  const units: Unit[] = blocks.map((b) => {
    const m = /^# \/etc\/systemd\/system\/(\S+)(?: \((\w+)\))?\n/.exec(b.body);
    assert.ok(m, `${where(b)}: a unit block starts with "# /etc/systemd/system/NAME (Runtime)"`);
    return { file: m[1], runtime: m[2]?.toLowerCase() as Rt | undefined, body: b.body };
  });
  for (const rt of ["node", "deno", "bun"] as const) {
    const service = units.find((u) => u.runtime === rt && u.file.endsWith(".service"));
    if (service === undefined) continue;
    const name =
      `${doc}: the ${rt} unit files pass systemd-analyze verify, and ExecStart= from / serves the echo`;
    test(name, { skip: rt !== RUNTIME ? otherHost(rt) : false }, async () => {
      const dir = await project(doc);
      const ports = await freshPorts();
      const unitDir = path.join(work, `units-${doc.replace(/\W/g, "_")}`);
      fs.mkdirSync(unitDir, { recursive: true });
      const files = units.filter((u) => u.runtime === undefined || u === service);
      for (const u of files) fs.writeFileSync(path.join(unitDir, u.file), localize(u.body, ports, dir));
      const verify = start(
        ["systemd-analyze", "verify", ...files.map((u) => path.join(unitDir, u.file))],
        env,
      );
      assert.equal(await verify.exited(30000), 0, verify.stderr());

      const text = localize(service.body, ports, dir);
      const socket = localize(units.find((u) => u.file.endsWith(".socket"))!.body, ports, dir);
      const listenOn = /^ListenStream=(\S+)$/m.exec(socket)![1];
      const exec = /^ExecStart=(.*)$/m.exec(text)![1].split(" ");
      const notify = /^Type=notify$/m.test(text);
      const args = ["-l", listenOn];
      let recv: Run | undefined;
      if (notify) {
        const address = `@sa-readme-${process.pid}-${Date.now()}`;
        recv = start(["/usr/bin/python3", path.join(ROOT, "test", "_notify_receiver.py"), address, "30"]);
        await until(() => recv!.stdout().startsWith("ready"), 10000, "the notify receiver");
        args.push("-E", `NOTIFY_SOCKET=${address}`);
      }
      // From /, as systemd starts a service.
      const run = start([SSA, ...args, ...exec], { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" }, "/");
      try {
        const port = Number(listenOn.split(":").pop());
        await listening(run, port);
        const conn = net.connect(port, "127.0.0.1");
        const data = new TextEncoder().encode("from the unit\n");
        assert.deepEqual(await exchange(conn, data), expectedEcho(data, true));
        if (recv) await until(() => recv!.stdout().includes("READY=1"), 10000, "READY=1");
      } finally {
        if (run.child.exitCode === null) run.signal("SIGTERM");
      }
      try {
        assert.equal(await run.exited(), 0, run.stderr());
      } finally {
        recv?.child.kill("SIGKILL");
      }
      assert.doesNotMatch(run.stderr(), /cannot|warn|error/i, "no warning with the unit's permissions");
    });
  }
}

// The text itself.

test("README.md: every code block says how it is tested (a <!-- test: ... --> marker before it)", () => {
  const unmarked = README.filter((b) => b.kind === undefined).map(where);
  assert.deepEqual(unmarked, []);
});

test("README.md has the article's unit pair for Node, Deno and Bun", () => {
  const files = README.filter((b) => b.kind === "units").map((b) => b.body.split("\n")[0]);
  assert.ok(files.includes("# /etc/systemd/system/echo.socket"), files.join("\n"));
  for (const rt of ["Node", "Deno", "Bun"]) {
    assert.ok(files.includes(`# /etc/systemd/system/echo.service (${rt})`), `no ${rt} service: ${files}`);
  }
});

test("README.md is at most 16 KiB, for a newcomer; the rest is in docs/", () => {
  const size = fs.statSync(path.join(ROOT, "README.md")).size;
  assert.ok(size <= 16384, `README.md is ${size} bytes`);
});

test("README.md and docs/*.md: no table wider than 120 columns", () => {
  const wide: string[] = [];
  for (const doc of DOCS) {
    fs.readFileSync(path.join(ROOT, doc), "utf8").split("\n").forEach((l, i) => {
      if (l.startsWith("|") && l.length > 120) wide.push(`${doc}:${i + 1} (${l.length} columns)`);
    });
  }
  assert.deepEqual(wide, []);
});

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
  return heading.toLowerCase().replace(/[`*_]/g, "").replace(/[^\p{L}\p{N} -]/gu, "").replace(/ /g, "-");
}

test("README.md and docs/*.md: every relative link and #anchor leads somewhere", () => {
  const anchors = (file: string) =>
    new Set(
      fs.readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "").split("\n")
        .filter((l) => /^#{1,6} /.test(l)).map((l) => slug(l.replace(/^#+ /, ""))),
    );
  const broken: string[] = [];
  for (const doc of DOCS) {
    const text = fs.readFileSync(path.join(ROOT, doc), "utf8").replace(/```[\s\S]*?```/g, "");
    const targets = [
      ...[...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]),
      ...[...text.matchAll(/^\[[^\]]+\]: (\S+)/gm)].map((m) => m[1]),
    ];
    for (const t of targets.filter((t) => !/^[a-z]+:/.test(t))) {
      const [file, anchor] = t.split("#");
      const target = file === ""
        ? path.join(ROOT, doc)
        : path.resolve(path.dirname(path.join(ROOT, doc)), file);
      if (!fs.existsSync(target)) broken.push(`${doc}: ${t} (no such file)`);
      else if (anchor !== undefined && !anchors(target).has(anchor)) {
        broken.push(`${doc}: ${t} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
});
