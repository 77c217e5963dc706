// Whether node:net binds an abstract unix name as given. libuv before 1.48
// (Node 20) pads the name with NUL bytes to the full 108 of sun_path, so no
// other program that spells the name can connect (nodejs/node#50889, fixed by
// libuv/libuv#4030 in 1.48, Node 22). Deno's node:net is not libuv's: it binds
// the name as given. Detected from the libuv version, not assumed from Node's.

/** True where node:net's listen({ path: "\0name" }) binds exactly "\0name". */
export function abstractBindWorks(): boolean {
  const versions = (globalThis as { process?: { versions?: Record<string, string | undefined> } }).process
    ?.versions;
  if ((globalThis as { Deno?: unknown }).Deno !== undefined) return true;
  const [major, minor] = (versions?.uv ?? "0.0").split(".").map(Number);
  return major > 1 || (major === 1 && minor >= 48);
}
