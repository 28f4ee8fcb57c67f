package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/internal/testbed/sim"
)

// TestPipelineOnSim runs the main job with EC2 and STS answered by internal/testbed/sim (the
// benchmark's EC2) and SQS by moto: the same outcome as on moto (TestPipelineSQS) is
// what makes the benchmark's figures figures of snapfleet. One snapshot per selected
// volume with every tag, nothing new in the period, and a month later the expired
// snapshots pruned, the newest of each volume and a hand-made snapshot untouched.
func TestPipelineOnSim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	var offset atomic.Int64
	s := sim.New(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	url, stop, err := s.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	e.env = []string{"AWS_ENDPOINT_URL_EC2=" + url, "AWS_ENDPOINT_URL_STS=" + url}
	// A config of its own: one loaded from the environment would let AWS_ENDPOINT_URL win.
	e.ec2 = ec2.NewFromConfig(aws.Config{Region: mototest.Region, BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	at := func(d time.Duration) string {
		offset.Store(int64(time.Until(e.start.Add(d))))
		return e.start.Add(d + 10*time.Minute).Format(time.RFC3339)
	}

	const acct, region = sim.DefaultAccount, mototest.Region
	f := fleet{selected: map[string]string{}}
	for _, in := range s.AddInstances(acct, region, 6, 2, "running", nil) {
		for _, d := range in.Devices {
			f.selected[d.Volume] = in.ID
		}
	}
	for _, in := range append(s.AddInstances(acct, region, 2, 2, "stopped", nil),
		s.AddInstances(acct, region, 1, 2, "running", map[string]string{"snapfleet:skip": "true"})...) {
		for _, d := range in.Devices {
			f.ignored = append(f.ignored, d.Volume)
		}
	}
	var anyVol string
	for anyVol = range f.selected {
		break
	}
	f.handmade = s.AddSnapshot(acct, region, anyVol, time.Now().Add(-90*day), map[string]string{"AutoBackup": "true"})
	want := len(f.selected)
	q := e.sqsQueues(ctx, "sim")

	now := at(0)
	if p := e.jsonCLI(0, "plan", "--queue", q, "--now", now); num(t, p, "snapshot_jobs") != want || num(t, p, "enqueued") != want ||
		num(t, p, "delete_jobs") != 0 || num(t, p, "errors") != 0 {
		t.Fatalf("plan: %v, want %d snapshot jobs", p, want)
	}
	if w := e.workers(2, q, "--now", now, "--allow-clock-skew"); w["created"] != want || w["dead_lettered"] != 0 {
		t.Fatalf("workers: %v, want %d created", w, want)
	}
	first := e.checkOnePerVolume(ctx, f)
	if p := e.jsonCLI(0, "plan", "--queue", q, "--now", now); num(t, p, "enqueued") != 0 {
		t.Fatalf("second plan in the period: %v", p)
	}

	now = at(31 * day)
	if p := e.jsonCLI(0, "plan", "--queue", q, "--now", now); num(t, p, "snapshot_jobs") != want || num(t, p, "delete_jobs") != 0 {
		t.Fatalf("day-31 plan: %v, want %d creates and no deletes (day 0 is the newest)", p, want)
	}
	if w := e.workers(1, q, "--now", now, "--allow-clock-skew"); w["created"] != want {
		t.Fatalf("day-31 workers: %v", w)
	}
	if p := e.jsonCLI(0, "plan", "--queue", q, "--now", now); num(t, p, "snapshot_jobs") != 0 || num(t, p, "delete_jobs") != want {
		t.Fatalf("second day-31 plan: %v, want %d deletes", p, want)
	}
	if w := e.workers(2, q, "--now", now, "--allow-clock-skew"); w["deleted"] != want || w["dead_lettered"] != 0 {
		t.Fatalf("day-31 deletes: %v", w)
	}
	e.queueEmpty(ctx, q)
	snaps := e.snapshots(ctx)
	for vol, sn := range first {
		if _, ok := snaps[aws.ToString(sn.SnapshotId)]; ok {
			t.Errorf("expired day-0 snapshot of %s still exists", vol)
		}
	}
	for vol := range f.selected {
		if n := len(managedByVolume(snaps)[vol]); n != 1 {
			t.Errorf("volume %s has %d managed snapshots after the prune, want the day-31 one", vol, n)
		}
	}
	f.checkUntouched(t, snaps)
}
