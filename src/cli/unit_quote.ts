// How `socket-activate unit` writes a value systemd reads back unchanged:
// %-specifiers, $ and ; in ExecStart=, and C-style quoting.

/** systemd expands %-specifiers in most settings: a literal % is %%. */
export function specifiers(s: string): string {
  return s.replaceAll("%", "%%");
}

/** One ExecStart= word: %, $ and ; escaped, quoted when it holds space or quotes. */
export function execWord(w: string): string {
  if (w === ";") return "\\;";
  return quote(specifiers(w).replaceAll("$", "$$$$"));
}

export function quote(w: string): string {
  if (w !== "" && !/[\s"'\\]/.test(w) && !hasControl(w)) return w;
  let q = "";
  for (const c of w) {
    const code = c.charCodeAt(0);
    if (c === "\\" || c === '"') q += "\\" + c;
    else if (c === "\n") q += "\\n";
    else if (c === "\t") q += "\\t";
    else if (code < 0x20 || code === 0x7f) q += "\\x" + code.toString(16).padStart(2, "0");
    else q += c;
  }
  return `"${q}"`;
}

export function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
