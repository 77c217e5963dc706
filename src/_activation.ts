// The process's activation fds, read once: listenFds() unsets the variables,
// so a second listen() (another named socket) must not read them again.
import type { ListenFd } from "./listen_fds.ts";

let cached: { fds: ListenFd[] } | { error: unknown } | undefined;
const claimed = new Set<number>();

/** Records what listenFds() read from the real environment. */
export function remember(result: { fds: ListenFd[] } | { error: unknown }): void {
  cached = result;
}

/** The cached result, or undefined before the first read. */
export function remembered(): { fds: ListenFd[] } | { error: unknown } | undefined {
  return cached;
}

/** Marks an fd as served; false when another server already took it. */
export function claim(fd: number): boolean {
  if (claimed.has(fd)) return false;
  claimed.add(fd);
  return true;
}

export function release(fd: number): void {
  claimed.delete(fd);
}
