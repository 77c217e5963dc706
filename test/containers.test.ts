// The server in a container: podman passes the sockets into a --network=none
// container (LISTEN_FDS and LISTEN_FDNAMES kept, LISTEN_PID rewritten to 1),
// where the runtime running this file serves them from a root file system
// holding only its binary and libraries (test/_podman.ts). Also what a root
// file system without a shell, or a wrapper between the container's PID 1
// and the server, does to activation. Few cases: each container start costs
// about a second here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import {
  containerRuntime,
  fullRootfs,
  HOST_RUNTIME,
  minimalRootfs,
  NO_PODMAN,
  podman,
  podrun,
  runtimeMounts,
} from "./_podman.ts";
import {
  cliCommand,
  connect,
  exchange,
  freePort,
  ROOT,
  type Run,
  RUNTIME,
  SSA,
  start,
  tempDir,
  until,
} from "./_util.ts";

const enc = new TextEncoder();
// Generous: a container's first start takes a second or more on a loaded machine.
const MS = 20000;

/** The package's echo server (the CLI with no command), as the runtime in the container starts it. */
const echoEntry = () => [RUNTIME === "node" ? path.join(ROOT, "dist", "cli.cjs") : path.join(ROOT, "mod.ts")];
// One Node line runs the container cases that do not differ by line (CI time).
const major = Number(process.versions.node.split(".")[0]);
const oneNode = RUNTIME === "node" && major < 26 && "run under the newest Node line only (CI time)";

async function stop(r: Run): Promise<void> {
  r.signal("SIGTERM");
  assert.equal(await r.exited(MS), 0, r.stderr());
}

// Each in two root file systems: one holding only the runtime (a distroless
// image) and a full one (a distribution's image, with a shell).
const roots = [
  { kind: "holding only the runtime", make: minimalRootfs },
  { kind: "with a full root file system", make: fullRootfs },
];
/** Removes a minimal root file system's directory (the full one is the host's root, behind an overlay). */
const removeRoot = (root: { dir: string }) => {
  if (root.dir.startsWith(path.sep + "tmp")) fs.rmSync(root.dir, { recursive: true, force: true });
};

for (const { kind, make } of roots) {
  test(
    `the echo server in a --network=none container ${kind}${
      make === fullRootfs ? " (its entrypoint script ends with exec)" : ""
    }, under systemd-socket-activate`,
    {
      skip: NO_PODMAN || oneNode,
    },
    async () => {
      const port = await freePort();
      const root = make();
      const dir = tempDir();
      let command = [...root.runtime, ...echoEntry()];
      const options = ["--network=none", ...root.options];
      if (make === fullRootfs) {
        // An image with a shell: through an entrypoint script that ends with exec, as the docs say.
        const entry = path.join(dir, "entrypoint.sh");
        fs.writeFileSync(entry, `#!/bin/sh\nset -e\nexec ${command.map((a) => `'${a}'`).join(" ")}\n`, {
          mode: 0o755,
        });
        options.push("-v", `${dir}:${dir}:ro`);
        command = [entry];
      }
      const r = start([SSA, "-l", `127.0.0.1:${port}`, ...podman(options, root.dir, command)]);
      try {
        const s = await connect({ port }, MS);
        const got = new TextDecoder().decode(await exchange(s, enc.encode("hello\n"), 65536, MS));
        assert.equal(got, "OHAI! systemd socket: true\nHELLO\n", r.stderr());
        await r.stderrMatch(
          /echo: listening on 127\.0\.0\.1:\d+ \(socket from the service manager: true\)/,
          MS,
        );
        await stop(r);
      } finally {
        if (r.child.exitCode === null) r.child.kill("SIGKILL");
        removeRoot(root);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test(
    `--init, two named sockets: serve() on one, listen() on the other, in a --network=none container ${kind}`,
    {
      skip: NO_PODMAN || oneNode,
    },
    async () => {
      const [web, admin] = [await freePort(), await freePort()];
      // What --network=none takes away: the host's loopback. A server of the
      // host's listens here; from the container it is refused.
      const host = net.createServer((c) => c.end("host\n"));
      await new Promise<void>((r) => host.listen(0, "127.0.0.1", r));
      const hostPort = (host.address() as net.AddressInfo).port;
      const root = make();
      const fixture = path.join(ROOT, "test", "fixtures", "container.ts");
      const r = start([
        SSA,
        "-l",
        `127.0.0.1:${web}`,
        "-l",
        `127.0.0.1:${admin}`,
        "--fdname=web:admin",
        ...podman(
          ["--init", "--network=none", "-e", `PROBE_PORT=${hostPort}`, ...root.options],
          root.dir,
          [...root.runtime, fixture],
        ),
      ]);
      try {
        await r.stderrMatch(new RegExp(`Listening on 127\\.0\\.0\\.1:${admin} as 4`), MS);
        const res = await fetch(`http://127.0.0.1:${web}/x`, { signal: AbortSignal.timeout(MS) });
        assert.equal(await res.text(), "web /x\n", r.stderr());
        const s = await connect({ port: admin }, MS);
        assert.equal(new TextDecoder().decode(await exchange(s, new Uint8Array(0), 65536, MS)), "admin\n");
        // catatonit is PID 1 and hands the sockets on to its child, LISTEN_PID rewritten.
        await r.stderrMatch(/^ready web=3 admin=4 pid=2$/m, MS);
        await r.stderrMatch(/^probe 127\.0\.0\.1:\d+: ECONNREFUSED$/m, MS);
        await stop(r);
      } finally {
        if (r.child.exitCode === null) r.child.kill("SIGKILL");
        host.close();
        removeRoot(root);
      }
    },
  );
}

// The runtime's own start script runner, as a container's command: CMD ["npm", "start"] and the like.
const hostNpm = (process.env.PATH ?? "").split(":").map((d) => path.join(d, "npm")).find((f) =>
  fs.existsSync(f)
);
const startScript = RUNTIME === "node"
  ? { argv: hostNpm ? [hostNpm, "start"] : [], name: "npm start" }
  : RUNTIME === "deno"
  ? { argv: [HOST_RUNTIME, "task", "start"], name: "deno task start" }
  : { argv: [HOST_RUNTIME, "run", "start"], name: "bun run start" };
const wrappers = [
  { kind: "an entrypoint script without exec", skip: false as string | false },
  {
    kind: `${startScript.name} as the container's command`,
    skip: startScript.argv.length === 0 && "npm is not on PATH (it comes with Node)",
  },
];

for (const { kind, skip } of wrappers) {
  test(`a wrapper inside a container (${kind}) is ESRCH naming the container case`, {
    skip: NO_PODMAN || oneNode || skip,
  }, async () => {
    const port = await freePort();
    const dir = tempDir();
    // A full image with a shell, whose command starts the server through a
    // wrapper that does not exec it.
    const root = fullRootfs();
    const server = [...root.runtime, ...echoEntry()];
    let command: string[];
    if (kind.startsWith("an entrypoint")) {
      const entry = path.join(dir, "entrypoint.sh");
      const quoted = server.map((a) => `'${a}'`).join(" ");
      fs.writeFileSync(
        entry,
        `#!/bin/sh\nsh -c "${quoted}; echo the server exited"\necho entrypoint done\n`,
        {
          mode: 0o755,
        },
      );
      command = [entry];
    } else {
      const script = server.join(" ");
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ scripts: { start: script } }));
      fs.writeFileSync(path.join(dir, "deno.json"), JSON.stringify({ tasks: { start: script } }));
      command = startScript.argv;
    }
    const r = start([
      SSA,
      "-l",
      `127.0.0.1:${port}`,
      ...podman(
        // npm's `#!/usr/bin/env node` finds the runtime under test first.
        [
          "--network=none",
          "-v",
          `${dir}:${dir}:ro`,
          "-w",
          dir,
          ...root.options,
          "-e",
          `PATH=${path.dirname(HOST_RUNTIME)}:/usr/local/bin:/usr/bin:/bin`,
        ],
        root.dir,
        command,
      ),
    ]);
    try {
      // The client is closed, never left waiting for a server that listens elsewhere.
      const s = await connect({ port }, MS);
      const fate = await new Promise<string>((resolve) => {
        s.on("data", (d) => resolve(`answered ${d}`));
        s.on("close", () => resolve("closed"));
        s.on("error", () => resolve("closed"));
        const timer = setTimeout(() => resolve("left waiting"), MS);
        s.on("close", () => clearTimeout(timer));
      });
      s.destroy();
      assert.equal(fate, "closed", r.stderr());
      const status = await r.exited(MS);
      if (kind.startsWith("an entrypoint")) assert.equal(status, 0, r.stderr()); // the entrypoint's own
      else assert.notEqual(status, 0, r.stderr()); // the start script failed
      const pid1 = kind.startsWith("an entrypoint")
        ? String.raw`"\/bin\/sh .*entrypoint\.sh"`
        : String.raw`"[^"]+"`;
      assert.match(
        r.stderr(),
        new RegExp(
          String.raw`socket-activate: ESRCH: LISTEN_PID="1" is the container's command, PID 1 \(` + pid1 +
            String
              .raw`\), which is (this process's parent|an ancestor of this process, \d generations up), not this process \(PID \d+\): in a container the sockets go to its command`,
        ),
      );
      assert.match(
        r.stderr(),
        /in exec form \(CMD \["node", "server\.js"\]\), or end the entrypoint script with exec/,
      );
      assert.doesNotMatch(r.stderr(), /echo: listening/);
    } finally {
      if (r.child.exitCode === null) r.child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

// Type=notify from a container under a real systemd (test/real-systemd):
// podman's own --sdnotify=container forwards READY=1 and nothing after it
// (podman 4.3), so the service's notify socket is mounted into the container
// instead, with NotifyAccess=all (the container's processes are not the
// service's main PID, which is podman's).
const SYSTEMD = "/lib/systemd/systemd";
const noSystemd = !fs.existsSync(SYSTEMD)
  ? `no ${SYSTEMD} (Debian package systemd)`
  : !fs.existsSync("/sys/fs/cgroup/unified") || !fs.existsSync("/sys/fs/cgroup/systemd")
  ? "test/real-systemd/boot.sh needs the hybrid cgroup layout, which this machine does not mount"
  : false;
const nodeNotify = RUNTIME === "node" && Number(process.versions.node.split(".")[0]) < 26 &&
  `Node ${process.versions.node} notifies through systemd-notify, which a root file system holding only node lacks`;
test(
  "unit --podman under a real systemd: --notify --watchdog (READY=1, STATUS=, WATCHDOG=1), Type=simple with idle exit and --accept, from --network=none containers",
  {
    skip: NO_PODMAN || noSystemd || nodeNotify,
  },
  async () => {
    const port = await freePort();
    const dir = tempDir();
    const root = minimalRootfs();
    const units = path.join(dir, "units"), log = path.join(dir, "service.log"), bin = path.join(dir, "bin");
    fs.mkdirSync(units);
    fs.mkdirSync(bin);
    // The podman that unit finds in PATH and writes into ExecStart=: the image
    // is the minimal root file system, and podman runs through test/podrun.sh.
    const IMAGE = "localhost/sa-test-echo";
    const q = (a: string) => `'${a}'`;
    fs.writeFileSync(
      path.join(bin, "podman"),
      [
        "#!/bin/bash",
        '[ "$1 $2" = "run --rm" ] || { echo "expected run --rm: $*" >&2; exit 64; }',
        "shift 2",
        "args=()",
        `for a in "$@"; do if [ "$a" = ${IMAGE} ]; then args+=(${
          [...root.options, "--rootfs", root.dir].map(q).join(" ")
        }); ` +
        'else args+=("$a"); fi; done',
        `export PODRUN_STATE=${q(path.join(dir, "podman"))}`,
        `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin exec /bin/bash ${
          q(path.join(ROOT, "test", "podrun.sh"))
        } "\${args[@]}"`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    const command = [...containerRuntime(), ...echoEntry()];
    // The echo server pings (stays up); test/fixtures/watchdog_stop.ts stops pinging (restarted).
    // Also plain (Type=simple) and acc (Accept=yes: a container per connection), the echo server both.
    const writeUnits = async (
      name: string,
      listen: string,
      cmd: string[],
      flags = ["--notify", "--watchdog", "2"],
    ) => {
      const unit = start(
        [
          ...cliCommand(),
          "unit",
          name,
          "-l",
          listen,
          ...flags,
          "--podman",
          IMAGE,
          "--out",
          units,
          "--",
          ...cmd,
        ],
        { PATH: `${bin}:${process.env.PATH}` },
      );
      assert.equal(await unit.exited(), 0, unit.stderr());
    };
    await writeUnits("echo", `127.0.0.1:${port}`, command);
    const quietCommand = [...containerRuntime(), path.join(ROOT, "test", "fixtures", "watchdog_stop.ts")];
    await writeUnits("quiet", `127.0.0.1:${await freePort()}`, quietCommand);
    const [plainPort, accPort] = [await freePort(), await freePort()];
    // plain exits after 1 s without a connection; its socket starts it again.
    await writeUnits("plain", `127.0.0.1:${plainPort}`, [...command, "echo", "--idle-exit", "1"], []);
    await writeUnits("acc", `127.0.0.1:${accPort}`, command, ["--accept"]);
    assert.match(
      fs.readFileSync(path.join(units, "acc@.service"), "utf8"),
      /\nExecStart=\S+\/podman run --rm --network=none localhost/,
    );
    const service = fs.readFileSync(path.join(units, "echo.service"), "utf8");
    assert.match(service, /^Type=notify\n#.*\nNotifyAccess=all\nWatchdogSec=2$/m);
    assert.ok(
      service.includes(
        `\nExecStart=${bin}/podman run --rm --network=none --cgroups=split --sdnotify=ignore -v /run/systemd/notify:/run/systemd/notify ` +
          `-e NOTIFY_SOCKET=/run/systemd/notify -e WATCHDOG_USEC ${IMAGE} ${command.join(" ")}\n`,
      ),
      service,
    );
    // docs/containers.md shows the same service, for the image localhost/echo.
    const documented = block("docs/containers.md", "holds it to what unit --podman --notify writes")
      .replace("/usr/bin/podman", `${bin}/podman`).replace("WatchdogSec=10", "WatchdogSec=2").replace(
        " localhost/echo",
        ` ${IMAGE} ${command.join(" ")}`,
      );
    for (const line of documented.trim().split("\n")) {
      assert.ok(service.split("\n").includes(line), `the docs' ${line} is not in:\n${service}`);
    }
    fs.writeFileSync(path.join(units, "t.target"), "[Unit]\nWants=echo.socket plain.socket acc.socket\n");
    for (const name of ["echo", "quiet"]) {
      fs.mkdirSync(path.join(units, `${name}.service.d`));
      fs.writeFileSync(
        path.join(units, `${name}.service.d`, "log.conf"),
        `[Unit]\nStartLimitIntervalSec=0\n[Service]\nRestart=on-failure\nStandardError=append:${log}\n` +
          // Stopped at shutdown while starting again, quiet is the container's
          // PID 1 with no SIGTERM handler yet, which ignores SIGTERM: SIGKILL soon.
          (name === "quiet" ? "TimeoutStopSec=2\n" : ""),
      );
    }
    // quiet starts after echo's first connection and is restarted by the
    // watchdog at the earliest 2 pings and 2 s after its READY=1: by then
    // echo has lived through two WatchdogSec= of its own pings, or it would
    // have been restarted too.
    const check = `printf 'hello\\n' | timeout 20 nc -N 127.0.0.1 ${port}; $SYSTEMCTL start quiet.service; ` +
      `for p in ${plainPort} ${accPort} ${accPort}; do printf 'hi\\n' | timeout 20 nc -N 127.0.0.1 $p; done; ` +
      'for i in $(seq 150); do [ "$($SYSTEMCTL show -P NRestarts quiet.service)" -ge 1 ] && break; sleep 0.2; done; ' +
      "for u in echo quiet; do $SYSTEMCTL show -P NRestarts $u.service; done; " +
      "$SYSTEMCTL show -P ActiveState echo.service; $SYSTEMCTL show -P StatusText echo.service; " +
      // --cgroups=split: the container in a cgroup below the service's.
      "$NSENTER sh -c 'ls -d /sys/fs/cgroup/system.slice/echo.service/libpod-payload-* | wc -l'; " +
      `$SYSTEMCTL show -P ActiveState plain.service; printf 'hi\\n' | timeout 20 nc -N 127.0.0.1 ${plainPort}; ` +
      // Killed before the boot ends: quiet's new container may be starting, and
      // run-units.sh's forced exit leaves crun (which outlives SIGTERM there) to
      // systemd-shutdown's 90 s wait.
      "$SYSTEMCTL kill --signal=SIGKILL quiet.service";
    const r = start([
      "/bin/bash",
      path.join(ROOT, "test", "real-systemd", "run-units.sh"),
      units,
      "t.target",
      "--",
      "sh",
      "-c",
      check,
    ]);
    try {
      assert.equal(await r.exited(60000), 0, r.stderr());
      const logged = fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "";
      assert.equal(
        r.stdout(),
        "OHAI! systemd socket: true\nHELLO\n" + "OHAI! systemd socket: true\nHI\n".repeat(3) +
          "0\n1\nactive\n1 connection(s) served\n1\ninactive\nOHAI! systemd socket: true\nHI\n",
        `${logged}\n${fs.readFileSync(path.join(units, "boot.log"), "utf8")}`,
      );
      assert.match(fs.readFileSync(path.join(units, "boot.log"), "utf8"), /quiet\.service: Watchdog timeout/);
    } finally {
      if (r.child.exitCode === null) r.child.kill("SIGKILL");
      try {
        const unshare = fs.readFileSync(path.join(units, ".unshare"), "utf8").trim();
        const init = fs.readFileSync(`/proc/${unshare}/task/${unshare}/children`, "utf8").trim();
        if (init !== "") process.kill(Number(init.split(" ")[0]), "SIGKILL");
      } catch { /* shut down as it should */ }
      spawnSync("umount", ["-R", path.join(dir, "podman")]);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(root.dir, { recursive: true, force: true });
    }
  },
);

test("Node 22 and 24 in a container holding only node: notify() says what is missing and what to do", {
  skip: NO_PODMAN || (!nodeNotify && "Node 26 sends sd_notify itself (the test above), Deno and Bun too"),
}, async () => {
  const port = await freePort();
  const root = minimalRootfs();
  const r = start([
    SSA,
    "-l",
    `127.0.0.1:${port}`,
    ...podman(
      ["-e", "NOTIFY_SOCKET=/tmp/notify", "--network=none", ...root.options],
      root.dir,
      [...containerRuntime(), ...echoEntry()],
    ),
  ]);
  try {
    const s = await connect({ port }, MS);
    assert.equal(
      new TextDecoder().decode(await exchange(s, enc.encode("hi\n"), 65536, MS)),
      "OHAI! systemd socket: true\nHI\n",
    );
    await r.stderrMatch(
      /echo: cannot notify the service manager: Cannot notify NOTIFY_SOCKET="\/tmp\/notify": Node [\d.]+ has no unix datagram socket here, so systemd-notify sends for it, and there is no systemd-notify on PATH=".*": install it \(Debian package systemd\) or add its directory to PATH\. Node 26\.9 and later send it themselves over node:ffi/,
      MS,
    );
    await stop(r);
  } finally {
    if (r.child.exitCode === null) r.child.kill("SIGKILL");
    fs.rmSync(root.dir, { recursive: true, force: true });
  }
});

test(
  "Node 22 and 24 in a full image with systemd-notify: READY=1 and STATUS= reach the mounted notify socket",
  {
    skip: NO_PODMAN || (!nodeNotify && "Node 26 sends sd_notify itself (the test above), Deno and Bun too") ||
      (!fs.existsSync("/usr/bin/systemd-notify") && "no /usr/bin/systemd-notify (Debian package systemd)"),
  },
  async () => {
    const port = await freePort();
    const dir = tempDir();
    const address = path.join(dir, "notify");
    const recv = start(["/usr/bin/python3", path.join(ROOT, "test", "_notify_receiver.py"), address, "25"]);
    const root = fullRootfs();
    await until(() => recv.stdout().startsWith("ready\n"), MS, () => `the receiver: ${recv.stderr()}`);
    const messages = () => recv.stdout().split("\n").slice(1).filter(Boolean).map((l) => JSON.parse(l).data);
    const r = start([
      SSA,
      "-l",
      `127.0.0.1:${port}`,
      ...podman(
        ["--network=none", "-v", `${dir}:${dir}`, "-e", `NOTIFY_SOCKET=${address}`, ...root.options],
        root.dir,
        [...root.runtime, ...echoEntry()],
      ),
    ]);
    try {
      const s = await connect({ port }, MS);
      assert.equal(
        new TextDecoder().decode(await exchange(s, enc.encode("hi\n"), 65536, MS)),
        "OHAI! systemd socket: true\nHI\n",
      );
      await until(
        () => messages().includes("STATUS=1 connection(s) served"),
        MS,
        () => `${messages()}\n${r.stderr()}`,
      );
      assert.equal(messages()[0], "READY=1", r.stderr());
      assert.doesNotMatch(r.stderr(), /cannot notify/);
      await stop(r);
    } finally {
      if (r.child.exitCode === null) {
        r.child.kill("SIGKILL");
      }
      recv.child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

/** The fenced block after the first line of `doc` that contains `marker`. */
function block(doc: string, marker: string): string {
  const text = fs.readFileSync(path.join(ROOT, doc), "utf8");
  const at = text.indexOf(marker);
  assert.ok(at >= 0, `${doc} has no ${marker}`);
  const m = /```[\w-]*\n([\s\S]*?)```/.exec(text.slice(at));
  assert.ok(m, `${doc}: no code block after ${marker}`);
  return m[1];
}

// The docs' recipe as pasted: their Containerfile built (FROM replaced by
// scratch: no registry here), their command line run (the port replaced,
// podman through test/podrun.sh, node and its libraries mounted where the
// base image has them), the README's echo server.
test("docs/containers.md: the Containerfile builds (Node; laid out for Deno and Bun), and its image serves", {
  skip: NO_PODMAN || oneNode,
}, async () => {
  const dir = tempDir();
  const tag = `localhost/sa-test-${path.basename(dir).toLowerCase()}`;
  const podmanOk = (args: string[]) => {
    const r = spawnSync("podman", args, { encoding: "utf8" });
    assert.equal(r.status, 0, `podman ${args.join(" ")}: ${r.stderr}`);
  };
  try {
    // The base: scratch (an empty image), with the runtime and its libraries mounted where
    // the runtime's image has it in PATH (mounts cost nothing; an image holding it takes
    // seconds to build); for Deno a writable DENO_DIR, as denoland/deno sets one.
    const baseFiles = [
      ...runtimeMounts(HOST_RUNTIME, `/usr/local/bin/${RUNTIME}`),
      ...(RUNTIME === "deno" ? ["--tmpfs", "/tmp", "-e", "DENO_DIR=/tmp/deno"] : []),
    ];
    // The project: package.json, the package as npm installs it, and the README's echo server.
    const project = path.join(dir, "project");
    const pkg = path.join(project, "node_modules", "socket-activate");
    fs.mkdirSync(pkg, { recursive: true });
    const version = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).version;
    fs.writeFileSync(
      path.join(project, "package.json"),
      JSON.stringify({ name: "echo", private: true, dependencies: { "socket-activate": `^${version}` } }),
    );
    fs.copyFileSync(path.join(ROOT, "package.json"), path.join(pkg, "package.json"));
    fs.cpSync(path.join(ROOT, "dist"), path.join(pkg, "dist"), { recursive: true });
    const file = RUNTIME === "node" ? "echo.mjs" : "echo.ts";
    fs.writeFileSync(path.join(project, file), block("README.md", "<!-- test: file echo.mjs"));
    let containerfile = block("docs/containers.md", "<!-- test: skip: test/containers.test.ts builds it");
    if (RUNTIME !== "node") {
      // The text's own changes for Deno and Bun: echo.ts, and the CMD it gives.
      const text = fs.readFileSync(path.join(ROOT, "docs", "containers.md"), "utf8");
      const cmd = new RegExp(`\`(CMD \\["${RUNTIME}", [^\`]*\])\``).exec(text)?.[1];
      assert.ok(cmd, `docs/containers.md gives no CMD for ${RUNTIME}`);
      assert.ok(cmd.endsWith('"echo.ts"]') && text.includes("copy `echo.ts` in place of `echo.mjs`"));
      containerfile = containerfile.replace("COPY echo.mjs ./", "COPY echo.ts ./").replace(/^CMD .*$/m, cmd);
    }
    const [build, run] = block("docs/containers.md", "<!-- test: skip: test/containers.test.ts runs it")
      .trim().split("\n");
    assert.equal(build, "podman build -t echo .");
    const port = await freePort();
    let image = [tag];
    if (RUNTIME === "node") {
      fs.writeFileSync(path.join(project, "Containerfile"), containerfile);
      podmanOk(["build", "-q", "--from", "scratch", "-t", tag, project]);
    } else {
      // Deno's and Bun's image differs from Node's (built above) only in its files and CMD:
      // laid out as its WORKDIR and COPY lines say, in a directory podman runs as the
      // root file system (a build costs 5 to 10 s here).
      const rootfs = path.join(dir, "rootfs");
      let workdir = "/";
      for (const line of containerfile.trim().split("\n")) {
        const [op, ...args] = line.split(" ");
        if (op === "WORKDIR") workdir = args[0];
        else if (op === "COPY") {
          fs.cpSync(
            path.join(project, args[0]),
            path.join(
              rootfs,
              workdir,
              args[1],
              args[1].endsWith("/") &&
                !args[0].endsWith("/")
                ? path.basename(args[0])
                : "",
            ),
            { recursive: true },
          );
        } else if (op === "CMD") image = ["-w", workdir, "--rootfs", rootfs, ...JSON.parse(args.join(" "))];
        else assert.equal(op, "FROM", line);
      }
    }
    const argv = run.replace("-l 8888", `-l 127.0.0.1:${port}`).split(" ");
    assert.deepEqual(argv.slice(0, 3), ["systemd-socket-activate", "-l", `127.0.0.1:${port}`]);
    assert.deepEqual(argv.slice(3, 6), ["podman", "run", "--rm"]);
    assert.equal(argv.at(-1), "localhost/echo");
    const r = start([SSA, ...argv.slice(1, 3), ...podrun([...baseFiles, ...argv.slice(6, -1), ...image])]);
    try {
      const s = await connect({ port }, MS);
      const got = new TextDecoder().decode(await exchange(s, enc.encode("hello\n"), 65536, MS));
      assert.equal(got, "OHAI! systemd socket: true\nHELLO\n", r.stderr());
      await stop(r);
    } finally {
      if (r.child.exitCode === null) r.child.kill("SIGKILL");
    }
  } finally {
    spawnSync("podman", ["rmi", "-f", tag]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// The docs' unit commands as pasted (printing, no --out; podman found in PATH,
// /usr/bin/podman where Debian puts it, as the docs show).
const podmanAt = (process.env.PATH ?? "").split(":").map((d) => path.join(d, "podman")).find((f) =>
  fs.existsSync(f)
);
test("docs/containers.md: its `socket-activate unit` commands print the units it shows", {
  skip: !podmanAt
    ? "podman is not installed (Debian package podman)"
    : (RUNTIME !== "node" && "the CLI's output for --podman is the same in every runtime (Node runs it)") ||
      oneNode,
}, async () => {
  const text = fs.readFileSync(path.join(ROOT, "docs", "containers.md"), "utf8");
  const prose = text.replace(/```[\s\S]*?```/g, "");
  const spans = [...prose.matchAll(/`([^`]+)`/g)].map((m) => m[1].replace(/\s+/g, " "));
  const commands = spans.filter((c) => c.startsWith("socket-activate unit echo "));
  assert.equal(commands.length, 2, commands.join("\n"));
  const print = async (cmd: string) => {
    const r = start([...cliCommand(), ...cmd.split(" ").slice(1)]);
    assert.equal(await r.exited(), 0, r.stderr());
    return r.stdout().replaceAll(podmanAt!, "/usr/bin/podman");
  };
  const [plain, notify] = commands;
  const simple = await print(plain);
  assert.match(simple, /^# echo\.socket\n[\s\S]*^ListenStream=8888$[\s\S]*^# echo\.service$/m);
  const exec = spans.find((c) => c.startsWith("ExecStart=/usr/bin/podman run --rm --network=none"))!;
  assert.ok(simple.split("\n").includes(exec), `${exec}\nis not in\n${simple}`);
  // "with `--accept` it writes `Accept=yes` and an `echo@.service`"
  const accept = await print(`${plain} --accept`);
  assert.match(accept, /^Accept=yes$[\s\S]*^# echo@\.service$/m);
  assert.ok(accept.split("\n").includes(exec), accept);
  const service = await print(notify);
  for (
    const line of block("docs/containers.md", "holds it to what unit --podman --notify writes").trim().split(
      "\n",
    )
  ) {
    assert.ok(service.split("\n").includes(line), `the docs' ${line} is not in:\n${service}`);
  }
});

// A private mount namespace whose /bin/sh is /dev/null: a root file system
// without a shell, as a distroless image is, for one process.
const noShell = spawnSync("/usr/bin/unshare", ["--mount", "--propagation", "private", "true"]).status === 0
  ? false
  : "unshare --mount is not permitted here (needs CAP_SYS_ADMIN)";
const withoutShell = (cmd: string[]) => [
  "/usr/bin/unshare",
  "--mount",
  "--propagation",
  "private",
  "/bin/sh",
  "-c",
  'mount --bind /dev/null /bin/sh && exec "$@"',
  "sh",
  ...cmd,
];

test("run without /bin/sh fails at once, saying why and what to do", { skip: noShell }, async () => {
  const port = await freePort();
  const r = start(withoutShell([...cliCommand(), "run", "-l", `127.0.0.1:${port}`, "--", "true"]));
  assert.equal(await r.exited(), 127, r.stderr());
  assert.equal(
    r.stderr(),
    "socket-activate run: /bin/sh is missing: run starts COMMAND through it to set LISTEN_PID to COMMAND's own " +
      "PID (no runtime can set a variable between fork and exec). Without a shell, let the service manager " +
      "start COMMAND (systemd, systemd-socket-activate, or podman under either), or add /bin/sh\n",
  );
});

test("unit --podman refuses a bad image name", async () => {
  const bad = start([...cliCommand(), "unit", "echo", "-l", "8888", "--podman=-x"]);
  assert.equal(await bad.exited(), 2, bad.stderr());
  assert.match(bad.stderr(), /--podman "-x" is not an image name \(for example: localhost\/echo\)/);
});
