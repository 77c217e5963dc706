// The reload with no gap under a real systemd (src/_reload.ts, issue 19 item
// 6), one boot for the file: the unit `socket-activate unit --reload` writes,
// a connection held open on the old process, `systemctl reload`, and a
// successor that fails. In the runtime running this file.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  cliCommand,
  connect,
  fixtureCommand,
  freePort,
  NODE_FFI,
  ROOT,
  type Run,
  RUNTIME,
  SSA,
  start,
  tempDir,
  until,
} from "./_util.ts";

const FIXTURE = path.join(ROOT, "test", "fixtures", "reload.ts");

/** Why a real systemd cannot boot here (test/real-systemd), or undefined when it can. */
function noSystemd(): string | undefined {
  if (RUNTIME === "node" && process.versions.node.startsWith("24.")) {
    return "Node 24 notifies as Node 22 does (systemd-notify), which this file runs under (CI time)";
  }
  if (process.getuid!() !== 0) return "booting systemd in private namespaces needs root";
  if (!fs.existsSync("/lib/systemd/systemd")) return "no /lib/systemd/systemd (Debian package systemd)";
  if (!fs.existsSync("/sys/fs/cgroup/unified") || !fs.existsSync("/sys/fs/cgroup/systemd")) {
    return "test/real-systemd/boot.sh needs the hybrid cgroup layout, which this machine does not mount";
  }
  for (const cmd of ["unshare", "nsenter", "script", "pgrep"]) {
    if (spawnSync("sh", ["-c", `command -v ${cmd}`]).status !== 0) return `no ${cmd} on PATH`;
  }
  return undefined;
}

/** Polls `get` until `ok` holds of its value (bounded); the value. */
async function pollUntil<T>(
  get: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
  what: () => string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A connection that collects what comes back. */
async function client(port: number): Promise<{ socket: net.Socket; got: () => string; at: number }> {
  const at = performance.now();
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
  let text = "";
  socket.on("data", (d: Buffer) => (text += d));
  socket.on("error", () => {});
  return { socket, got: () => text, at };
}

/** Connects and waits for the greeting: the greeter's PID and the milliseconds from connect() to it. */
async function greeting(port: number): Promise<{ pid: string; ms: number }> {
  const c = await client(port);
  await until(() => c.got().includes("\n"), 10000, "a greeting");
  const ms = performance.now() - c.at;
  c.socket.destroy();
  return { pid: /^PID (\d+)\n/.exec(c.got())![1], ms };
}

test(
  "under a real systemd, the unit of `unit --reload` (and the echo server in one like it): `systemctl reload` with a connection held open on the old " +
    "process hands the service to a successor (MainPID changes, new connections greeted at once, the held one " +
    "finishes on the old process, which exits; the successor pings the watchdog); a successor that fails leaves " +
    "the old one serving, with a STATUS= saying so" +
    (RUNTIME === "node" && !NODE_FFI ? "; as User=nobody, MAINPID= from systemd-notify's PID" : ""),
  { skip: noSystemd() ?? false, timeout: 120_000 },
  async () => {
    const dir = tempDir();
    const port = await freePort();
    const units = path.join(dir, "units");
    fs.mkdirSync(units);
    const err = path.join(dir, "err.log");
    const fail = path.join(dir, "fail");
    const written = start(
      [
        ...cliCommand(),
        "unit",
        "app",
        ...["-l", `127.0.0.1:${port}`, "--reload", "--watchdog", "2", "-E", `RELOAD_FAIL=${fail}`],
        "--",
        // Deno with what `unit` adds, not -A (the fixture reads RELOAD_FAIL's file).
        ...(RUNTIME === "deno"
          ? [
            (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath(),
            "run",
            "--allow-read",
            FIXTURE,
          ]
          : fixtureCommand("reload.ts")),
      ],
      {},
      ROOT,
    );
    assert.equal(await written.exited(30000), 0, written.stderr());
    const [socketUnit, service] = written.stdout().split(/^# app\.service\n/m);
    assert.match(service, /^ExecReload=kill -HUP \$MAINPID$/m);
    // Node 22 and 24 send through systemd-notify; as root its datagrams carry the main PID all the same.
    assert.equal(/^NotifyAccess=all$/m.test(service), RUNTIME === "node" && !NODE_FFI, service);
    if (RUNTIME === "deno") assert.match(service, / --allow-run /);
    fs.writeFileSync(path.join(units, "app.socket"), socketUnit.replace(/^# app\.socket\n/, ""));
    fs.writeFileSync(
      path.join(units, "app.service"),
      service +
        [
          `Environment=PATH=${process.env.PATH} HOME=${process.env.HOME}`,
          `StandardError=append:${err}`,
          "",
        ].join("\n"),
    );
    // The echo server (`socket-activate` with no arguments) in a unit like it.
    const echoPort = await freePort();
    fs.writeFileSync(path.join(units, "echo.socket"), `[Socket]\nListenStream=127.0.0.1:${echoPort}\n`);
    fs.writeFileSync(
      path.join(units, "echo.service"),
      fs.readFileSync(path.join(units, "app.service"), "utf8")
        .replace(/^Requires=app\.socket\nAfter=app\.socket$/m, "Requires=echo.socket\nAfter=echo.socket")
        .replace(/^(Environment=RELOAD_FAIL=|WatchdogSec=).*\n/gm, "")
        .replace(/^ExecStart=.*$/m, `ExecStart=${cliCommand().join(" ")}`),
    );
    // Node 22 and 24 as another user than root: MAINPID= comes from systemd-notify's PID, not the main one
    // (NotifyAccess=all). The program and node go to a directory nobody may read (CI clones into a 0700 one).
    const asNobody = RUNTIME === "node" && !NODE_FFI;
    const nobodyPort = await freePort();
    if (asNobody) {
      fs.chmodSync(dir, 0o755);
      fs.cpSync(path.join(ROOT, "dist"), path.join(dir, "pkg"), { recursive: true });
      fs.copyFileSync(process.execPath, path.join(dir, "node"));
      fs.chmodSync(path.join(dir, "node"), 0o755);
      fs.writeFileSync(
        path.join(dir, "nobody.cjs"),
        `const sa = require(${JSON.stringify(path.join(dir, "pkg", "node.cjs"))});
(async () => {
  const greeting = new TextEncoder().encode("PID " + process.pid + "\\n");
  await sa.listen({}, async (conn) => { await conn.write(greeting); conn.close(); });
  await sa.ready();
})();
`,
      );
      fs.writeFileSync(path.join(units, "nobody.socket"), `[Socket]\nListenStream=127.0.0.1:${nobodyPort}\n`);
      fs.writeFileSync(
        path.join(units, "nobody.service"),
        [
          "[Unit]",
          "Requires=nobody.socket",
          "[Service]",
          "Type=notify",
          "NotifyAccess=all",
          "User=nobody",
          "ExecReload=kill -HUP $MAINPID",
          `ExecStart=${dir}/node ${dir}/nobody.cjs`,
          `StandardError=append:${err}`,
          "",
        ].join("\n"),
      );
    }
    const wants = `app.socket echo.socket${asNobody ? " nobody.socket" : ""}`;
    fs.writeFileSync(path.join(units, "reload.target"), `[Unit]\nWants=${wants}\n`);
    const run = start([
      "bash",
      path.join(ROOT, "test", "real-systemd", "run-units.sh"),
      units,
      "reload.target",
      "--",
      "bash",
      "-c",
      `printf %s "$SYSTEMCTL" > ${dir}/systemctl; while [ ! -e ${dir}/done ]; do sleep 0.05; done`,
    ]);
    const log = () => fs.existsSync(err) ? fs.readFileSync(err, "utf8") : "";
    try {
      await until(() => fs.existsSync(`${dir}/systemctl`), 30000, () => `systemd to boot: ${run.stdout()}`);
      const systemctl = fs.readFileSync(`${dir}/systemctl`, "utf8").split(" ");
      const sysctl = async (...args: string[]) => {
        const r = start([...systemctl, ...args]);
        assert.equal(await r.exited(30000), 0, `systemctl ${args.join(" ")}: ${r.stderr()}\n${log()}`);
        return r.stdout().trim();
      };
      const show = (p: string) => sysctl("show", "-P", p, "app.service");

      const held = await client(port);
      await until(() => held.got().includes("\n"), 30000, () => `the first greeting:\n${log()}`);
      const old = /^PID (\d+)\n/.exec(held.got())![1];
      assert.equal(await show("MainPID"), old);

      await sysctl("reload", "app.service");
      const main = await pollUntil(
        () => show("MainPID"),
        (p) => p !== old,
        30000,
        () => `MainPID to change:\n${log()}`,
      );
      // The old process may still take one that raced its close; the successor takes the rest.
      const first = await greeting(port);
      assert.ok([old, main].includes(first.pid), `greeted by ${first.pid}, not ${old} or ${main}`);
      const next = await greeting(port);
      assert.equal(next.pid, main, log());
      assert.ok(next.ms < 2000, `greeted after ${next.ms} ms`);
      assert.equal(await sysctl("is-active", "app.service"), "active");

      // The held connection is still the old process's.
      held.socket.write("still here\n");
      await until(() => held.got().includes("STILL HERE\n"), 10000, () => `the held echo:\n${log()}`);
      held.socket.end();
      // Gone from the service's PID namespace (systemd reaped it).
      const gone = start([
        ...systemctl.slice(0, -1),
        "sh",
        "-c",
        `for i in $(seq 300); do kill -0 ${old} 2>/dev/null || exit 0; sleep 0.05; done; exit 1`,
      ]);
      assert.equal(await gone.exited(30000), 0, `PID ${old} to exit:\n${log()}`);
      // The successor is the main process now: systemd takes its watchdog pings (a main PID's only).
      const pinged = await show("WatchdogTimestampMonotonic");
      await pollUntil(
        () => show("WatchdogTimestampMonotonic"),
        (t) => t !== pinged,
        10000,
        () => `a ping:\n${log()}`,
      );
      assert.equal(await show("MainPID"), main, log());
      assert.equal(await show("NRestarts"), "0", log());
      assert.match(log(), new RegExp(`SIGHUP: reloaded: PID ${main} is ready and serves; PID ${old} drains`));

      // A successor that fails before it is ready: the old one keeps serving, and says so.
      fs.writeFileSync(fail, "");
      await sysctl("reload", "app.service");
      const statusText = await pollUntil(
        () => show("StatusText"),
        (t) => /Reload failed/.test(t),
        30000,
        () => `STATUS=Reload failed:\n${log()}`,
      );
      assert.match(
        statusText,
        new RegExp(
          `^Reload failed: the successor, PID \\d+, exited before it was ready \\(its status is in the service's log\\); PID ${main} keeps serving$`,
        ),
      );
      assert.equal(await show("MainPID"), main);
      assert.equal((await greeting(port)).pid, main);
      assert.equal(await sysctl("is-active", "app.service"), "active");

      // The echo server: the same handover, the held connection echoed by the old process.
      const echoHeld = await client(echoPort);
      const ohai = "OHAI! systemd socket: true\n";
      await until(() => echoHeld.got() === ohai, 30000, () => `the echo server's greeting:\n${log()}`);
      const echoOld = await sysctl("show", "-P", "MainPID", "echo.service");
      await sysctl("reload", "echo.service");
      await pollUntil(
        () => sysctl("show", "-P", "MainPID", "echo.service"),
        (p) => p !== echoOld,
        30000,
        () => `the echo server's MainPID to change:\n${log()}`,
      );
      const echoNew = await client(echoPort);
      await until(() => echoNew.got() === ohai, 10000, () => `a greeting after the reload:\n${log()}`);
      echoNew.socket.destroy();
      echoHeld.socket.write("bye\n");
      await until(() => echoHeld.got() === `${ohai}BYE\n`, 10000, () => `the held echo:\n${log()}`);
      echoHeld.socket.destroy();
      assert.equal(await sysctl("is-active", "echo.service"), "active");

      if (asNobody) {
        const before = (await greeting(nobodyPort)).pid;
        await sysctl("reload", "nobody.service");
        const after = await pollUntil(
          () => sysctl("show", "-P", "MainPID", "nobody.service"),
          (p) => p !== before,
          30000,
          () => `nobody.service's MainPID to change:\n${log()}`,
        );
        assert.equal((await greeting(nobodyPort)).pid, after, log());
        assert.equal(await sysctl("show", "-P", "User", "nobody.service"), "nobody");
      }

      await sysctl("stop", "app.service");
      assert.equal(
        await show("Result"),
        "success",
        `${log()}\n${await show("ExecMainStatus")} ${await show("ExecMainCode")} ${await show(
          "ExecMainPID",
        )}\n${fs.readFileSync(path.join(units, "boot.log"), "utf8").slice(-3000)}`,
      );
    } finally {
      fs.writeFileSync(`${dir}/done`, "");
      await run.exited(30000).catch(() => {});
      try {
        const unshare = fs.readFileSync(path.join(units, ".unshare"), "utf8").trim();
        const init = fs.readFileSync(`/proc/${unshare}/task/${unshare}/children`, "utf8").trim();
        if (init !== "") process.kill(Number(init.split(" ")[0]), "SIGKILL");
      } catch { /* shut down as it should */ }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  },
);

test(
  "SIGHUP is left alone where no reload can hand over: not activated by a manager that listens (no NOTIFY_SOCKET), " +
    "under `socket-activate run` (SOCKET_ACTIVATE_RUN=1), with `signals: false`; a program's own handler keeps it",
  {
    skip: RUNTIME === "node"
      ? "Bun runs Node's signal handling (runtimes/node/runtime.ts onDefaultSignal), tested there (CI time)"
      : false,
  },
  async () => {
    const address = `@sa-reload-${process.pid}-${Date.now()}`;
    const receiver = start([
      "/usr/bin/python3",
      path.join(ROOT, "test", "_notify_receiver.py"),
      address,
      "30",
    ]);
    const cases: [string, string[], number | string][] = [
      ["no NOTIFY_SOCKET", [], "SIGHUP"],
      ["under run", ["-E", `NOTIFY_SOCKET=${address}`, "-E", "SOCKET_ACTIVATE_RUN=1"], "SIGHUP"],
      ["signals: false", ["-E", `NOTIFY_SOCKET=${address}`, "-E", "SIGNALS_OFF=1"], "SIGHUP"],
      ["its own handler", ["-E", `NOTIFY_SOCKET=${address}`, "-E", "OWN_SIGHUP=1"], 4],
    ];
    await until(() => receiver.stdout().startsWith("ready\n"), 10000, "the notify receiver");
    const runs: Run[] = [];
    try {
      for (const [, env] of cases) {
        const port = await freePort();
        runs.push(start([SSA, "-l", `127.0.0.1:${port}`, ...env, ...fixtureCommand("reload.ts")]));
        (await connect({ port })).destroy(); // systemd-socket-activate starts the program on the first one
      }
      for (const r of runs) await r.stderrMatch(/ready/, 30000);
      for (const r of runs) r.signal("SIGHUP");
      for (const [i, [what, , want]] of cases.entries()) {
        assert.equal(await runs[i].exited(), want, `${what}: ${runs[i].stderr()}`);
        assert.doesNotMatch(runs[i].stderr(), /reloading/, what);
      }
    } finally {
      for (const r of runs) r.child.kill("SIGKILL");
      receiver.child.kill("SIGKILL");
    }
  },
);

test(
  "a program that never sends READY=1 hands over once its successor listens; a successor not ready within " +
    "SOCKET_ACTIVATE_RELOAD_TIMEOUT is killed and the old process keeps serving (systemd-socket-activate and a " +
    "notify receiver)",
  {
    // Bun starts in tens of milliseconds: the timeout can be short.
    skip: RUNTIME !== "bun"
      ? "runtime-neutral code (src/_reload.ts, src/_successor.ts), run in Bun (CI time)"
      : false,
  },
  async () => {
    const dir = tempDir();
    const hang = path.join(dir, "hang");
    const address = `@sa-reload-${process.pid}-${Date.now()}-2`;
    const receiver = start([
      "/usr/bin/python3",
      path.join(ROOT, "test", "_notify_receiver.py"),
      address,
      "30",
    ]);
    const port = await freePort();
    let successor = 0;
    await until(() => receiver.stdout().startsWith("ready\n"), 10000, "the notify receiver");
    const r = start([
      SSA,
      "-l",
      `127.0.0.1:${port}`,
      ...["-E", `NOTIFY_SOCKET=${address}`, "-E", "NO_READY=1", "-E", `RELOAD_HANG=${hang}`],
      ...["-E", "SOCKET_ACTIVATE_RELOAD_TIMEOUT=1"],
      ...fixtureCommand("reload.ts"),
    ]);
    try {
      (await connect({ port })).destroy();
      await r.stderrMatch(/ready/, 30000);
      fs.writeFileSync(hang, "");
      r.signal("SIGHUP");
      await r.stderrMatch(
        /reload failed: the successor, PID \d+, was not ready after 1 s \(killed\); PID \d+ keeps serving/,
        30000,
      );
      fs.rmSync(hang);
      r.signal("SIGHUP");
      await r.stderrMatch(/SIGHUP: reloaded: PID \d+ is ready/, 30000);
      successor = Number(/SIGHUP: reloaded: PID (\d+)/.exec(r.stderr())![1]);
      // Its "exit", not exited()'s "close": the successor holds the stderr pipe.
      const code = r.child.exitCode ?? await new Promise((res) => r.child.once("exit", res));
      assert.equal(code, 0, r.stderr());
      const c = await connect({ port });
      const greeting = await new Promise<string>((res) => c.once("data", (d) => res(String(d))));
      c.destroy();
      assert.equal(greeting, `PID ${successor}\n`);
      const sent = receiver.stdout().split("\n").slice(1).filter(Boolean).map((l) => JSON.parse(l).data);
      assert.ok(sent.includes(`MAINPID=${successor}\nREADY=1`), sent.join(" | "));
      assert.ok(!sent.includes("READY=1\nMAINPID"), "no READY=1 of the program's own");
    } finally {
      r.child.kill("SIGKILL");
      if (successor > 0) process.kill(successor, "SIGKILL");
      receiver.child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
