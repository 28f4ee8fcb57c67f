package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/snapfleet/snapfleet/internal/tag"
)

// TestRunDeadLetters: `snapfleet run` does its work and exits 1 when a job was
// dead-lettered — here a malformed message a broken producer put on the embedded queue.
func TestRunDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	_, vols := e.instancesWithData(ctx, 1, nil)
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	e.sendRaw(ctx, db, `{"v":1,"kind":"snapshot.create","key":"not a key"}`)

	r := e.jsonCLI(1, "run", "--queue", db, "--now", e.at(0), "--allow-clock-skew")
	for path, want := range map[string]int{"plan.snapshot_jobs": 2, "plan.errors": 0, "work.created": 2, "work.dead_lettered": 1} {
		if got := num(t, r, path); got != want {
			t.Errorf("run %s = %d, want %d", path, got, want)
		}
	}
	byVol := managedByVolume(e.snapshots(ctx))
	for _, vs := range vols {
		for _, v := range vs {
			if len(byVol[v]) != 1 {
				t.Errorf("volume %s has %d managed snapshots, want 1: the bad message stops nothing", v, len(byVol[v]))
			}
		}
	}
	// Nothing left to dead-letter: the next run exits 0.
	if r := e.jsonCLI(0, "run", "--queue", db, "--now", e.at(0), "--allow-clock-skew"); num(t, r, "work.dead_lettered") != 0 {
		t.Errorf("second run: %v", r)
	}
}

// TestPlanDryRunText: `plan --dry-run` in text lists every decision — policy, action,
// volume, snapshot, instance, reason — and enqueues nothing; with --log-format console
// the logs on stderr are lines for people, not JSON.
func TestPlanDryRunText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	ids, vols := e.instancesWithData(ctx, 1, nil)
	inst, root, data := ids[0], vols[ids[0]][0], vols[ids[0]][1]
	managed := map[string]string{tag.Policy: "daily", tag.Volume: root}
	old := e.snapshotAt(ctx, root, e.start.Add(-40*day), managed)
	recent := e.snapshotAt(ctx, root, e.start.Add(-2*day), managed)
	now := e.at(0)

	r := e.cli("plan", "--queue", "file:"+filepath.Join(t.TempDir(), "q.db"), "--dry-run", "--now", now,
		"--config", e.config, "--log-format", "console")
	if r.code != 0 {
		t.Fatalf("plan --dry-run: exit %d\n%s", r.code, tail(r.stderr))
	}
	// One row per decision, its cells in the header's order.
	for _, want := range [][]string{
		{"daily", "create", root, "-", inst, "due"},
		{"daily", "create", data, "-", inst, "due"},
		{"daily", "delete", root, old, "-", "expired"},
		{"daily", "keep", root, recent, "-", "newest"},
	} {
		row := regexp.MustCompile(`(?m)^` + strings.Join(quoteAll(want), `\s+`) + `(\s|$)`)
		if !row.MatchString(r.stdout) {
			t.Errorf("dry-run text has no row %v:\n%s", want, r.stdout)
		}
	}
	for _, want := range []string{"(dry run: nothing enqueued)", "POLICY  ACTION  VOLUME", "enqueued"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry-run text does not say %q:\n%s", want, r.stdout)
		}
	}

	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	sawDone := false
	for _, l := range lines {
		var v any
		if json.Unmarshal([]byte(l), &v) == nil {
			t.Errorf("--log-format console wrote a JSON line: %s", l)
		}
		sawDone = sawDone || strings.Contains(l, "plan done")
	}
	if !sawDone || !strings.Contains(r.stderr, "INF") {
		t.Errorf("console logs have no INF \"plan done\" line:\n%s", r.stderr)
	}
	// The JSON default, for contrast: every line is an object with the same message.
	j := e.cli("plan", "--queue", "file:"+filepath.Join(t.TempDir(), "q2.db"), "--dry-run", "--now", now, "--config", e.config)
	for _, l := range strings.Split(strings.TrimSpace(j.stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("default log line is not JSON: %q", l)
		}
	}
	if !strings.Contains(j.stderr, `"message":"plan done"`) {
		t.Errorf("JSON logs have no plan done: %s", tail(j.stderr))
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = regexp.QuoteMeta(s)
	}
	return out
}
