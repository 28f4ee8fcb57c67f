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
# moto 5.2 copies a snapshot only from the caller's own account. AWS copies one another
# account shared with the caller (createVolumePermission): look there too, and refuse an
# unshared one as AWS does.
from moto.ec2.exceptions import InvalidSnapshotIdError  # noqa: E402
from moto.ec2.models.elastic_block_store import EBSBackend  # noqa: E402
from moto.ec2.models.elastic_block_store import Snapshot as _Snapshot  # noqa: E402

_real_copy_snapshot = EBSBackend.copy_snapshot


def _shared_source(backend, source_region, snapshot_id):
    from moto.ec2.models import ec2_backends

    for account_id in list(ec2_backends.keys()):
        if account_id == backend.account_id:
            continue
        other = ec2_backends[account_id].get(source_region)
        snap = other.snapshots.get(snapshot_id) if other is not None else None
        if snap is None:
            continue
        if backend.account_id in snap.create_volume_permission_userids or "all" in snap.create_volume_permission_groups:
            return snap
    return None


def copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id):
    try:
        return _real_copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id)
    except InvalidSnapshotIdError:
        src = _shared_source(self, source_region, source_snapshot_id)
        if src is None:
            raise
    snap = _Snapshot(self, ebs.random_snapshot_id(), volume=src.volume, description=description,
                     encrypted=src.encrypted, kms_key_id=kms_key_id)
    self.snapshots[snap.id] = snap
    return snap


EBSBackend.copy_snapshot = copy_snapshot

# moto 5.2 has no archive tier: serve ModifySnapshotTier, RestoreSnapshotTier and
# DescribeSnapshotTierStatus, and show StorageTier and RestoreExpiryTime in
# DescribeSnapshots. Tiering and restores complete at once.
_Snapshot.storage_tier = "standard"
_Snapshot.restore_expiry_time = None
_Snapshot.tier_status = None

_NS = 'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"'
_RID = "<requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>"


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def modify_snapshot_tier(self):
    snap = self.ec2_backend.get_snapshot(self._get_param("SnapshotId"))
    self.error_on_dryrun()
    now = shifted_utcnow()
    snap.storage_tier, snap.restore_expiry_time = "archive", None
    snap.tier_status = ("archival-completed", now)
    return (f"<ModifySnapshotTierResponse {_NS}>{_RID}<snapshotId>{snap.id}</snapshotId>"
            f"<tieringStartTime>{_iso(now)}</tieringStartTime></ModifySnapshotTierResponse>")


def restore_snapshot_tier(self):
    snap = self.ec2_backend.get_snapshot(self._get_param("SnapshotId"))
    days = self._get_int_param("TemporaryRestoreDays")
    permanent = str(self._get_param("PermanentRestore") or "").lower() == "true"
    self.error_on_dryrun()
    now = shifted_utcnow()
    snap.storage_tier = "standard"
    if permanent:
        snap.restore_expiry_time = None
        snap.tier_status = ("permanent-restore-completed", now)
    else:
        snap.restore_expiry_time = now + datetime.timedelta(days=days or 1)
        snap.tier_status = ("temporary-restore-completed", now)
    return (f"<RestoreSnapshotTierResponse {_NS}>{_RID}<snapshotId>{snap.id}</snapshotId>"
            f"<restoreStartTime>{_iso(now)}</restoreStartTime><restoreDuration>{days or 0}</restoreDuration>"
            f"<isPermanentRestore>{str(permanent).lower()}</isPermanentRestore></RestoreSnapshotTierResponse>")


def describe_snapshot_tier_status(self):
    items = []
    for snap in self.ec2_backend.snapshots.values():
        if snap.tier_status is None:
            continue
        status, when = snap.tier_status
        expiry = ""
        if snap.restore_expiry_time is not None:
            expiry = f"<restoreExpiryTime>{_iso(snap.restore_expiry_time)}</restoreExpiryTime>"
        items.append(
            f"<item><snapshotId>{snap.id}</snapshotId><volumeId>{snap.volume.id}</volumeId><status>{snap.status}</status>"
            f"<ownerId>{snap.owner_id}</ownerId><storageTier>{snap.storage_tier}</storageTier>"
            f"<lastTieringStartTime>{_iso(when)}</lastTieringStartTime><lastTieringProgress>100</lastTieringProgress>"
            f"<lastTieringOperationStatus>{status}</lastTieringOperationStatus>{expiry}</item>")
    return (f"<DescribeSnapshotTierStatusResponse {_NS}>{_RID}<snapshotTierStatusSet>{''.join(items)}"
            "</snapshotTierStatusSet></DescribeSnapshotTierStatusResponse>")


for _name, _fn in (("modify_snapshot_tier", modify_snapshot_tier), ("restore_snapshot_tier", restore_snapshot_tier),
                   ("describe_snapshot_tier_status", describe_snapshot_tier_status)):
    if not hasattr(ElasticBlockStore, _name):
        setattr(ElasticBlockStore, _name, _fn)

# moto's SQS takes no lock around a receive's scan or a delete's rebuild of the message
# list, and moto_server serves requests on threads: two concurrent receives can both hand
# out one message (a FIFO queue's too), and two concurrent deletes can put back a message
# the other removed. SQS does neither within a visibility timeout. Make each SQS call
# atomic, as SQS is; a receive's long poll waits outside the lock.
import threading  # noqa: E402

from moto.sqs.models import SQSBackend  # noqa: E402

_SQS_LOCK = threading.RLock()


def _atomic(fn):
    def call(*args, **kwargs):
        with _SQS_LOCK:
            return fn(*args, **kwargs)

    return call


for _name in ("send_message", "send_message_batch", "delete_message", "delete_message_batch",
              "change_message_visibility", "change_message_visibility_batch", "purge_queue"):
    setattr(SQSBackend, _name, _atomic(getattr(SQSBackend, _name)))

_real_receive = SQSBackend.receive_message


def receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names=None):
    end = time.time() + (wait_seconds_timeout or 0)
    while True:
        with _SQS_LOCK:
            got = _real_receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
        left = end - time.time()
        if got or left <= 0:
            return got
        # Visible messages of a FIFO group in flight wake the wait at once: do not spin.
        self.get_queue(queue_name).wait_for_messages(min(1.0, left))
        time.sleep(min(0.02, max(0.0, end - time.time())))


SQSBackend.receive_message = receive_message

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
