// Node's notify() under a real systemd: test/real-systemd boots systemd as PID
// 1 of private namespaces with only this file's units. Node 22 and 24 send
// through systemd-notify, whose own PID systemd sees when the service is not
// root; systemd finds that PID's unit by its cgroup when it reads the
// datagram, so a systemd-notify that exits first loses it: many cycles. Node
// 26 sends from its own PID over node:ffi, which NotifyAccess=main accepts: a
// few cycles show that (systemd would refuse every datagram of another PID),
// and in the same boot the fd store round trip across a restart and the
// watchdog, as Node 26 gives them to a User= service.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { NODE_FFI, ROOT, RUNTIME, start, tempDir } from "./_util.ts";

const TOOL = path.join(ROOT, "test", "real-systemd");
const SYSTEMD = "/lib/systemd/systemd";

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Why a real systemd cannot boot here, or undefined when it can. */
function whyNot(): string | undefined {
  if (RUNTIME !== "node") {
    return `${RUNTIME} sends sd_notify itself, from the service's own PID: no systemd-notify to outlive`;
  }
  if (process.getuid!() !== 0) return "booting systemd in private namespaces needs root";
  if (!fs.existsSync(SYSTEMD)) return `no ${SYSTEMD} (Debian package systemd)`;
  // boot.sh confines the boot to a cgroup of both hierarchies of the hybrid layout.
  if (!isDir("/sys/fs/cgroup/unified") || !isDir("/sys/fs/cgroup/systemd")) {
    return "test/real-systemd/boot.sh needs the hybrid cgroup layout (/sys/fs/cgroup/unified and " +
      "/sys/fs/cgroup/systemd), which this machine does not mount";
  }
  for (const cmd of ["unshare", "nsenter", "script", "pgrep", "setpriv"]) {
    if (spawnSync("sh", ["-c", `command -v ${cmd}`]).status !== 0) return `no ${cmd} on PATH`;
  }
  const ns = spawnSync("unshare", ["--pid", "--fork", "--mount", "--uts", "--cgroup", "true"], {
    encoding: "utf8",
  });
  if (ns.status !== 0) return `cannot make pid/mount/uts/cgroup namespaces here: ${ns.stderr.trim()}`;
  const nobody = spawnSync(
    "setpriv",
    ["--reuid=nobody", "--regid=nogroup", "--clear-groups", process.execPath, "-e", "0"],
    { encoding: "utf8" },
  );
  if (nobody.status !== 0) return `user nobody cannot run ${process.execPath}: ${nobody.stderr.trim()}`;
  return undefined;
}

const UNITS = ["notify-a.service", "notify-b.service"];
const CYCLES = NODE_FFI ? 3 : 100; // a unit, the units side by side
const ACCESS = NODE_FFI ? "main" : "all";

test(
  `Node as User=nobody with NotifyAccess=${ACCESS} under a real systemd: ${UNITS.length * CYCLES} ` +
    "start/READY=1/STATUS=/stop cycles lose no datagram" +
    (NODE_FFI ? "; an fd stored with FDSTORE=1 comes back to the restarted service, WATCHDOG=1 arrives" : ""),
  { skip: whyNot() ?? false, timeout: 300_000 },
  async (t) => {
    // The service runs as nobody: the package and the program go to a
    // directory it may read (CI clones into a 0700 temp dir).
    const dir = tempDir();
    fs.chmodSync(dir, 0o755);
    fs.cpSync(path.join(ROOT, "dist"), path.join(dir, "pkg"), { recursive: true });
    // And so does node itself: under test/run.sh it is node_modules/nodeXX/bin/node
    // in the checkout, which systemd cannot exec as nobody from a 0700 clone.
    const node = path.join(dir, "node");
    fs.copyFileSync(process.execPath, node);
    fs.chmodSync(node, 0o755);
    fs.copyFileSync(path.join(TOOL, "notify_app.cjs"), path.join(dir, "app.cjs"));
    const units = path.join(dir, "units");
    fs.mkdirSync(units);
    fs.writeFileSync(path.join(units, "cycles.target"), "[Unit]\nDescription=notify cycles\n");
    for (const unit of UNITS) {
      const fifo = path.join(dir, `${unit}.fifo`), log = path.join(dir, `${unit}.log`);
      spawnSync("mkfifo", [fifo]);
      fs.writeFileSync(log, "");
      fs.writeFileSync(
        path.join(units, unit),
        [
          "[Unit]",
          "StartLimitIntervalSec=0",
          "[Service]",
          "Type=notify",
          `NotifyAccess=${ACCESS}`,
          "User=nobody",
          // A lost READY=1 fails the start after this long.
          "TimeoutStartSec=3",
          "TimeoutStopSec=3",
          `ExecStart=${node} ${dir}/app.cjs ${dir}/pkg/node.cjs`,
          `StandardOutput=file:${fifo}`,
          `StandardError=append:${log}`,
          "",
        ].join("\n"),
      );
    }
    // Node 26, in the same boot: the fd store round trip across a restart,
    // and WATCHDOG=1 (test/real-systemd/fdstore_app.cjs and fdstore_check.sh).
    if (NODE_FFI) {
      fs.copyFileSync(path.join(TOOL, "fdstore_app.cjs"), path.join(dir, "fdstore.cjs"));
      fs.writeFileSync(path.join(dir, "data"), "first\nsecond\n");
      fs.writeFileSync(
        path.join(units, "fdstore.service"),
        [
          "[Unit]",
          "StartLimitIntervalSec=0",
          "[Service]",
          "Type=notify",
          "NotifyAccess=main",
          "User=nobody",
          "FileDescriptorStoreMax=4",
          "WatchdogSec=1",
          "TimeoutStartSec=5",
          "TimeoutStopSec=3",
          `ExecStart=${node} ${dir}/fdstore.cjs ${dir}/pkg/node.cjs ${dir}/data`,
          `StandardOutput=append:${dir}/fdstore.log`,
          `StandardError=append:${dir}/fdstore.log`,
          "",
        ].join("\n"),
      );
    }
    spawnSync("chmod", ["-R", "a+rX", dir]);
    const cycles = [path.join(TOOL, "notify_cycles.sh"), dir, String(CYCLES), ...UNITS];
    const t0 = Date.now();
    const run = start([
      "bash",
      path.join(TOOL, "run-units.sh"),
      units,
      "cycles.target",
      "--",
      ...(NODE_FFI
        ? [
          "bash",
          "-c",
          'bash "$@" & c=$!; bash "$0" fdstore.service; f=$?; wait $c && exit $f',
          path.join(TOOL, "fdstore_check.sh"),
          ...cycles,
        ]
        : ["bash", ...cycles]),
    ]);
    try {
      assert.equal(await run.exited(280_000), 0, `${run.stdout()}\n${run.stderr()}`);
    } finally {
      // Should the run be cut short, the namespace's init (a child of the
      // unshare whose PID boot.sh wrote) takes every process of the boot with it.
      try {
        const unshare = fs.readFileSync(path.join(units, ".unshare"), "utf8").trim();
        const init = fs.readFileSync(`/proc/${unshare}/task/${unshare}/children`, "utf8").trim();
        if (init !== "") process.kill(Number(init.split(" ")[0]), "SIGKILL");
      } catch { /* shut down as it should, or never booted */ }
    }
    const seconds = (Date.now() - t0) / 1000;
    const boot = fs.readFileSync(path.join(units, "boot.log"), "utf8");
    const lost = boot.split("\n").filter((l) =>
      l.includes("Cannot find unit for notify message") || l.includes("reception only permitted")
    );
    // Whatever the services wrote besides "sent PID": notify() errors, crashes.
    const logs = UNITS.flatMap((u) => fs.readFileSync(path.join(dir, `${u}.log`), "utf8").split("\n"));
    t.diagnostic(
      `${seconds.toFixed(1)} s; ${
        run.stdout().trim().replace(/\n/g, "; ")
      }; ${lost.length} datagrams lost; ` +
        `${logs.filter(Boolean).length} lines logged`,
    );
    for (const unit of UNITS) {
      assert.match(run.stdout(), new RegExp(`^${unit} cycles ${CYCLES} noready 0 nostatus 0$`, "m"));
    }
    assert.deepEqual(lost, [], "systemd dropped datagrams");
    assert.deepEqual(logs.filter(Boolean), [], "what the services wrote besides sent PID");
    if (NODE_FFI) {
      // The file the first process opened and read a line of, stored, and
      // read on by the next process: the same open file, its offset kept.
      const fdstore = fs.readFileSync(path.join(dir, "fdstore.log"), "utf8");
      const said = run.stdout().split("\n").filter((l) => !/ cycles /.test(l)).join("\n");
      assert.equal(
        said,
        [
          "status1 stored the file after reading first",
          "stored 1",
          "watchdog moved",
          "same pid after 1.5 s",
          "restarted",
          "status2 got fd 3 back and read second",
          "result success",
          "",
        ].join("\n"),
        `${fdstore}\n${boot.split("\n").filter((l) => l.includes("fdstore")).join("\n")}`,
      );
      assert.equal(fdstore, "", "what the fd store's service wrote");
      assert.doesNotMatch(boot, /Watchdog timeout/);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  },
);
