package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/faultproxy"
	"github.com/snapfleet/snapfleet/worker"
)

// TestSharedSnapshotSkippedByWorker is issue 14.2 end to end, through the binary, moto
// and a counting proxy: a plan costs listings, so it asks no share and enqueues the
// delete of a shared expired snapshot with the other expired one; the worker re-checks
// shares right before DeleteSnapshot, skips the shared one (shared) without a
// DeleteSnapshot call on it, and deletes the other. `plan --dry-run --check-shares` shows
// the shared one as protected shared, with one share check per planned delete.
func TestSharedSnapshotSkippedByWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.setConfig("max_delete_fraction: 1\npolicies:\n  - name: daily\n    retain: {max_age: 30d}\n")
	v := e.fleet.Volume(ctx)
	managed := map[string]string{tag.Policy: "daily", tag.Volume: v}
	real := time.Now()
	newest := e.snapshotAt(ctx, v, real.Add(-day), managed)
	shared := e.snapshotAt(ctx, v, real.Add(-40*day), managed)
	old := e.snapshotAt(ctx, v, real.Add(-45*day), managed)
	e.moto.ShiftClock(t, 0)
	e.fleet.Share(ctx, shared, "111122223333")
	proxy := faultproxy.Start(t, e.moto.Endpoint)
	e.env = proxy.Env()
	shareChecks := func() int { return proxy.Count("DescribeSnapshotAttribute").Calls }

	got := decisionsOf(t, e.jsonCLI(0, "plan", "--dry-run"))
	if got[shared] != "delete expired" || got[old] != "delete expired" || got[newest] != "keep newest" || shareChecks() != 0 {
		t.Fatalf("dry run: decisions %v, %d share checks; want both expired ones deleted and no share check", got, shareChecks())
	}
	p := e.jsonCLI(0, "plan", "--dry-run", "--check-shares")
	if got = decisionsOf(t, p); got[shared] != "protected shared" || got[old] != "delete expired" || p["check_shares"] != true || shareChecks() != 2 {
		t.Fatalf("dry run --check-shares: decisions %v, check_shares %v, %d share checks; want the shared one protected, 2 checks",
			got, p["check_shares"], shareChecks())
	}

	db := "file:" + filepath.Join(t.TempDir(), "jobs.db")
	if p = e.jsonCLI(0, "plan", "--queue", db); num(t, p, "delete_jobs") != 2 || shareChecks() != 2 {
		t.Fatalf("plan: %v, %d share checks in all; want 2 deletes enqueued and no share check", p, shareChecks()-2)
	}
	r := e.cli("work", "--queue", db, "--idle-exit", "2s", "--output", "json", "--config", e.config)
	var s worker.Stats
	if err := json.Unmarshal([]byte(r.stdout), &s); r.code != 0 || err != nil {
		t.Fatalf("work: exit %d, stdout %q (%v)\n%s", r.code, r.stdout, err, tail(r.stderr))
	}
	if s.Deleted != 1 || s.Skipped != 1 || s.DeadLettered != 0 {
		t.Fatalf("work: %+v, want 1 deleted and 1 skipped", s)
	}
	snaps := e.snapshots(ctx)
	if _, ok := snaps[shared]; !ok {
		t.Fatalf("the shared snapshot %s was deleted", shared)
	}
	if _, ok := snaps[old]; ok {
		t.Fatalf("the expired snapshot %s was not deleted", old)
	}
	if n := proxy.Count("DeleteSnapshot").Calls; n != 1 {
		t.Fatalf("%d DeleteSnapshot calls, want 1 (none for the shared snapshot)", n)
	}
	skipped := false
	for _, line := range strings.Split(r.stderr, "\n") {
		skipped = skipped || strings.Contains(line, `"reason":"shared"`) && strings.Contains(line, shared)
	}
	if !skipped {
		t.Fatalf("no log line skips %s with reason shared:\n%s", shared, tail(r.stderr))
	}
}
