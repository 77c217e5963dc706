// The service test/systemd_notify.test.ts restarts as User=nobody on Node 26
// (NotifyAccess=main, FileDescriptorStoreMax=, WatchdogSec=). argv[2] is the
// package's dist/node.cjs, argv[3] a file holding "first\nsecond\n". Started
// with nothing stored, it opens the file, reads "first\n" and puts the open
// file into the fd store as "data"; started again, it gets that fd back in
// LISTEN_FDS and reads on from where the first process stopped: "second\n",
// which only the same open file (its offset) gives. Either way READY=1, a
// STATUS= saying what it read, and WATCHDOG=1 four times a WatchdogSec=.
const sa = require(process.argv[2]);
const fs = require("node:fs");

const fail = (e) => {
  process.stdout.write(`error ${e.code}: ${e.message}\n`);
  process.exit(1);
};
const readLine = (fd, n) => {
  const buf = Buffer.alloc(n);
  return buf.subarray(0, fs.readSync(fd, buf, 0, n, null)).toString().trim();
};
(async () => {
  const kept = sa.listenFds().find((f) => f.name === "data");
  if (kept === undefined) {
    const fd = fs.openSync(process.argv[3], "r");
    const line = readLine(fd, 6);
    await sa.storeFds([fd], "data");
    fs.closeSync(fd); // systemd holds its own
    await sa.status(`stored the file after reading ${line}`);
  } else {
    await sa.status(`got fd ${kept.fd} back and read ${readLine(kept.fd, 7)}`);
  }
  await sa.ready();
  const usec = sa.watchdogInterval();
  if (usec === undefined) throw Object.assign(new Error("no WATCHDOG_USEC"), { code: "EINVAL" });
  setInterval(() => sa.watchdog().catch(fail), usec / 4000);
})().catch(fail);
process.on("SIGTERM", () => sa.stopping().then(() => process.exit(0), fail));
