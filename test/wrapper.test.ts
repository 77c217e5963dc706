// A wrapper between the service manager and the runtime (npx, npm start, npx
// tsx, nested shells): LISTEN_PID then names an ancestor of the program, and
// the program must fail with ESRCH naming the wrapper, never take its
// fallback port while the activated client waits. Through the real
// systemd-socket-activate.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { ActivationError, listenFds } from "../mod.ts";
import { cliCommand, connect, freePort, refused, ROOT, RUNTIME, SSA, start, tempDir } from "./_util.ts";

const g = globalThis as { Deno?: { execPath(): string } };

// A project that depends on the package as npm would install it (a link to
// this checkout, built by the test run), so that npx finds its bin.
const project = tempDir();
fs.mkdirSync(path.join(project, "node_modules", ".bin"), { recursive: true });
fs.symlinkSync(ROOT, path.join(project, "node_modules", "socket-activate"));
fs.symlinkSync(
  "../socket-activate/dist/cli.cjs",
  path.join(project, "node_modules", ".bin", "socket-activate"),
);
after(() => fs.rmSync(project, { recursive: true, force: true }));

/** Connects to the activated port (retrying until it listens); resolves with how the connection ended, or "open" after `ms`. */
async function clientFate(port: number, ms: number): Promise<string> {
  const s = await connect({ port });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      s.destroy();
      resolve("open");
    }, ms);
    s.on("data", () => {});
    s.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? "error");
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve("closed");
    });
  });
}

/**
 * Runs `cmd` (a wrapper) under systemd-socket-activate, connects as the
 * activated client, and checks the wrapper case: ESRCH naming the wrapper's
 * command line, no fallback on `fallback`, and a client that is let go.
 */
async function wrapped(cmd: string[], wrapper: RegExp, fallback: number, port: number, cwd?: string) {
  const run = start([SSA, "-l", `127.0.0.1:${port}`, ...cmd], {}, cwd);
  const fate = clientFate(port, 30000);
  await run.stderrMatch(/ESRCH: /, 30000);
  const m =
    /ESRCH: LISTEN_PID="(\d+)" is (?:this process's parent|an ancestor of this process, (\d+) generations up) \(PID (\d+), "([^"]*)"\)/
      .exec(run.stderr());
  assert.ok(m, run.stderr());
  assert.equal(m[1], m[3]);
  assert.match(m[4], wrapper);
  assert.match(run.stderr(), /Start the runtime directly in ExecStart=/);
  assert.match(run.stderr(), /`socket-activate unit` resolves npx, npm scripts and tsx/);
  assert.doesNotMatch(run.stderr(), /listening on/);
  assert.equal(await refused(fallback), true, "the fallback port was bound");
  assert.notEqual(await run.exited(30000), 0);
  // The wrapper held the listening socket; with it gone the kernel resets
  // the queued connection: the client learns at once instead of hanging.
  assert.notEqual(await fate, "open", "the activated client was left hanging");
  return m;
}

const cli = () => cliCommand().join(" ");
const nodeOnly = RUNTIME !== "node" && "npx and tsx run Node: the Node run covers them";

test(
  "npx socket-activate fails with ESRCH naming npx, and binds no fallback",
  { skip: nodeOnly },
  async () => {
    const [fallback, port] = [await freePort(), await freePort()];
    const m = await wrapped(
      ["npx", "--offline", "socket-activate", "echo", "--port", String(fallback)],
      /^npm exec socket-activate echo --port \d+$/, // npx sets its process title to "npm exec ..."
      fallback,
      port,
      project,
    );
    assert.ok(Number(m[2]) >= 2, "npx stands two or more processes above the program");
  },
);

test("npx socket-activate inspect --json reports the wrapper as ESRCH", { skip: nodeOnly }, async () => {
  const port = await freePort();
  const run = start(
    [SSA, "-l", `127.0.0.1:${port}`, "npx", "--offline", "socket-activate", "inspect", "--json"],
    {},
    project,
  );
  const fate = clientFate(port, 30000);
  assert.equal(await run.exited(30000), 1, run.stderr());
  const out = JSON.parse(run.stdout().trim().split("\n").at(-1)!);
  assert.equal(out.error.code, "ESRCH");
  assert.match(out.error.message, /is an ancestor of this process, \d+ generations up \(PID \d+, "npm exec /);
  assert.notEqual(await fate, "open");
});

test("npx tsx file.ts fails with ESRCH naming npx, and binds no fallback", { skip: nodeOnly }, async () => {
  const [fallback, port] = [await freePort(), await freePort()];
  await wrapped(
    ["npx", "--offline", "tsx", "runtimes/cli.ts", "echo", "--port", String(fallback)],
    /^npm exec tsx runtimes\/cli\.ts/,
    fallback,
    port,
    ROOT,
  );
});

test(`npm start running ${RUNTIME} fails with ESRCH naming npm start, and binds no fallback`, async () => {
  const [fallback, port] = [await freePort(), await freePort()];
  const dir = tempDir();
  try {
    fs.writeFileSync(
      path.join(dir, "package.json"),
      JSON.stringify({ name: "app", private: true, scripts: { start: `${cli()} echo --port ${fallback}` } }),
    );
    // npm is a Node program: the runtime behind it gets no fd 3 at all.
    await wrapped(["npm", "start"], /^npm start$/, fallback, port, dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(`nested shells without exec around ${RUNTIME} fail with ESRCH naming the outer shell`, async () => {
  const [fallback, port] = [await freePort(), await freePort()];
  // "; exit $?" keeps each shell from exec'ing its last command.
  const inner = `${cli()} echo --port ${fallback}; exit $?`;
  const m = await wrapped(
    ["/bin/sh", "-c", `/bin/sh -c '${inner}'; exit $?`],
    /^\/bin\/sh -c \/bin\/sh -c /,
    fallback,
    port,
  );
  assert.equal(m[2], "2");
});

test("Deno with --allow-env --allow-net --allow-ffi (no -A) finds the wrapper through libc", {
  skip: RUNTIME !== "deno" && "Deno only",
}, async () => {
  const [fallback, port] = [await freePort(), await freePort()];
  const deno = [
    g.Deno!.execPath(),
    "run",
    "--allow-env",
    "--allow-net",
    "--allow-ffi",
    path.join(ROOT, "mod.ts"),
  ];
  const inner = `${deno.join(" ")} echo --port ${fallback}; exit $?`;
  const m = await wrapped(
    ["/bin/sh", "-c", `/bin/sh -c '${inner}'; exit $?`],
    /^\/bin\/sh -c /,
    fallback,
    port,
  );
  assert.equal(m[2], "2");
});

// In-process: the real parent chain, read from /proc.
function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

test("listenFds() walks the real parent chain: LISTEN_PID of the grandparent is ESRCH", () => {
  const grandparent = parentOf(process.ppid);
  assert.ok(grandparent > 1, "this test needs a grandparent other than PID 1");
  try {
    listenFds({ env: { LISTEN_PID: String(grandparent), LISTEN_FDS: "1" } });
    assert.fail("did not throw");
  } catch (e) {
    assert.ok(e instanceof ActivationError, String(e));
    assert.equal(e.code, "ESRCH");
    assert.match(
      e.message,
      new RegExp(`is an ancestor of this process, 2 generations up \\(PID ${grandparent}, "`),
    );
  }
});

test("listenFds() keeps libsystemd's meaning for a LISTEN_PID that is no ancestor", () => {
  // A sibling: alive, but not above this process.
  const sibling = start(["sleep", "30"]);
  try {
    const env = { LISTEN_PID: String(sibling.child.pid), LISTEN_FDS: "1" };
    assert.deepEqual(listenFds({ env }), []);
  } finally {
    sibling.child.kill("SIGKILL");
  }
});

test("listenFds() with ancestors: any generation is ESRCH, PID 1 only as the parent outside a container", () => {
  const esrch = (env: Record<string, string>, ancestors: number[]) => {
    try {
      listenFds({ env, pid: 9, ancestors });
    } catch (e) {
      assert.ok(e instanceof ActivationError);
      return e;
    }
    return undefined;
  };
  const e = esrch({ LISTEN_PID: "5", LISTEN_FDS: "1" }, [7, 6, 5, 1]);
  assert.equal(e?.code, "ESRCH");
  assert.match(e!.message, /LISTEN_PID="5" is an ancestor of this process, 3 generations up \(PID 5\)/);
  // Everything descends from PID 1: only as the parent is it a wrapper (a shell as a container's init).
  assert.equal(esrch({ LISTEN_PID: "1", LISTEN_FDS: "1" }, [7, 1]), undefined);
  assert.equal(esrch({ LISTEN_PID: "1", LISTEN_FDS: "1" }, [1])?.code, "ESRCH");
  // In a container PID 1 is the command podman passed the sockets to, at any generation.
  const c = esrch({ LISTEN_PID: "1", LISTEN_FDS: "1", container: "podman" }, [7, 1]);
  assert.equal(c?.code, "ESRCH");
  assert.match(
    c!.message,
    /^LISTEN_PID="1" is the container's command, PID 1, which is an ancestor of this process, 2 generations up, not this process \(PID 9\): in a container/,
  );
  assert.match(
    c!.message,
    /in exec form \(CMD \["node", "server\.js"\]\), or end the entrypoint script with exec/,
  );
  assert.match(
    esrch({ LISTEN_PID: "1", LISTEN_FDS: "1", container: "podman" }, [1])!.message,
    /which is this process's parent/,
  );
  // Without LISTEN_FDS nothing was passed: libsystemd's "not activated".
  assert.equal(esrch({ LISTEN_PID: "5" }, [7, 6, 5]), undefined);
  assert.equal(esrch({ LISTEN_PID: "4", LISTEN_FDS: "1" }, [7, 6, 5]), undefined);
});
