// Containers for the tests: podman through test/podrun.sh (this host's
// workarounds, none elsewhere), and a minimal root file system for the
// runtime running the test file: its binary and the libraries ldd lists,
// bind-mounted read-only into an empty directory (no shell, no systemd, like
// a distroless image), with the checkout at the same path so that the
// package and its fixtures are there.
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROOT, RUNTIME, tempDir } from "./_util.ts";

const g = globalThis as { Deno?: { execPath(): string } };

/** Why the container tests cannot run here, or false. */
export const NO_PODMAN: string | false = (() => {
  if (spawnSync("podman", ["--version"]).status !== 0) {
    return "podman is not installed (Debian package podman)";
  }
  if (process.getuid?.() !== 0) {
    return "the container tests run podman as root (rootless podman needs a user setup)";
  }
  return false;
})();

/** The runtime's binary, as the container sees it. */
export const RT = "/runtime";

/** The runtime running this file, in the container: the binary and the flags that keep LISTEN_PID. */
export function containerRuntime(): string[] {
  if (RUNTIME === "deno") return [RT, "run", "-A"];
  if (RUNTIME === "bun") return [RT, "run"];
  return [RT];
}

/** podman options that bind-mount `binary` (at `at`) and the libraries ldd lists for it, read-only. */
export function runtimeMounts(binary: string, at = RT): string[] {
  const real = fs.realpathSync(binary);
  const libs = execFileSync("ldd", [real], { encoding: "utf8" })
    .split("\n")
    .map((l) => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(l)?.[1])
    .filter((l): l is string => l !== undefined);
  return [[real, at], ...libs.map((l) => [l, l])].flatMap(([from, to]) => ["-v", `${from}:${to}:ro`]);
}

/** The podman options that make an empty directory a root file system holding `binary` and its libraries. */
export function minimalRootfs(
  binary = g.Deno?.execPath() ?? process.execPath,
): { dir: string; options: string[]; runtime: string[] } {
  const options = runtimeMounts(binary);
  // The checkout, and node_modules where it is a link (a worktree's).
  options.push("-v", `${ROOT}:${ROOT}:ro`);
  const nm = path.join(ROOT, "node_modules");
  const nmReal = fs.realpathSync(nm);
  if (nmReal !== nm) options.push("-v", `${nmReal}:${nmReal}:ro`);
  // Deno writes its cache; nothing else here may be written.
  options.push("--tmpfs", "/tmp", "-e", "DENO_DIR=/tmp/deno", "-e", "HOME=/tmp");
  return { dir: tempDir(), options, runtime: containerRuntime() };
}

/** The runtime running this file, as the host has it (its binary's real path). */
export const HOST_RUNTIME = fs.realpathSync(g.Deno?.execPath() ?? process.execPath);

/**
 * A full root file system: the host's own, behind a throw-away overlay
 * (--rootfs /:O), as a distribution's image is (a shell, coreutils, the
 * distribution's libraries), with the runtime at its path on the host. An
 * overlay mount, nothing copied: a start costs what the minimal one does.
 * The checkout is mounted too, for a checkout on a file system of its own
 * (the overlay holds only the root file system's).
 */
export function fullRootfs(): { dir: string; options: string[]; runtime: string[] } {
  const options = ["-v", `${ROOT}:${ROOT}:ro`];
  const nm = path.join(ROOT, "node_modules");
  const nmReal = fs.realpathSync(nm);
  if (nmReal !== nm) options.push("-v", `${nmReal}:${nmReal}:ro`);
  return { dir: "/:O", options, runtime: [HOST_RUNTIME, ...containerRuntime().slice(1)] };
}

/** `podman run --rm ARGS...`, through test/podrun.sh. */
export function podrun(args: string[]): string[] {
  return ["/bin/bash", path.join(ROOT, "test", "podrun.sh"), ...args];
}

/** `podman run --rm OPTIONS --rootfs DIR COMMAND...`, through test/podrun.sh. */
export function podman(options: string[], rootfs: string, command: string[]): string[] {
  return podrun([...options, "--rootfs", rootfs, ...command]);
}
