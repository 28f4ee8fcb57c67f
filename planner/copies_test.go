package planner

import (
	"slices"
	"testing"
	"time"
)

const (
	vault = "222222222222"
	dr    = "us-west-2"
)

// copyConfig copies policy daily to dr in the vault with these retain rules.
func copyConfig(t *testing.T, retain string) string {
	t.Helper()
	return `accounts: [{id: "` + acct + `"}, {id: "` + vault + `"}]
policies:
  - name: daily
    retain: {max_age: 30d}
    copy:
      - region: ` + dr + `
        account: "` + vault + `"
        retain: ` + retain + `
`
}

// copyOf is a completed copy in the vault of source snapshot src of volume vol, whose
// source was taken age before now.
func copyOf(id, src, policy, vol string, age time.Duration) Snapshot {
	return Snapshot{ID: id, Owner: vault, Policy: policy, Volume: vol, State: "completed", Start: now.Add(-age),
		Origin: &Origin{Snapshot: src, Account: acct, Region: region}}
}

func source(id, vol string, age time.Duration) copySource {
	return copySource{account: acct, region: region, policy: "daily", volume: vol, id: id, start: now.Add(-age)}
}

func TestDecideCopies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		retain   string
		sources  []copySource
		copies   []Snapshot
		complete bool
		want     []string
	}{
		{
			name:    "one copy job per source without a copy",
			retain:  "{keep_last: 5}",
			sources: []copySource{source("snap-00000001", "vol-00000001", 2*day), source("snap-00000002", "vol-00000001", day)},
			copies:  []Snapshot{copyOf("snap-c0000001", "snap-00000001", "daily", "vol-00000001", 2*day)},
			want: []string{"daily copy vol-00000001 copy_due", // snap-00000002
				"daily keep snap-c0000001 newest"},
			complete: true,
		},
		{
			name:     "own retention over copies, never below min_keep",
			retain:   "{keep_last: 1, min_keep: 3}",
			copies:   []Snapshot{copyOf("snap-c0000001", "snap-00000001", "daily", "vol-00000001", 4*day), copyOf("snap-c0000002", "snap-00000002", "daily", "vol-00000001", 3*day), copyOf("snap-c0000003", "snap-00000003", "daily", "vol-00000001", 2*day), copyOf("snap-c0000004", "snap-00000004", "daily", "vol-00000001", day)},
			want:     []string{"daily delete snap-c0000001 expired", "daily keep snap-c0000002 min_keep", "daily keep snap-c0000003 min_keep", "daily keep snap-c0000004 newest"},
			complete: true,
		},
		{
			name:     "a copy the destination would delete at once is not made",
			retain:   "{keep_last: 1}",
			sources:  []copySource{source("snap-00000001", "vol-00000001", 3*day)},
			copies:   []Snapshot{copyOf("snap-c0000002", "snap-00000002", "daily", "vol-00000001", day)},
			want:     []string{"daily keep snap-c0000002 newest", "daily skip vol-00000001 copy_not_kept"},
			complete: true,
		},
		{
			name:     "a copy of a policy not in the config is never touched",
			retain:   "{keep_last: 1}",
			copies:   []Snapshot{copyOf("snap-c0000001", "snap-00000001", "gone", "vol-00000001", 400*day), copyOf("snap-c0000002", "snap-00000002", "gone", "vol-00000001", 300*day)},
			want:     []string{"gone keep snap-c0000001 unknown_policy", "gone keep snap-c0000002 unknown_policy"},
			complete: true,
		},
		{
			name:     "incomplete listing: no copies, no deletes",
			retain:   "{keep_last: 1}",
			sources:  []copySource{source("snap-00000003", "vol-00000001", 0)},
			copies:   []Snapshot{copyOf("snap-c0000001", "snap-00000001", "daily", "vol-00000001", 3*day), copyOf("snap-c0000002", "snap-00000002", "daily", "vol-00000001", 2*day)},
			want:     []string{"daily keep snap-c0000001 fail_closed", "daily keep snap-c0000002 newest"},
			complete: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustConfig(t, copyConfig(t, tt.retain))
			res := DecideCopies(vault, dr, tt.sources, tt.copies, tt.complete, cfg, now, nil)
			if got := brief(res.Decisions); !slices.Equal(got, tt.want) {
				t.Errorf("decisions:\n got %q\nwant %q", got, tt.want)
			}
			for _, d := range res.Decisions {
				if d.Action == ActionCopy {
					msg, err := d.message("r1", now)
					if err != nil {
						t.Fatalf("copy message: %v", err)
					}
					if d.Key != vault+"/"+dr+"/"+d.SourceSnapshot+"/copy" || len(msg.Body) == 0 {
						t.Errorf("copy decision %+v", d)
					}
				}
			}
		})
	}
}

// TestCopiesBreakerPerDestination: the breaker holds a destination's deletes when they
// are more than max_delete_fraction of its copies.
func TestCopiesBreakerPerDestination(t *testing.T) {
	t.Parallel()
	cfg := mustConfig(t, copyConfig(t, "{keep_last: 1}"))
	var copies []Snapshot
	for i, id := range []string{"snap-c0000001", "snap-c0000002", "snap-c0000003", "snap-c0000004"} {
		copies = append(copies, copyOf(id, "snap-0000000"+string(rune('1'+i)), "daily", "vol-00000001", time.Duration(5-i)*day))
	}
	res := DecideCopies(vault, dr, nil, copies, true, cfg, now, nil)
	if res.Deletes != 3 {
		t.Fatalf("deletes = %d, want 3", res.Deletes)
	}
	if !res.Trip(true, cfg.DeleteFraction(), false) || res.Held != 3 || res.Deletes != 0 {
		t.Fatalf("breaker: tripped %v, held %d, deletes %d", res.Breaker, res.Held, res.Deletes)
	}
}

// TestSourceIgnoresCopies: a copy listed at the source's account-region (a copy made there
// of another region's snapshot) is no snapshot of its volume there: deleting every source
// snapshot leaves the copy alone, and the copy does not hold back the source's deletes.
func TestSourceIgnoresCopies(t *testing.T) {
	t.Parallel()
	cfg := mustConfig(t, "policies: [{name: daily, retain: {keep_last: 1}}]\n")
	c := snap("snap-c0000001", "daily", "vol-00000001", 0)
	c.Copy, c.Origin = true, &Origin{Snapshot: "snap-0ffff001"}
	inv := Inventory{Account: acct, Region: region, SnapshotsComplete: true, Volumes: map[string]bool{"vol-00000001": true},
		Snapshots: []Snapshot{snap("snap-00000001", "daily", "vol-00000001", 2*day), snap("snap-00000002", "daily", "vol-00000001", day), c}}
	res := Decide(inv, cfg, now)
	want := []string{"daily delete snap-00000001 expired", "daily keep snap-00000002 newest"}
	if got := brief(res.Decisions); !slices.Equal(got, want) {
		t.Errorf("decisions:\n got %q\nwant %q", got, want)
	}
}
