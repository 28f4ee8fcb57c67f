#!/usr/bin/env bash
# Makes sure a headless Chromium is on the PATH for the HTML report's rendering test
# (internal/report): Debian's chromium package, installed with apt-get when missing.
set -euo pipefail
for b in chromium chromium-browser; do
  if command -v "$b" >/dev/null 2>&1; then
    exit 0
  fi
done
echo "chromium is missing; installing Debian's chromium package" >&2
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if $sudo apt-get install -y -qq chromium >/dev/null 2>&1 ||
     { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium; }; then
    command -v chromium >/dev/null 2>&1 && exit 0
  fi
fi
echo "error: chromium is required for the HTML report test and could not be installed (apt-get install chromium)" >&2
exit 1
