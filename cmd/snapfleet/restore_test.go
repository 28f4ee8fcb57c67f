package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
)

// volumes returns every volume moto holds, by id.
func (e *e2e) volumes(ctx context.Context) map[string]types.Volume {
	e.t.Helper()
	out, err := e.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]types.Volume{}
	for _, v := range out.Volumes {
		m[aws.ToString(v.VolumeId)] = v
	}
	return m
}

func volumeTags(v types.Volume) map[string]string {
	m := map[string]string{}
	for _, t := range v.Tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func (e *e2e) restore(want int, args ...string) restoreResult {
	e.t.Helper()
	var r restoreResult
	e.runInto(want, &r, append(append([]string{"restore"}, args...), "--config", e.config)...)
	return r
}

// TestRestore: restore by volume (newest, and at or before --at), by snapshot and by tags
// and device makes a volume from the right snapshot, of its size, in the source's AZ,
// available, tagged snapfleet:restored-from and the source's tags but none of snapfleet's
// bookkeeping; with --attach it is attached at the device; --dry-run creates nothing.
func TestRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	w := e.recoveryWorld(ctx)
	target := e.fleet.Instances(ctx, 1, 0, nil)[0]
	before := len(e.volumes(ctx))

	check := func(name string, r restoreResult, from string) types.Volume {
		t.Helper()
		v, ok := e.volumes(ctx)[r.Volume]
		if !ok || r.Plan.Snapshot != from || aws.ToString(v.SnapshotId) != from {
			t.Fatalf("%s: restored %s from %s (plan %+v), want from %s", name, r.Volume, aws.ToString(v.SnapshotId), r.Plan, from)
		}
		tags := volumeTags(v)
		if tags[tag.RestoredFrom] != from || tags["Role"] != "solr" || tags["Team"] != "ops" {
			t.Errorf("%s: tags %v, want restored-from %s, Role and Team", name, tags, from)
		}
		for k := range tags {
			if k != tag.RestoredFrom && strings.HasPrefix(k, "snapfleet:") {
				t.Errorf("%s: tag %s on the restored volume: it would look managed", name, k)
			}
		}
		if v.State != types.VolumeStateAvailable && len(v.Attachments) == 0 || aws.ToInt32(v.Size) != 8 || aws.ToString(v.AvailabilityZone) != e.fleet.Region+"a" {
			t.Errorf("%s: volume %s is %s, %d GiB, in %s; want available, 8 GiB, in %sa", name, r.Volume, v.State, aws.ToInt32(v.Size), aws.ToString(v.AvailabilityZone), e.fleet.Region)
		}
		return v
	}
	dry := e.restore(0, "--volume", w.inst.Data[0], "--dry-run")
	if n := len(e.volumes(ctx)); n != before || !dry.DryRun || dry.Volume != "" || dry.Plan.Snapshot != w.data[2] || dry.Plan.SizeGiB != 8 {
		t.Fatalf("--dry-run: %+v, %d volumes (was %d); want the plan of %s and nothing created", dry, n, before, w.data[2])
	}
	text := e.cli("restore", "--volume", w.inst.Data[0], "--dry-run", "--attach", target.ID, "--device", "/dev/sdh", "--config", e.config)
	if text.code != 0 || !strings.Contains(text.stdout, "would create a ") || !strings.Contains(text.stdout, "would attach it to "+target.ID+" at /dev/sdh") {
		t.Fatalf("--dry-run text: exit %d\n%s\n%s", text.code, text.stdout, tail(text.stderr))
	}
	if n := len(e.volumes(ctx)); n != before {
		t.Fatalf("--dry-run created %d volumes", n-before)
	}
	check("--volume", e.restore(0, "--volume", w.inst.Data[0]), w.data[2])
	mid := e.points(0, "--volume", w.inst.Data[0]).Points[1].Time
	check("--volume --at", e.restore(0, "--volume", w.inst.Data[0], "--at", mid.Format(time.RFC3339Nano)), w.data[1])
	check("--snapshot", e.restore(0, "--snapshot", w.root[0]), w.root[0])
	check("--tags --device", e.restore(0, "--tags", "Role=solr,Team=ops", "--device", testfleet.RootDevice), w.root[2])
	r := e.restore(0, "--volume", w.inst.Data[0], "--attach", target.ID, "--device", "/dev/sdh")
	v := check("--attach", r, w.data[2])
	if !r.Attached || len(v.Attachments) != 1 || aws.ToString(v.Attachments[0].InstanceId) != target.ID || aws.ToString(v.Attachments[0].Device) != "/dev/sdh" {
		t.Fatalf("--attach: %+v, attachments %+v; want attached to %s at /dev/sdh", r, v.Attachments, target.ID)
	}
	if n := len(e.volumes(ctx)); n != before+5 {
		t.Fatalf("%d volumes made, want 5", n-before)
	}
	// The source volume and snapshots are untouched.
	if src := e.volumes(ctx)[w.inst.Data[0]]; len(src.Attachments) != 1 || aws.ToString(src.Attachments[0].InstanceId) != w.inst.ID {
		t.Fatalf("the source volume changed: %+v", src.Attachments)
	}
}

// TestRestoreRefused: every refusal names its reason on one line, exits 2 for bad input,
// and creates nothing: a device taken on the instance, an instance in another AZ, an
// unknown snapshot or volume, a selector matching nothing or several devices, nothing at
// or before --at, bad flags.
func TestRestoreRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	w := e.recoveryWorld(ctx)
	target := e.fleet.Instances(ctx, 1, 0, nil)[0]
	before := len(e.volumes(ctx))
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"device taken", []string{"--volume", w.inst.Data[0], "--attach", target.ID, "--device", testfleet.RootDevice}, 2, "--device /dev/sda1: taken on instance " + target.ID},
		{"other AZ", []string{"--volume", w.inst.Data[0], "--attach", target.ID, "--device", "/dev/sdh", "--az", e.fleet.Region + "b"}, 2, "is in " + e.fleet.Region + "a, the volume would be in " + e.fleet.Region + "b"},
		{"unknown instance", []string{"--volume", w.inst.Data[0], "--attach", "i-0123456789abcdef0", "--device", "/dev/sdh"}, 2, "instance i-0123456789abcdef0 not found"},
		{"unknown snapshot", []string{"--snapshot", "snap-0123456789abcdef0"}, 2, "--snapshot snap-0123456789abcdef0: not found"},
		{"unknown volume", []string{"--volume", "vol-0123456789abcdef0"}, 2, "no recovery point of volume vol-0123456789abcdef0"},
		{"tags match nothing", []string{"--tags", "Role=web"}, 2, "no recovery point of tags Role=web"},
		{"tags match two devices", []string{"--tags", "Role=solr"}, 2, "match 2 devices (/dev/sda1, /dev/sdf): give --device"},
		{"before the first", []string{"--volume", w.inst.Data[0], "--at", w.times[0].Add(-time.Hour).Format(time.RFC3339)}, 2, "at or before"},
		{"size below", []string{"--volume", w.inst.Data[0], "--size", "4"}, 2, "--size 4: below the snapshot's 8 GiB"},
		{"no source", nil, 2, "give --volume, --snapshot or --tags"},
		{"two sources", []string{"--volume", w.inst.Data[0], "--snapshot", w.data[0]}, 2, "give one of"},
		{"bad device", []string{"--volume", w.inst.Data[0], "--attach", target.ID, "--device", "sdh"}, 2, `--device: "sdh"`},
		{"unknown account", []string{"--volume", w.inst.Data[0], "--account", "222222222222"}, 2, "not a configured account"},
	} {
		r := e.cli(append(append([]string{"restore", "--config", e.config}, tt.args...), "--dry-run=false")...)
		msg := strings.TrimSpace(r.stderr)
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		if r.code != tt.code || !strings.HasPrefix(msg, "snapfleet: ") || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: exit %d, last stderr line %q; want %d and %q", tt.name, r.code, msg, tt.code, tt.want)
		}
		if n := len(e.volumes(ctx)); n != before {
			t.Fatalf("%s: %d volumes created", tt.name, n-before)
		}
	}
}

// TestRestoreFromCopy: a copy in another region (tagged snapfleet:source, without the
// volume's tags) is listed among its source's copies, and restore --region there makes the
// volume from the copy, in --az (the source volume is in another region).
func TestRestoreFromCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	w := e.recoveryWorld(ctx)
	west := e.fleet.In(e.fleet.Account, "us-west-2")
	cp, err := west.EC2.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceRegion: aws.String(e.fleet.Region), SourceSnapshotId: aws.String(w.data[2]),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{
			{Key: aws.String("snapfleet:source"), Value: aws.String(w.data[2])}, {Key: aws.String("snapfleet:source-region"), Value: aws.String(e.fleet.Region)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	copyID := aws.ToString(cp.SnapshotId)
	e.setConfig("regions: [" + e.fleet.Region + ", us-west-2]\n")
	r := e.points(0, "--volume", w.inst.Data[0])
	if r.Total != 3 || len(r.Points[0].Copies) != 1 || r.Points[0].Copies[0].Snapshot != copyID || r.Points[0].Copies[0].Region != "us-west-2" {
		t.Fatalf("points %+v, want 3 with the copy %s under the newest", r.Points, copyID)
	}
	if r := e.cli("restore", "--volume", w.inst.Data[0], "--region", "us-west-2", "--config", e.config); r.code != 2 || !strings.Contains(r.stderr, "give --az") {
		t.Fatalf("restore in us-west-2 without --az: exit %d\n%s", r.code, tail(r.stderr))
	}
	res := e.restore(0, "--volume", w.inst.Data[0], "--region", "us-west-2", "--az", "us-west-2a")
	out, err := west.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{res.Volume}})
	if err != nil || len(out.Volumes) != 1 || aws.ToString(out.Volumes[0].SnapshotId) != copyID || volumeTags(out.Volumes[0])[tag.RestoredFrom] != copyID {
		t.Fatalf("restored %+v (%v), want a volume of the copy %s in us-west-2", out, err, copyID)
	}
}

// TestRestoreFromArchive: an archived point is first restored from the archive tier
// (RestoreSnapshotTier, --restore-days) and nothing is created: exit 1 with when it will be
// ready; a --dry-run starts nothing; the same command run again once the restore is done
// (moto's wrapper completes it at once) makes the volume.
func TestRestoreFromArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	w := e.recoveryWorld(ctx)
	snap := w.data[2]
	if _, err := e.ec2.ModifySnapshotTier(ctx, &ec2.ModifySnapshotTierInput{SnapshotId: aws.String(snap), StorageTier: types.TargetStorageTierArchive}); err != nil {
		t.Fatal(err)
	}
	before := len(e.volumes(ctx))
	dry := e.cli("restore", "--snapshot", snap, "--dry-run", "--config", e.config)
	if dry.code != 1 || !strings.Contains(dry.stdout, "would restore it from there first") {
		t.Fatalf("--dry-run of an archived point: exit %d\n%s\n%s", dry.code, dry.stdout, tail(dry.stderr))
	}
	if tier := e.snapshotTier(ctx, snap); tier != types.StorageTierArchive {
		t.Fatalf("--dry-run moved %s to %s", snap, tier)
	}
	first := e.restore(1, "--snapshot", snap, "--restore-days", "3")
	if first.Archive == nil || !first.Archive.Started || first.Archive.ReadyBy.IsZero() || first.Volume != "" {
		t.Fatalf("first run: %+v, archive %+v; want a restore from the archive started, nothing created", first, first.Archive)
	}
	if n := len(e.volumes(ctx)); n != before {
		t.Fatalf("the first run created %d volumes", n-before)
	}
	second := e.restore(0, "--snapshot", snap)
	if second.Archive != nil || second.Volume == "" || second.Plan.Snapshot != snap {
		t.Fatalf("second run: %+v; want the volume made from %s", second, snap)
	}
	if bad := e.cli("restore", "--snapshot", snap, "--restore-days", "0", "--config", e.config); bad.code != 2 || !strings.Contains(bad.stderr, "--restore-days") {
		t.Fatalf("--restore-days 0: exit %d\n%s", bad.code, bad.stderr)
	}
}

func (e *e2e) snapshotTier(ctx context.Context, id string) types.StorageTier {
	e.t.Helper()
	out, err := e.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil || len(out.Snapshots) != 1 {
		e.t.Fatalf("reading %s: %v", id, err)
	}
	return out.Snapshots[0].StorageTier
}
