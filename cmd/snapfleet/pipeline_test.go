package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/queue"
)

const day = 24 * time.Hour

// TestPipelineSQS is the product's main job through real processes: plan onto SQS, three
// workers drain it, a second plan in the period does nothing, and a month later the
// expired snapshots are pruned while the newest of each volume, a snapshot inside
// retention, a hand-made snapshot and other owners' snapshots are untouched.
func TestPipelineSQS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	f := e.buildFleet(ctx)
	url := e.sqsQueues(ctx, "jobs")
	want := len(f.selected) // 19: 10 instances × 2 volumes, less one opted-out volume

	now := e.at(0)
	plan := e.jsonCLI(0, "plan", "--queue", url, "--now", now)
	for k, v := range map[string]int{"snapshot_jobs": want, "enqueued": want, "delete_jobs": 0, "errors": 0, "accounts": 1, "regions": 1} {
		if got := num(t, plan, k); got != v {
			t.Errorf("plan %s = %d, want %d", k, got, v)
		}
	}
	work := e.workers(3, url, "--now", now, "--allow-clock-skew")
	if work["created"] != want || work["dead_lettered"] != 0 {
		t.Fatalf("workers: %v, want %d created and no dead letters", work, want)
	}
	first := e.checkOnePerVolume(ctx, f)
	e.queueEmpty(ctx, url)

	again := e.jsonCLI(0, "plan", "--queue", url, "--now", now)
	if num(t, again, "snapshot_jobs") != 0 || num(t, again, "enqueued") != 0 {
		t.Fatalf("second plan in the same period enqueued work: %v", again)
	}

	// One selected data volume goes away: its only snapshot stays the newest of its volume.
	orphan := e.dropDataVolume(ctx, &f)

	// Day 20: a second snapshot per live volume, inside retention from then on.
	now = e.at(20 * day)
	if p := e.jsonCLI(0, "plan", "--queue", url, "--now", now); num(t, p, "snapshot_jobs") != want-1 || num(t, p, "delete_jobs") != 0 {
		t.Fatalf("day-20 plan: %v", p)
	}
	if w := e.workers(1, url, "--now", now, "--allow-clock-skew"); w["created"] != want-1 {
		t.Fatalf("day-20 workers: %v", w)
	}

	// Day 31: the day-0 snapshots of live volumes have expired.
	now = e.at(31 * day)
	p := e.jsonCLI(0, "plan", "--queue", url, "--now", now)
	if num(t, p, "snapshot_jobs") != want-1 || num(t, p, "delete_jobs") != want-1 {
		t.Fatalf("day-31 plan: %v, want %d creates and %d deletes", p, want-1, want-1)
	}
	if w := e.workers(2, url, "--now", now, "--allow-clock-skew"); w["created"] != want-1 || w["deleted"] != want-1 || w["dead_lettered"] != 0 {
		t.Fatalf("day-31 workers: %v", w)
	}
	e.queueEmpty(ctx, url)

	e.checkPruned(ctx, f, first, orphan)
}

// dropDataVolume detaches and deletes one selected data volume, takes it out of
// f.selected and returns it.
func (e *e2e) dropDataVolume(ctx context.Context, f *fleet) string {
	t := e.t
	t.Helper()
	for vol, inst := range f.selected {
		out, err := e.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{vol}})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.Volumes[0].Attachments[0].Device) != "/dev/sdf" {
			continue
		}
		if _, err := e.ec2.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(vol)}); err != nil {
			t.Fatal(err)
		}
		delete(f.selected, vol)
		return vol
	}
	t.Fatal("no selected data volume to delete")
	return ""
}

// checkPruned asserts the fleet after the day-31 prune: the expired day-0 snapshots
// (first) of live volumes are gone; the only snapshot of the deleted volume orphan, the
// newest of its volume, stays; every live volume keeps two, the day-20 one (inside
// retention) and the day-31 one (the newest); the hand-made snapshot and other owners'
// are untouched.
func (e *e2e) checkPruned(ctx context.Context, f fleet, first map[string]types.Snapshot, orphan string) {
	t := e.t
	t.Helper()
	snaps := e.snapshots(ctx)
	for vol, s := range first {
		_, exists := snaps[aws.ToString(s.SnapshotId)]
		if vol == orphan && !exists {
			t.Errorf("the only snapshot of deleted volume %s was deleted: it is the newest of its volume", vol)
		}
		if vol != orphan && exists {
			t.Errorf("expired day-0 snapshot %s of %s still exists", aws.ToString(s.SnapshotId), vol)
		}
	}
	byVol := managedByVolume(snaps)
	for vol := range f.selected {
		ss := byVol[vol]
		if len(ss) != 2 {
			t.Errorf("volume %s has %d managed snapshots after day 31, want 2 (day 20, inside retention, and day 31)", vol, len(ss))
			continue
		}
		day20, day31 := aws.ToTime(ss[0].StartTime), aws.ToTime(ss[1].StartTime)
		if d := day31.Sub(day20); d < 10*day || d > 12*day {
			t.Errorf("volume %s keeps snapshots of %v and %v, want those of day 20 and day 31", vol, day20, day31)
		}
	}
	f.checkUntouched(t, snaps)
}

// TestRunEmbedded is the same job on one machine: `snapfleet run` on the embedded queue,
// with the same checks as TestPipelineSQS: one snapshot per selected volume, nothing new
// in the same period, and at day 31 the expired snapshots deleted while the newest of
// each volume (also of a deleted volume), a snapshot inside retention, a hand-made
// snapshot and other owners' stay.
func TestRunEmbedded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	f := e.buildFleet(ctx)
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	want := len(f.selected)

	now := e.at(0)
	r := e.jsonCLI(0, "run", "--queue", db, "--now", now, "--allow-clock-skew")
	if num(t, r, "plan.snapshot_jobs") != want || num(t, r, "work.created") != want || num(t, r, "work.dead_lettered") != 0 {
		t.Fatalf("run: %v, want %d created", r, want)
	}
	first := e.checkOnePerVolume(ctx, f)
	if r := e.jsonCLI(0, "run", "--queue", db, "--now", now, "--allow-clock-skew"); num(t, r, "plan.enqueued") != 0 || num(t, r, "work.created") != 0 {
		t.Fatalf("second run in the period did work: %v", r)
	}
	orphan := e.dropDataVolume(ctx, &f)

	now = e.at(20 * day)
	if r := e.jsonCLI(0, "run", "--queue", db, "--now", now, "--allow-clock-skew"); num(t, r, "work.created") != want-1 || num(t, r, "work.deleted") != 0 {
		t.Fatalf("day-20 run: %v, want %d created and nothing deleted", r, want-1)
	}

	now = e.at(31 * day)
	dry := e.jsonCLI(0, "run", "--queue", db, "--dry-run", "--now", now, "--allow-clock-skew")
	if num(t, dry, "plan.delete_jobs") != want-1 || num(t, dry, "plan.enqueued") != 0 {
		t.Fatalf("day-31 dry run: %v, want %d deletes planned, nothing enqueued", dry, want-1)
	}
	for _, k := range []string{"processed", "created", "deleted", "skipped", "retried", "deferred", "dead_lettered"} {
		if n := num(t, dry, "work."+k); n != 0 {
			t.Errorf("day-31 dry run: work.%s = %d, want 0 (nothing worked)", k, n)
		}
	}
	r = e.jsonCLI(0, "run", "--queue", db, "--now", now, "--allow-clock-skew")
	if num(t, r, "plan.snapshot_jobs") != want-1 || num(t, r, "plan.delete_jobs") != want-1 ||
		num(t, r, "work.created") != want-1 || num(t, r, "work.deleted") != want-1 || num(t, r, "work.dead_lettered") != 0 {
		t.Fatalf("day-31 run: %v, want %d created and %d deleted", r, want-1, want-1)
	}
	e.checkPruned(ctx, f, first, orphan)
}

// TestHostileMessages sends what a broken or forged producer could: a create job twice,
// deletes of a hand-made snapshot, of a snapshot inside retention and of another owner's
// snapshot, and garbage. One snapshot is made; nothing is deleted; every bad message ends
// in the dead-letter queue with its reason.
func TestHostileMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	f := e.buildFleet(ctx)
	url := e.sqsQueues(ctx, "hostile")
	nowFlag := e.at(0)
	now := e.start

	var vol, inst string
	for vol, inst = range f.selected {
		break
	}
	create := job.Job{V: 1, Kind: job.KindCreate, Key: job.CreateKey(mototest.Account, mototest.Region, vol, "daily", now.Truncate(day)),
		Account: mototest.Account, Region: mototest.Region, Policy: "daily", Volume: vol, Instance: inst, Device: "/dev/sdf", Run: "forged", PlannedAt: now}

	// Two managed snapshots of one volume, both far inside retention.
	var recent []string
	for i := 0; i < 2; i++ {
		s, err := e.ec2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol), TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeSnapshot,
			Tags:         []types.Tag{{Key: aws.String(tag.Policy), Value: aws.String("daily")}, {Key: aws.String(tag.Volume), Value: aws.String(vol)}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		recent = append(recent, aws.ToString(s.SnapshotId))
	}
	del := func(snap, volume string) job.Job {
		return job.Job{V: 1, Kind: job.KindDelete, Key: job.DeleteKey(mototest.Account, mototest.Region, snap), Account: mototest.Account,
			Region: mototest.Region, Policy: "daily", Snapshot: snap, Volume: volume, Run: "forged", PlannedAt: now}
	}
	bodies := []string{}
	for _, j := range []job.Job{create, create, del(f.handmade, ""), del(recent[0], vol), del(recent[1], vol), del(f.foreign[0], "")} {
		b, err := job.Encode(j)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	bodies = append(bodies, `{"v":2,"kind":"snapshot.delete"}`, `not json at all`)
	for _, b := range bodies {
		if _, err := e.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	before := e.snapshots(ctx)

	w := e.workers(1, url, "--now", nowFlag, "--allow-clock-skew")
	if w["created"] != 1 || w["deleted"] != 0 || w["dead_lettered"] != 6 {
		t.Fatalf("worker: %v, want 1 created, 0 deleted, 6 dead-lettered", w)
	}
	after := e.snapshots(ctx)
	for id := range before {
		if _, ok := after[id]; !ok {
			t.Errorf("snapshot %s was deleted", id)
		}
	}
	if n := len(managedByVolume(after)[vol]); n != 3 {
		t.Errorf("volume %s has %d managed snapshots, want the 2 forged-into and 1 created once", vol, n)
	}

	q, err := queue.Open(ctx, url, queue.Options{AWS: e.moto.AWSConfig(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	dlq, err := q.DLQ(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for tries := 0; tries < 10 && len(reasons) < 6; tries++ {
		msgs, err := dlq.Receive(ctx, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			var j job.Job
			_ = json.Unmarshal(m.Body, &j)
			reasons[m.Reason+" "+j.Snapshot]++
		}
	}
	for _, want := range []string{
		"refused_unmanaged " + f.handmade,
		"refused_retention " + recent[0],
		"refused_retention " + recent[1],
		"refused_foreign " + f.foreign[0],
		"invalid_message ",
	} {
		if reasons[want] == 0 {
			t.Errorf("dead-letter queue has no %q; it has %v", want, reasons)
		}
	}
	if reasons["invalid_message "] != 2 {
		t.Errorf("want 2 invalid_message dead letters, got %v", reasons)
	}
}
