// A child process started right after the package is imported, before any
// call into it, must not hold the activated socket: Node marks inherited fds
// close-on-exec at start-up, Bun's spawn passes no fd above 2, and Deno,
// which leaves them inheritable, gets them marked at import where FFI is
// granted (runtimes/deno/runtime.ts cloexecAtImport).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { connect, fixtureCommand, freePort, RUNTIME, SSA, start, until } from "./_util.ts";

async function childFds(entry: "mod" | "runtime", denoFlags?: string[]) {
  const port = await freePort();
  const cmd = fixtureCommand("cloexec.ts");
  if (denoFlags !== undefined) cmd.splice(2, 1, ...denoFlags);
  const run = start([SSA, "-l", `127.0.0.1:${port}`, "-E", "CLOEXEC_ENTRY", ...cmd], {
    CLOEXEC_ENTRY: entry,
  });
  const conn = await connect({ port }); // starts the service
  try {
    await until(() => run.stdout().includes("done\n"), 15000, () => `the child's fds: ${run.stderr()}`);
    const socket = fs.readlinkSync(`/proc/${run.child.pid}/fd/3`);
    assert.match(socket, /^socket:\[\d+\]$/);
    const lines = run.stdout().split("\n").filter((l) => /^\d+ /.test(l));
    run.signal("SIGTERM");
    assert.equal(await run.exited(), 0, run.stderr());
    return { socket, lines };
  } finally {
    conn.destroy();
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  }
}

for (const entry of ["mod", "runtime"] as const) {
  const name = entry === "mod" ? "mod.ts" : `runtimes/${RUNTIME}.ts`;
  test(`importing ${name}: a child started before the first call holds no activated socket`, async () => {
    const { socket, lines } = await childFds(entry);
    assert.deepEqual(
      lines.filter((l) => l.endsWith(` ${socket}`)),
      [],
      `the child's fds:\n${lines.join("\n")}`,
    );
  });
}

test(
  "Deno without --allow-ffi: a child started before the first call inherits the socket (the README's rule)",
  {
    skip: RUNTIME !== "deno" && "Deno only: nothing but FFI marks an fd close-on-exec there",
  },
  async () => {
    const { socket, lines } = await childFds("mod", ["--allow-env", "--allow-run", "--allow-read"]);
    assert.equal(
      lines.filter((l) => l.endsWith(` ${socket}`)).length,
      1,
      `the child's fds:\n${lines.join("\n")}`,
    );
  },
);
