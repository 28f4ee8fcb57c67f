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

# moto 5.2's EBS direct API answers ListSnapshotBlocks and ListChangedBlocks with block
# indexes as strings (the SDKs want numbers), requires ListChangedBlocks' first snapshot,
# leaves out the blocks only the second snapshot has, and says blocks are 512 bytes. Serve
# AWS's answers instead, from moto's own blocks: every block written in either snapshot
# whose data differs, in AWS's 512 KiB blocks.
AWS_BLOCK_SIZE = 512 * 1024
import json  # noqa: E402

from moto.ebs.responses import EBSResponse  # noqa: E402


def list_snapshot_blocks(self):
    snap = self.ebs_backend.snapshots[self.path.split("/")[-2]]
    blocks = [{"BlockIndex": int(i), "BlockToken": b.block_token} for i, b in sorted(snap.blocks.items(), key=lambda kv: int(kv[0]))]
    return json.dumps({"Blocks": blocks, "VolumeSize": snap.volume_size, "BlockSize": AWS_BLOCK_SIZE})


def list_changed_blocks(self):
    first_id = self._get_params().get("firstSnapshotId")
    second = self.ebs_backend.snapshots[self.path.split("/")[-2]]
    first = self.ebs_backend.snapshots[first_id].blocks if first_id else {}
    out = []
    for i in sorted(set(first) | set(second.blocks), key=int):
        a, b = first.get(i), second.blocks.get(i)
        if a is not None and b is not None and a.block_data == b.block_data:
            continue
        entry = {"BlockIndex": int(i)}
        if a is not None:
            entry["FirstBlockToken"] = a.block_token
        if b is not None:
            entry["SecondBlockToken"] = b.block_token
        out.append(entry)
    return json.dumps({"ChangedBlocks": out, "VolumeSize": second.volume_size, "BlockSize": AWS_BLOCK_SIZE})


EBSResponse.list_snapshot_blocks = list_snapshot_blocks
EBSResponse.list_changed_blocks = list_changed_blocks

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
