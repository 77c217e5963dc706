// Activation environments for the differential test against libsystemd:
// hand-picked edges plus seeded random ones, the same list in every runtime.
// LISTEN_PID values are templates ({PID}, {PIDX}, {PIDO}, {PIDB}, {PID+1}) so
// that each side can render them with the PID it compares against.

export type Case = Record<string, string>;

const PIDS = [
  "{PID}",
  " {PID}",
  "\t{PID}",
  "\n{PID}",
  "\r{PID}",
  "\v{PID}",
  "\f{PID}",
  "  \t {PID}",
  "+{PID}",
  " +{PID}",
  "+ {PID}",
  "0x{PIDX}",
  "0X{PIDX}",
  " 0x{PIDX}",
  "+0x{PIDX}",
  "0{PIDO}",
  "00{PIDO}",
  "0o{PIDO}",
  "0O{PIDO}",
  " 0o{PIDO}",
  "+0o{PIDO}",
  "0b{PIDB}",
  "0B{PIDB}",
  " 0b{PIDB}",
  "+0b{PIDB}",
  "{PID} ",
  "{PID}\n",
  "{PID}x",
  "{PID}.0",
  "-{PID}",
  " -{PID}",
  "\v-{PID}",
  "0b-{PIDB}",
  "0x-{PIDX}",
  "{PID+1}",
  "1",
  "0",
  "-0",
  "+0",
  "00",
  "0x0",
  "0b0",
  "0o0",
  "",
  " ",
  "+",
  "-",
  "0x",
  "0X",
  "0b",
  "0o",
  "junk",
  "{PID}junk",
  "99999999999",
  "2147483647",
  "2147483648",
  "4294967295",
  "4294967296",
  "18446744073709551615",
  "18446744073709551616",
  "-1",
  "-18446744073709551615",
  "0xffffffffffffffff",
  "0x10000000000000000",
  "08",
  "09",
  "0o8",
  "0b2",
  "1e3",
  "٣",
  "{PID}0000000000",
];

const FDS = [
  "1",
  "2",
  "3",
  " 1",
  "\t2",
  "\n1",
  "\v1",
  "+1",
  " +2",
  "+ 1",
  "0x1",
  "0X2",
  "0b1",
  "0B10",
  "0o1",
  "0O2",
  " 0b1",
  "+0b1",
  "01",
  "02",
  "010",
  "08",
  "0",
  "-0",
  "+0",
  "-1",
  "-2",
  " -1",
  "0b-1",
  "0x-1",
  "1 ",
  "1\n",
  "",
  " ",
  "+",
  "-",
  "0x",
  "0b",
  "0o",
  "x1",
  "junk",
  "1junk",
  "1.0",
  "1e0",
  "2147483644",
  "2147483645",
  "2147483647",
  "2147483648",
  "-2147483648",
  "-2147483649",
  "4294967297",
  "99999999999",
  "9223372036854775807",
  "9223372036854775808",
  "-9223372036854775808",
  "-9223372036854775809",
  "0x7fffffff",
  "0x80000000",
  "0xffffffffffffffff",
  "٢",
  "1\t",
];

const LONG = "n".repeat(300);
const NAMES = [
  "web",
  "a:b",
  "a::b",
  "a:b:c",
  ":",
  "::",
  "a:",
  ":a",
  "",
  " ",
  "unknown",
  "stored",
  "connection",
  "web:admin",
  "web:web",
  LONG,
  `${LONG}:${LONG}`,
  "sp ace:tab\there",
  "ünï:cødé",
  "a=b:c=d",
  "x:y:z:w",
  "a\\:b",
  "a\\",
  "a\\\\:b",
  "\\:",
  "a\\b",
  "%:$",
  "1:2",
  "::::",
  '"a:b"',
  "'x:y'",
];

/** A small seeded PRNG (mulberry32), so every runtime sees the same cases. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = "0123456789abcdefxXbBoO+- \t\n\v:{}\\";

function randomText(r: () => number, max: number): string {
  let s = "";
  const n = Math.floor(r() * max);
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
  return s;
}

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}

/** Hand-picked cases: every row of shared/docs/protocol.md plus the edges. */
export function handPicked(): Case[] {
  const cases: Case[] = [
    {},
    { LISTEN_FDS: "1" },
    { LISTEN_PID: "{PID}" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "0" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: " 2" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "+2" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "0x2" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "0b10" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "2 " },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "010" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "08" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "99999999999" },
    { LISTEN_PID: "0", LISTEN_FDS: "1" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "2", LISTEN_FDNAMES: "a" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "3", LISTEN_FDNAMES: "a::b" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "2", LISTEN_FDNAMES: "a::b" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "1", LISTEN_FDNAMES: LONG },
    { LISTEN_PID: "{PID+1}", LISTEN_FDS: "junk" },
    { LISTEN_PID: "junk", LISTEN_FDS: "1" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "2", LISTEN_FDNAMES: "web:admin" },
    { LISTEN_PID: "{PID}", LISTEN_FDS: "100000" },
    { LISTEN_FDNAMES: "a\\" },
    { LISTEN_PID: "{PID+1}", LISTEN_FDS: "1", LISTEN_FDNAMES: "x\\" },
  ];
  for (const p of PIDS) cases.push({ LISTEN_PID: p, LISTEN_FDS: "1" });
  for (const f of FDS) cases.push({ LISTEN_PID: "{PID}", LISTEN_FDS: f });
  for (const n of NAMES) {
    for (const f of ["1", "2", "3"]) cases.push({ LISTEN_PID: "{PID}", LISTEN_FDS: f, LISTEN_FDNAMES: n });
  }
  return cases;
}

/** `count` seeded random cases mixing the lists above with random text. */
export function generated(count: number, seed = 20261124): Case[] {
  const r = prng(seed);
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const c: Case = {};
    const mode = r();
    if (r() < 0.92) {
      c.LISTEN_PID = mode < 0.7 ? pick(r, PIDS.slice(0, 25)) : mode < 0.85 ? pick(r, PIDS) : randomText(r, 8);
    }
    if (r() < 0.92) c.LISTEN_FDS = r() < 0.8 ? pick(r, FDS) : randomText(r, 6);
    if (r() < 0.7) c.LISTEN_FDNAMES = r() < 0.7 ? pick(r, NAMES) : randomText(r, 12);
    cases.push(c);
  }
  return cases;
}

/** Renders a LISTEN_PID template for `pid`. */
export function renderPid(template: string, pid: number): string {
  return template
    .replaceAll("{PIDX}", pid.toString(16))
    .replaceAll("{PIDO}", pid.toString(8))
    .replaceAll("{PIDB}", pid.toString(2))
    .replaceAll("{PID+1}", String(pid + 1))
    .replaceAll("{PID}", String(pid));
}
