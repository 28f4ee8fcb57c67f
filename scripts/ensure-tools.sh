#!/usr/bin/env bash
# Makes sure the tools the tests need besides Go and moto are installed: shellcheck (the
# default hook scripts, worker/hooks/*.sh) and the filesystem tools the hook scripts'
# test uses on a loop-mounted filesystem (mkfs.ext4 from e2fsprogs; losetup, fsfreeze,
# setsid, lsblk from util-linux). Installs the missing ones from Debian packages with
# apt-get when it can, else fails with the reason.
set -euo pipefail
declare -A pkg=([shellcheck]=shellcheck [mkfs.ext4]=e2fsprogs [losetup]=util-linux [fsfreeze]=util-linux
	[setsid]=util-linux [lsblk]=util-linux)
missing=()
for tool in "${!pkg[@]}"; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t want < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "installing ${want[*]} (needed by make test)" >&2
if ! command -v apt-get >/dev/null 2>&1; then
	echo "error: ${want[*]} missing and apt-get is not available: install them" >&2
	exit 1
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
install() { "${sudo[@]}" apt-get install -y -q "${want[@]}" >/dev/null; }
if ! install && ! { "${sudo[@]}" apt-get update -q >/dev/null && install; }; then
	echo "error: could not install ${want[*]} with apt-get" >&2
	exit 1
fi
