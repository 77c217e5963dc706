// POSIX paths for `socket-activate unit`, without node:path (src/ stays free
// of runtime modules).

export function basename(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

export function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

export function join(...parts: string[]): string {
  return resolvePath("/", parts.join("/"));
}

/** `p` made absolute against `base`, with . and .. folded. */
export function resolvePath(base: string, p: string): string {
  const out: string[] = [];
  for (const part of (p.startsWith("/") ? p : `${base}/${p}`).split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}
