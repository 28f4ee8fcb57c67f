package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// crashPolicy is a config with one policy of crash-consistent instance snapshots.
const crashPolicy = `
policies:
  - name: crash
    consistency: instance
    retain: {max_age: 30d, min_keep: 1}
`

// TestInstanceConsistency: a policy with consistency: instance, through plan, queue and
// work on moto: one job — one CreateSnapshots — per instance, so every volume of an
// instance has one snapshot carrying the instance's key, tagged with its volume and
// device; a second run in the period does nothing; and retention expires those
// snapshots per volume as it does any other.
func TestInstanceConsistency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.config = writeFile(t, "crash.yaml", crashPolicy)
	ids, vols := e.instancesWithData(ctx, 2, nil)
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")

	now := e.at(0)
	r := e.jsonCLI(0, "run", "--queue", db, "--now", now, "--allow-clock-skew")
	if num(t, r, "plan.snapshot_jobs") != 2 || num(t, r, "work.created") != 2 || num(t, r, "work.dead_lettered") != 0 {
		t.Fatalf("run: %v, want 2 instance jobs created", r)
	}
	byVol := e.eventSnapshots(ctx)
	period := time.Date(e.start.Year(), e.start.Month(), e.start.Day(), 0, 0, 0, 0, time.UTC)
	for _, id := range ids {
		key := job.CreateKey(motoAccount, mototest.Region, id, "crash", period)
		for _, vol := range vols[id] {
			if len(byVol[vol]) != 1 {
				t.Errorf("volume %s of %s has %d snapshots, want 1", vol, id, len(byVol[vol]))
				continue
			}
			s := byVol[vol][0]
			if tg := tagsOf(s); tg[tag.Job] != key || tg[tag.Volume] != vol || tg[tag.Device] == "" || tg[tag.Instance] != id || tg[tag.Policy] != "crash" {
				t.Errorf("snapshot %s of %s: tags %v, want job %s and its volume and device", aws.ToString(s.SnapshotId), vol, tg, key)
			}
		}
	}
	if r := e.jsonCLI(0, "run", "--queue", db, "--now", now, "--allow-clock-skew"); num(t, r, "plan.enqueued") != 0 || num(t, r, "work.created") != 0 {
		t.Fatalf("second run in the period did work: %v", r)
	}

	now = e.at(31 * day)
	if r := e.jsonCLI(0, "run", "--queue", db, "--now", now, "--allow-clock-skew"); num(t, r, "work.created") != 2 || num(t, r, "work.deleted") != 0 {
		t.Fatalf("day-31 run: %v, want 2 created and nothing deleted", r)
	}
	if r := e.jsonCLI(0, "run", "--queue", db, "--now", now, "--allow-clock-skew"); num(t, r, "plan.delete_jobs") != 4 || num(t, r, "work.deleted") != 4 {
		t.Fatalf("second day-31 run: %v, want the 4 day-0 snapshots deleted", r)
	}
	for vol, ss := range e.eventSnapshots(ctx) {
		if len(ss) != 1 {
			t.Errorf("volume %s has %d snapshots after day 31, want 1", vol, len(ss))
		}
	}
}
