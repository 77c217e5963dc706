#!/bin/bash
# fdstore_check.sh UNIT: run by run-units.sh (test/systemd_notify.test.ts, Node
# 26). Starts UNIT (test/real-systemd/fdstore_app.cjs), checks that its
# WATCHDOG=1 pings arrive (systemd's WatchdogTimestamp moves, and it outlives
# one and a half WatchdogSec=1 while pinging), restarts it and prints what each process
# said in STATUS=, one "KEY value" line each.
unit=$1
show() { $SYSTEMCTL show -P "$1" "$unit"; }
$SYSTEMCTL start "$unit" || { echo "start failed"; exit 1; }
echo "status1 $(show StatusText)"
pid1=$(show MainPID) wd1=$(show WatchdogTimestampMonotonic)
echo "stored $(show NFileDescriptorStore)"
sleep 1.5
wd2=$(show WatchdogTimestampMonotonic)
[ "$wd2" != "$wd1" ] && [ "$wd2" != 0 ] && echo "watchdog moved"
[ "$(show MainPID)" = "$pid1" ] && echo "same pid after 1.5 s"
$SYSTEMCTL restart "$unit" || { echo "restart failed"; exit 1; }
pid2=$(show MainPID)
[ "$pid2" != "$pid1" ] && [ "$pid2" != 0 ] && echo "restarted"
echo "status2 $(show StatusText)"
$SYSTEMCTL stop "$unit"
echo "result $(show Result)"
