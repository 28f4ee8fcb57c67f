#!/bin/sh
# snapfleet's default post hook: thaw what freeze.sh froze and disarm its watchdog. Safe to
# run more than once and after the watchdog thawed already. Inputs as freeze.sh's.
set -u

state=${SNAPFLEET_STATE:-/run/snapfleet}
list=$state/frozen
status=0

if [ -s "$list" ]; then
	while read -r m; do
		if out=$(fsfreeze -u "$m" 2>&1); then
			echo "snapfleet: thawed $m"
			continue
		fi
		case $out in
		*"Invalid argument"*) echo "snapfleet: $m was not frozen (the watchdog thawed it)" ;;
		*)
			echo "snapfleet: thawing $m: $out" >&2
			status=1
			;;
		esac
	done <"$list"
fi

if [ -s "$state/watchdog" ]; then
	pid=$(cat "$state/watchdog")
	kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
	rm -f "$state/watchdog"
fi
[ "$status" -ne 0 ] || rm -f "$list"
exit "$status"
