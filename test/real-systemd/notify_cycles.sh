#!/bin/bash
# notify_cycles.sh DIR N UNIT...: run by run-units.sh. Starts and stops each
# UNIT N times, the units side by side, from inside systemd's namespaces (an
# nsenter per systemctl costs a third more). A start fails when READY=1 is
# lost (TimeoutStartSec= in the unit); once the service has written "sent
# PID" to the FIFO DIR/UNIT.fifo (its stdout), StatusText must name that PID.
# Any other line the service writes goes to DIR/UNIT.log. Prints one line a
# unit: "UNIT cycles N noready A nostatus B". Forks only for systemctl: the
# CPU is the test's budget.
DIR=$1 N=$2; shift 2
for unit in "$@"; do
  # shellcheck disable=SC2016
  $NSENTER bash -c '
    unit=$1 N=$2 fifo=$3 log=$4 noready=0 nostatus=0
    exec {out}<>"$fifo"  # read-write: the service never blocks opening it, nor fails writing
    for _ in $(seq "$N"); do
      if ! systemctl start "$unit" 2>/dev/null; then
        noready=$((noready + 1)); systemctl stop "$unit"
        while read -r -t 0.1 -u "$out" line; do :; done  # its "sent PID", if any
        continue
      fi
      pid=""
      while read -r -t 3 -u "$out" line; do
        [ "${line#sent }" != "$line" ] && { pid=${line#sent }; break; }
        echo "$line" >>"$log"
      done
      [ "$(systemctl show -P StatusText "$unit")" = "serving as PID $pid" ] || nostatus=$((nostatus + 1))
      systemctl stop "$unit"
    done
    while read -r -t 0.5 -u "$out" line; do echo "$line" >>"$log"; done
    echo "$unit cycles $N noready $noready nostatus $nostatus"' - "$unit" "$N" "$DIR/$unit.fifo" "$DIR/$unit.log" &
done
wait
