"""Start moto_server with a movable clock for EBS.

moto stamps snapshots and volumes with utcnow() imported into
moto.ec2.models.elastic_block_store. This wrapper replaces that name with real time plus an
offset in seconds read, at every call, from the file named by SNAPFLEET_MOTO_CLOCK, so a
test can give snapshots different StartTimes. All arguments go to moto_server.
"""
import datetime
import os
import sys

import moto.ec2.models.elastic_block_store as ebs
from moto.core.utils import utcnow as real_utcnow

CLOCK = os.environ.get("SNAPFLEET_MOTO_CLOCK", "")


def shifted_utcnow():
    offset = 0.0
    if CLOCK:
        try:
            with open(CLOCK) as f:
                offset = float(f.read().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
    return real_utcnow() + datetime.timedelta(seconds=offset)


ebs.utcnow = shifted_utcnow

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
