#!/bin/sh
# snapfleet's default pre hook (consistency: application): freeze the filesystems mounted
# from the instance's EBS data volumes, so that CreateSnapshots takes them at rest.
#
# Run by SSM (AWS-RunShellScript) as root. Inputs, from the environment:
#   SNAPFLEET_VOLUMES     EBS volume ids to freeze (vol-…), space-separated; their NVMe
#                         serial or, on Xen, SNAPFLEET_DEVICES finds their block device
#   SNAPFLEET_DEVICES     their block device mapping names (/dev/sdf …), same order
#   SNAPFLEET_MOUNTS      mount points to freeze instead of looking the volumes up (tests)
#   SNAPFLEET_MAX_FREEZE  seconds after which the watchdog thaws whatever happens (10)
#   SNAPFLEET_STATE       where the frozen list and the watchdog's pid are kept (/run/snapfleet)
#
# The root filesystem is never frozen. The watchdog is armed before the first freeze and
# runs in its own session, so it thaws even if the worker, SSM or this script dies.
set -eu
set -f # the lists in the environment are split, never globbed

max=${SNAPFLEET_MAX_FREEZE:-10}
state=${SNAPFLEET_STATE:-/run/snapfleet}
mkdir -p "$state"

# device_of prints the block device of volume $1 (vol-0abc…), device name $2 (/dev/sdf).
device_of() {
	serial=$(printf '%s' "$1" | tr -d -)
	link=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$serial
	if [ -e "$link" ]; then
		readlink -f "$link"
		return 0
	fi
	name=${2:-}
	for dev in "$name" "$(printf '%s' "$name" | sed 's|^/dev/sd|/dev/xvd|')"; do
		if [ -n "$dev" ] && [ -b "$dev" ]; then
			readlink -f "$dev"
			return 0
		fi
	done
	return 1
}

# mounts_of prints the mount points of device $1 and its partitions, one a line.
mounts_of() {
	lsblk -nrpo MOUNTPOINT "$1" 2>/dev/null | sed '/^$/d' || true
}

# mounts prints the mount points to freeze, one a line. The lists are split on blanks.
# shellcheck disable=SC2086
mounts() {
	if [ -n "${SNAPFLEET_MOUNTS:-}" ]; then
		printf '%s\n' $SNAPFLEET_MOUNTS
		return 0
	fi
	set -- ${SNAPFLEET_DEVICES:-}
	for vol in ${SNAPFLEET_VOLUMES:-}; do
		name=${1:-}
		[ $# -gt 0 ] && shift
		if dev=$(device_of "$vol" "$name"); then
			mounts_of "$dev"
		else
			echo "snapfleet: volume $vol ($name) has no block device here; not frozen" >&2
		fi
	done
}

list=$state/frozen
: >"$list"
for m in $(mounts | sort -u); do
	case $m in
	/ | "[SWAP]") continue ;; # never the root filesystem
	esac
	printf '%s\n' "$m" >>"$list"
done

if [ ! -s "$list" ]; then
	echo "snapfleet: no data filesystem to freeze"
	exit 0
fi

# The watchdog: a session of its own that sleeps max seconds, then thaws every listed
# filesystem. thaw.sh kills it once it has thawed them itself.
# shellcheck disable=SC2016 # expanded by the watchdog's shell
setsid nohup sh -c 'sleep "$1"; while read -r m; do fsfreeze -u "$m" 2>/dev/null; done <"$2"; rm -f "$3"' \
	snapfleet-watchdog "$max" "$list" "$state/watchdog" </dev/null >/dev/null 2>&1 &
echo $! >"$state/watchdog"

while read -r m; do
	if ! fsfreeze -f "$m"; then
		echo "snapfleet: freezing $m failed; thawing what was frozen" >&2
		while read -r t; do fsfreeze -u "$t" 2>/dev/null || true; done <"$list"
		exit 1
	fi
	echo "snapfleet: froze $m (the watchdog thaws it in ${max}s)"
done <"$list"
