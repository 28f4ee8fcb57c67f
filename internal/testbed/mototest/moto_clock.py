"""Start moto_server with a movable clock for EBS.

moto stamps snapshots and volumes with utcnow() imported into
moto.ec2.models.elastic_block_store. This wrapper replaces that name with real time plus an
offset in seconds read, at every call, from the file named by SNAPFLEET_MOTO_CLOCK, so a
test can give snapshots different StartTimes; "=T" in the file stops the clock at the Unix
time T. All arguments go to moto_server.
"""
import datetime
import os
import sys
import time

import moto.ec2.models.elastic_block_store as ebs
from moto.core.utils import utcnow as real_utcnow

CLOCK = os.environ.get("SNAPFLEET_MOTO_CLOCK", "")


def shifted_utcnow():
    offset = 0.0
    if CLOCK:
        try:
            with open(CLOCK) as f:
                text = f.read().strip()
            if text.startswith("="):
                offset = float(text[1:]) - time.time()
            else:
                offset = float(text or 0)
        except (OSError, ValueError):
            offset = 0.0
    return real_utcnow() + datetime.timedelta(seconds=offset)


ebs.utcnow = shifted_utcnow

# moto makes every snapshot completed at once. A snapshot whose description is
# "snapfleet-test:state=STATE" is made in STATE instead (error, pending), for the tests of
# what snapfleet shows of failed and unfinished snapshots.
STATE_PREFIX = "snapfleet-test:state="
real_snapshot_init = ebs.Snapshot.__init__


def snapshot_init(self, *args, **kwargs):
    real_snapshot_init(self, *args, **kwargs)
    if (self.description or "").startswith(STATE_PREFIX):
        self.status = self.description[len(STATE_PREFIX):]


ebs.Snapshot.__init__ = snapshot_init

# moto 5.2 has no DescribeLockedSnapshots (it answers 500). Serve AWS's answer for an
# account that locked nothing, so snapfleet's lock check runs as it does against AWS;
# tests that need a locked snapshot inject one in the SDK.
from moto.ec2.responses.elastic_block_store import ElasticBlockStore  # noqa: E402

if not hasattr(ElasticBlockStore, "describe_locked_snapshots"):

    def describe_locked_snapshots(self):
        return (
            '<DescribeLockedSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            "<requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>"
            "<snapshotSet/></DescribeLockedSnapshotsResponse>"
        )

    ElasticBlockStore.describe_locked_snapshots = describe_locked_snapshots

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
