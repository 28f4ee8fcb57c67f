package planner

import (
	"fmt"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// monthEnd is the snapshot of the last day of the month m months before now's, 01:00 UTC.
func monthEnd(m int) time.Time {
	first := time.Date(now.Year(), now.Month(), 1, 1, 0, 0, 0, time.UTC)
	return first.AddDate(0, 1-m, 0).Add(-24 * time.Hour)
}

func snapAt(id, vol string, at time.Time) Snapshot {
	return Snapshot{ID: id, Owner: acct, Policy: "daily", Volume: vol, Start: at, State: "completed", Tier: "standard"}
}

// TestDecideArchives: kept monthly snapshots older than archive.after are archived when
// retention still keeps them 90 days on; not the newest of a volume, not one an AMI uses
// or a lock holds, not one retention deletes within 90 days (it would cost more), not
// past 25 archived per volume.
func TestDecideArchives(t *testing.T) {
	t.Parallel()
	cfg := mustConfig(t, "policies: [{name: daily, every: 24h, retain: {keep_daily: 7, keep_monthly: 12}, archive: {after: 30d}}]\n")
	inv := Inventory{Account: acct, Region: region, SnapshotsComplete: true,
		Volumes: map[string]bool{"vol-00000001": true, "vol-00000002": true, "vol-00000003": true}}
	for d := range 7 {
		inv.Snapshots = append(inv.Snapshots, snapAt(fmt.Sprintf("snap-d000000%d", d), "vol-00000001", now.Truncate(day).Add(-time.Duration(d)*day+time.Hour)))
	}
	for m := 1; m <= 12; m++ { // Oct 31 (22 days old: too young) back to Nov 30 last year
		inv.Snapshots = append(inv.Snapshots, snapAt(fmt.Sprintf("snap-e%07x", m), "vol-00000001", monthEnd(m)))
	}
	inv.Snapshots = append(inv.Snapshots, snapAt("snap-20000001", "vol-00000002", now.Add(-60*day)))
	inv.Snapshots = append(inv.Snapshots, snapAt("snap-30000000", "vol-00000003", now.Add(-time.Hour)), snapAt("snap-30000001", "vol-00000003", monthEnd(2)))
	for i := range MaxArchivedPerVolume {
		s := snapAt(fmt.Sprintf("snap-3a%06d", i), "vol-00000003", monthEnd(3+i%9))
		s.Tier = "archive"
		inv.Snapshots = append(inv.Snapshots, s)
	}
	prot := map[string]Protection{"snap-e0000004": {Reason: reason.InUse, Detail: "AMI ami-1"}, "snap-e0000003": {Reason: reason.Locked, Detail: "locked"}}
	got := map[string]string{}
	for _, d := range DecideArchives(&inv, cfg, now, prot) {
		got[d.Snapshot] = d.Action + " " + d.Reason
		if d.Action == ActionArchive && d.Key != acct+"/"+region+"/"+d.Snapshot+"/archive" {
			t.Errorf("archive key %q", d.Key)
		}
	}
	want := map[string]string{
		// Sep .. Mar: kept by keep_monthly 12 now and 90 days on.
		"snap-e0000002": "archive archive", "snap-e0000005": "archive archive", "snap-e0000006": "archive archive",
		"snap-e0000007": "archive archive", "snap-e0000008": "archive archive",
		"snap-e0000003": "skip locked", "snap-e0000004": "skip in_use",
		// Feb, Jan, Dec: out of keep_monthly 12 within 90 days.
		"snap-e0000009": "skip archive_costs_more", "snap-e000000a": "skip archive_costs_more", "snap-e000000b": "skip archive_costs_more",
		"snap-20000001": "skip newest",
		"snap-30000001": "skip archive_limit",
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %q, want %q", id, got[id], w)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: unexpected decision %q", id, g)
		}
	}
	msg, err := Decision{Account: acct, Region: region, Policy: "daily", Action: ActionArchive, Snapshot: "snap-e0000002",
		Volume: "vol-00000001", Key: acct + "/" + region + "/snap-e0000002/archive"}.message("r1", now)
	if err != nil || len(msg.Body) == 0 {
		t.Errorf("archive message: %v", err)
	}
}
