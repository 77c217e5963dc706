// Number parsing exactly as systemd's parse-util does it for the activation
// variables: `safe_atolu` (LISTEN_PID, through parse_pid), `safe_atoi`
// (LISTEN_FDS) and `safe_atou64` (LISTEN_PIDFDID), each a glibc strto[u]l with
// base 0 behind systemd's `mangle_base`. Checked case by case against the real
// libsystemd in test/listen_fds_oracle.test.ts.

/** The result of a parse: a value, or the errno name libsystemd returns. */
export type Parsed = { value: bigint } | { error: "EINVAL" | "ERANGE" };

// systemd's WHITESPACE, skipped before mangle_base; glibc's isspace() (which
// strtoul skips on its own, after mangle_base) adds \v and \f.
const SD_WHITESPACE = " \t\n\r";
const C_SPACE = " \t\n\r\v\f";

const U64_MAX = (1n << 64n) - 1n;
const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);

function digitValue(c: string): number {
  const code = c.charCodeAt(0);
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 122) return code - 87;
  if (code >= 65 && code <= 90) return code - 55;
  return 99;
}

interface Strto {
  /** The magnitude parsed, before any sign is applied. */
  magnitude: bigint;
  negative: boolean;
  /** Index just past the number, or the start index when nothing parsed. */
  end: number;
  consumed: boolean;
}

/** glibc `strtoul`/`strtol` scanning (C locale, no C23 `0b` prefix). */
function strto(s: string, start: number, base: number): Strto {
  let i = start;
  while (i < s.length && C_SPACE.includes(s[i])) i++;
  let negative = false;
  if (s[i] === "+" || s[i] === "-") {
    negative = s[i] === "-";
    i++;
  }
  if (base === 0) {
    if (s[i] === "0" && (s[i + 1] === "x" || s[i + 1] === "X")) {
      // "0x" only counts as a prefix when a hex digit follows; otherwise
      // strtoul parses the "0" and stops at the "x".
      if (i + 2 < s.length && digitValue(s[i + 2]) < 16) {
        base = 16;
        i += 2;
      } else {
        base = 8;
      }
    } else if (s[i] === "0") {
      base = 8;
    } else {
      base = 10;
    }
  }
  let magnitude = 0n;
  const digitsStart = i;
  const b = BigInt(base);
  while (i < s.length) {
    const d = digitValue(s[i]);
    if (d >= base) break;
    magnitude = magnitude * b + BigInt(d);
    i++;
  }
  if (i === digitsStart) return { magnitude: 0n, negative, end: start, consumed: false };
  return { magnitude, negative, end: i, consumed: true };
}

/** systemd's mangle_base: Python-style `0b` and `0o` prefixes. */
function mangleBase(s: string, start: number): { start: number; base: number } {
  const p = s.slice(start, start + 2);
  if (p === "0b" || p === "0B") return { start: start + 2, base: 2 };
  if (p === "0o" || p === "0O") return { start: start + 2, base: 8 };
  return { start, base: 0 };
}

function skipSdWhitespace(s: string): number {
  let i = 0;
  while (i < s.length && SD_WHITESPACE.includes(s[i])) i++;
  return i;
}

// C strings end at the first NUL byte: an environment value cannot hold one,
// but a caller-supplied `env` object can, so cut there as getenv() would.
function cString(s: string): string {
  const nul = s.indexOf("\0");
  return nul < 0 ? s : s.slice(0, nul);
}

/** systemd `safe_atollu` (= `safe_atolu` on 64-bit): an unsigned 64-bit number. */
export function safeAtou64(input: string): Parsed {
  const s = cString(input);
  const { start, base } = mangleBase(s, skipSdWhitespace(s));
  const r = strto(s, start, base);
  // strtoul's own ERANGE (overflow) is checked before the trailing junk.
  if (r.magnitude > U64_MAX) return { error: "ERANGE" };
  if (!r.consumed || r.end !== s.length) return { error: "EINVAL" };
  // A leading "-" that strtoul accepted is refused, unless the value is 0
  // ("-0" parses as 0). The check looks at s[start] only, so "\v-1" slips by
  // as strtoul's wrapped value 2^64-1, exactly as in C.
  if (r.magnitude !== 0n && s[start] === "-") return { error: "ERANGE" };
  const value = r.negative ? (U64_MAX + 1n - r.magnitude) & U64_MAX : r.magnitude;
  return { value };
}

/** systemd `safe_atoi`: a signed int. */
export function safeAtoi(input: string): Parsed {
  const s = cString(input);
  const { start, base } = mangleBase(s, skipSdWhitespace(s));
  const r = strto(s, start, base);
  const value = r.negative ? -r.magnitude : r.magnitude;
  // strtol's own ERANGE (outside long) comes before the trailing-junk check,
  // the int range check after it.
  if (value > I64_MAX || value < I64_MIN) return { error: "ERANGE" };
  if (!r.consumed || r.end !== s.length) return { error: "EINVAL" };
  if (value > 2147483647n || value < -2147483648n) return { error: "ERANGE" };
  return { value };
}

/** systemd `parse_pid`: `safe_atolu`, then it must fit pid_t and be > 0. */
export function parsePid(input: string): Parsed {
  const r = safeAtou64(input);
  if ("error" in r) return r;
  // (pid_t) ul must round-trip: values of 2^31 and above do not, except the
  // wrapped negatives, which give a pid <= 0 and fail pid_is_valid below.
  let pid = r.value;
  if (pid >= 1n << 63n) pid -= 1n << 64n; // unsigned long -> signed view
  if (pid > 2147483647n || pid < -2147483648n) return { error: "ERANGE" };
  if (pid <= 0n) return { error: "ERANGE" };
  return { value: pid };
}
