#!/usr/bin/env bash
# Makes sure python3 can import moto's server (moto 5.x with the [server] extra). The test
# suite and the demo start moto_server themselves through internal/testbed/mototest/moto_clock.py.
set -euo pipefail
py=${SNAPFLEET_PYTHON:-python3}
if "$py" -c 'import moto, moto.server, flask' 2>/dev/null; then
  exit 0
fi
echo "moto[server] is not importable by $py; trying pip install 'moto[server]>=5.2,<6'" >&2
if "$py" -m pip install --quiet 'moto[server]>=5.2,<6' && "$py" -c 'import moto.server'; then
  exit 0
fi
echo "error: moto_server is required for the tests and the demo and could not be installed (python3 -m pip install 'moto[server]')" >&2
exit 1
