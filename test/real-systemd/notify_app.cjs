// The service test/systemd_notify.test.ts starts 200 times as User=nobody:
// READY=1, then STATUS= naming its PID, then "sent PID" on stdout once both
// calls have resolved; STOPPING=1 on SIGTERM. argv[2] is the package's
// dist/node.cjs (a copy nobody may read).
const sa = require(process.argv[2]);

const fail = (e) => {
  process.stdout.write(`error ${e.code}: ${e.message}\n`);
  process.exit(1);
};
process.on("SIGTERM", () => sa.stopping().then(() => process.exit(0), fail));
sa.ready()
  .then(() => sa.status(`serving as PID ${process.pid}`))
  .then(() => process.stdout.write(`sent ${process.pid}\n`), fail);
setInterval(() => {}, 1 << 30);
