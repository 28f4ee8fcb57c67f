package planner

import (
	"slices"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// TestDecideDuplicates: snapshots sharing a snapfleet:job key that creates of it made
// (two workers created for one key) are found, and a delete marked duplicate is planned
// for all but the keeper's set (job.Keeper: the smallest usable set, never by StartTime),
// once the keeper's set is completed; retention does not count them; a set is removed
// whole or not at all; protections hold as for any delete.
func TestDecideDuplicates(t *testing.T) {
	t.Parallel()
	const v1, v2 = "vol-000000000000000a1", "vol-000000000000000a2"
	period := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	vkey := job.CreateKey(acct, region, v1, "default", period)
	ikey := job.CreateKey(acct, region, "i-000000000000000a1", "default", period)
	made := func(id, vol, key, set string) Snapshot {
		s := snap(id, "default", vol, 9*time.Hour) // both made at one instant
		s.Job, s.Set, s.Made = key, set, true
		if set == "" {
			s.Set = id
		}
		return s
	}
	with := func(s Snapshot, f func(*Snapshot)) Snapshot { f(&s); return s }
	tests := []struct {
		name  string
		snaps []Snapshot
		prot  map[string]Protection
		want  []string
	}{
		// Counted, the duplicate would fill min_keep 2 and expire the older snapshot.
		{"a volume's key: the smaller id stays; the duplicate does not count for min_keep",
			[]Snapshot{made("snap-000000000000000b2", v1, vkey, ""), made("snap-000000000000000b1", v1, vkey, ""),
				snap("snap-000000000000000c1", "default", v1, 40*day)},
			nil,
			[]string{"default delete snap-000000000000000b2 duplicate", "default keep snap-000000000000000b1 newest",
				"default keep snap-000000000000000c1 min_keep"}},
		{"the keeper pending: nothing goes yet",
			[]Snapshot{made("snap-000000000000000b2", v1, vkey, ""), with(made("snap-000000000000000b1", v1, vkey, ""), func(s *Snapshot) { s.State = "pending" })},
			nil,
			[]string{"default keep snap-000000000000000b1 not_completed", "default keep snap-000000000000000b2 newest"}},
		{"the smaller failed: the other is the keeper",
			[]Snapshot{made("snap-000000000000000b2", v1, vkey, ""), with(made("snap-000000000000000b1", v1, vkey, ""), func(s *Snapshot) { s.State = "error" })},
			nil,
			[]string{"default keep snap-000000000000000b1 not_completed", "default keep snap-000000000000000b2 newest"}},
		{"one no create made (a hand-tagged snapshot): neither goes",
			[]Snapshot{made("snap-000000000000000b2", v1, vkey, ""), with(made("snap-000000000000000b1", v1, vkey, ""), func(s *Snapshot) { s.Made = false })},
			nil,
			[]string{"default keep snap-000000000000000b1 min_keep", "default keep snap-000000000000000b2 newest"}},
		{"an instance's sets: the smaller set stays whole, though the other holds the smallest id",
			[]Snapshot{made("snap-000000000000000a1", v1, ikey, "f0"), made("snap-000000000000000a2", v2, ikey, "f0"),
				made("snap-000000000000000b1", v1, ikey, "0a"), made("snap-000000000000000b2", v2, ikey, "0a")},
			nil,
			[]string{"default delete snap-000000000000000a1 duplicate", "default delete snap-000000000000000a2 duplicate",
				"default keep snap-000000000000000b1 newest", "default keep snap-000000000000000b2 newest"}},
		{"a duplicate the classifier protects stays",
			[]Snapshot{made("snap-000000000000000b2", v1, vkey, ""), made("snap-000000000000000b1", v1, vkey, "")},
			map[string]Protection{"snap-000000000000000b2": {Reason: reason.InUse, Detail: "used by ami-1"}},
			[]string{"default keep snap-000000000000000b1 newest", "default protected snap-000000000000000b2 in_use"}},
		{"another account's key is not this scope's",
			[]Snapshot{with(made("snap-000000000000000b2", v1, vkey, ""), func(s *Snapshot) { s.Owner = other }), made("snap-000000000000000b1", v1, vkey, "")},
			nil,
			[]string{"default keep snap-000000000000000b1 newest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := Inventory{Account: acct, Region: region, Snapshots: tt.snaps, SnapshotsComplete: true,
				Volumes: map[string]bool{v1: true, v2: true}, Protections: tt.prot}
			res := Decide(inv, mustConfig(t, "policies:\n  - name: default\n    every: 24h\n    retain: {max_age: 30d, min_keep: 2}\n"), now)
			if got := brief(res.Decisions); !slices.Equal(got, tt.want) {
				t.Errorf("decisions:\n got %q\nwant %q", got, tt.want)
			}
			for _, d := range res.Decisions {
				if d.Action != ActionDelete {
					continue
				}
				msg, err := d.message("run-1", now)
				if err != nil {
					t.Fatalf("message: %v", err)
				}
				j, err := job.Decode(msg.Body)
				if err != nil {
					t.Fatalf("decoding %s: %v", msg.Body, err)
				}
				if j.Duplicate != (d.Reason == reason.Duplicate) || j.Key != job.DeleteKey(acct, region, d.Snapshot) {
					t.Errorf("delete job %+v for decision %+v: duplicate only when the reason is", j, d)
				}
			}
		})
	}
}
