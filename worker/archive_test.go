package worker

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

var _ archiveAPI = (*ec2.Client)(nil)

const archiveConfig = `
policies:
  - name: daily
    every: 24h
    retain: {keep_daily: 7, keep_monthly: 12}
    archive: {after: 30d}
`

func archiveJob(snapshot, volume string) job.Job {
	return job.Job{V: 1, Kind: job.KindArchive, Key: job.ArchiveKey(mototest.Account, mototest.Region, snapshot), Account: mototest.Account,
		Region: mototest.Region, Policy: "daily", Snapshot: snapshot, Volume: volume, Run: "r1", PlannedAt: time.Now().UTC()}
}

func (e *motoEnv) tier(t *testing.T, id string) types.StorageTier {
	t.Helper()
	out, err := e.setup.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil || len(out.Snapshots) != 1 {
		t.Fatalf("reading snapshot %s: %v", id, err)
	}
	return out.Snapshots[0].StorageTier
}

// TestArchiveThroughMoto: an archive job moves a kept monthly snapshot to the archive tier
// with ModifySnapshotTier (served by the moto wrapper), once however often it is
// delivered; the newest of the volume, a shared one and one retention deletes within 90
// days are skipped with their reasons, without a ModifySnapshotTier.
func TestArchiveThroughMoto(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	managed := map[string]string{tag.Policy: "daily", tag.Volume: vol}
	old := e.snap(t, vol, 60*24*time.Hour, managed)
	shared := e.snap(t, vol, 95*24*time.Hour, managed)
	newest := e.snap(t, vol, time.Hour, managed)
	e.fleet(t).Share(context.Background(), shared, "210987654321")
	cfg := policyConfig(t, archiveConfig)

	body := encode(t, archiveJob(old, vol))
	q := newFakeQueue()
	q.add(0, body, body)
	w := e.newWorker(q, cfg, time.Now)
	w.Concurrency = 1
	if st := runFor(t, w, 10*time.Second); st.Processed != 2 || st.DeadLettered != 0 || st.Skipped != 0 {
		t.Errorf("stats = %+v, want 2 processed", st)
	}
	if got := e.tier(t, old); got != types.StorageTierArchive {
		t.Errorf("snapshot %s in tier %q, want archive", old, got)
	}
	if n := e.faults.count("ModifySnapshotTier"); n != 1 {
		t.Errorf("ModifySnapshotTier called %d times, want 1", n)
	}

	s := &snapshots{cfg: cfg, ec2: func(string, string) EC2 { return e.worker }, now: time.Now, backoff: defaultBackoff}
	for _, tt := range []struct {
		id, why string
	}{{newest, reason.Newest}, {shared, reason.Shared}} {
		_, err := s.archive(context.Background(), archiveJob(tt.id, vol))
		if o, why, _ := outcomeOf(err); o != outSkip || why != tt.why {
			t.Errorf("archive %s: %v (%s %s), want skipped %s", tt.id, err, o, why, tt.why)
		}
	}
	short := &snapshots{cfg: policyConfig(t, "policies: [{name: daily, every: 24h, retain: {max_age: 100d}, archive: {after: 30d}}]\n"),
		ec2: func(string, string) EC2 { return e.worker }, now: time.Now, backoff: defaultBackoff}
	if _, err := short.archive(context.Background(), archiveJob(shared, vol)); err == nil {
		t.Error("archived a snapshot max_age 100d deletes in 5 days")
	} else if o, why, _ := outcomeOf(err); o != outSkip || why != reason.ArchiveCostsMore {
		t.Errorf("max_age 100d: %v (%s %s), want skipped archive_costs_more", err, o, why)
	}
	if n := e.faults.count("ModifySnapshotTier"); n != 1 {
		t.Errorf("ModifySnapshotTier called %d times in all, want 1", n)
	}
}
