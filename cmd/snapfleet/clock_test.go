package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/faultproxy"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/queue"
	"github.com/snapfleet/snapfleet/worker"
)

// TestClockSkewHoldsDeletes is issue 12.5 end to end: a worker whose --now is 60 days ahead
// of AWS's clock (the Date of moto's responses) is handed forged deletes of snapshots 5
// and 10 days old (max_age 30d; a newer one is the volume's newest). Without
// --allow-clock-skew it deletes nothing and makes no DeleteSnapshot call: the jobs are
// snoozed (clock_skew), not dead-lettered, and stay on the queue. With the flag the same
// deletes go through, as a replay with --now means them to.
func TestClockSkewHoldsDeletes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	v := e.fleet.Volume(ctx)
	managed := map[string]string{tag.Policy: "daily", tag.Volume: v}
	real := time.Now()
	e.snapshotAt(ctx, v, real.Add(-day), managed)
	young := []string{e.snapshotAt(ctx, v, real.Add(-5*day), managed), e.snapshotAt(ctx, v, real.Add(-10*day), managed)}
	e.moto.ShiftClock(t, 0)
	proxy := faultproxy.Start(t, e.moto.Endpoint)
	e.env = proxy.Env()
	ahead := real.Add(60 * day).UTC().Format(time.RFC3339)

	// forge queues the two deletes on a fresh embedded queue.
	forge := func(name string) string {
		db := "file:" + filepath.Join(t.TempDir(), name)
		q, err := queue.Open(ctx, db, queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		for _, id := range young {
			body, err := job.Encode(job.Job{V: 1, Kind: job.KindDelete, Key: job.DeleteKey(mototest.Account, mototest.Region, id),
				Account: mototest.Account, Region: mototest.Region, Policy: "daily", Snapshot: id, Volume: v, Run: "forged", PlannedAt: real.UTC()})
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Send(ctx, []queue.Outgoing{{Body: body}}); err != nil {
				t.Fatal(err)
			}
		}
		return db
	}

	// Without the flag: the worker never idles out (its jobs wait on the queue), so it is
	// stopped with SIGTERM once both deletes were snoozed for clock_skew.
	skewed := forge("skewed.db")
	logPath := filepath.Join(t.TempDir(), "stderr")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(binary, "work", "--queue", skewed, "--config", e.config, "--output", "json", "--now", ahead, "--visibility", "5s")
	cmd.Env = append(append(os.Environ(), e.moto.Env()...), e.env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	for deadline := time.Now().Add(2 * time.Minute); ; {
		b, _ := os.ReadFile(logPath)
		if strings.Count(string(b), `"reason":"clock_skew"`) >= len(young) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("worker exited (%v) before snoozing both deletes:\n%s", err, tail(string(b)))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no clock_skew snooze of both deletes:\n%s", tail(string(b)))
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("worker after SIGTERM: %v\n%s", err, tail(string(b)))
	}
	var s worker.Stats
	if err := json.Unmarshal([]byte(out.String()), &s); err != nil {
		t.Fatalf("stdout %q: %v", out.String(), err)
	}
	if s.Deleted != 0 || s.DeadLettered != 0 || s.Retried < len(young) {
		t.Fatalf("skewed worker: %+v, want nothing deleted or dead-lettered, both deletes retried later", s)
	}
	if n := proxy.Count("DeleteSnapshot").Calls; n != 0 {
		t.Fatalf("%d DeleteSnapshot calls on a skewed clock, want none", n)
	}
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), "--allow-clock-skew") || !strings.Contains(string(b), "from AWS's") {
		t.Errorf("the snooze does not say why or what to do:\n%s", tail(string(b)))
	}
	snaps := e.snapshots(ctx)
	for _, id := range young {
		if _, ok := snaps[id]; !ok {
			t.Fatalf("snapshot %s deleted on a clock 60 days ahead", id)
		}
	}
	q, err := queue.Open(ctx, skewed, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st, err := q.Stats(ctx); err != nil || st.Total() != len(young) {
		t.Fatalf("jobs queue %+v (%v), want both deletes still on it", st, err)
	}
	dlq, err := q.DLQ(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msgs, err := dlq.Receive(ctx, 10, time.Second); err != nil || len(msgs) != 0 {
		t.Fatalf("dead letters %+v (%v), want none", msgs, err)
	}

	// With the flag: what --now means is done.
	w := e.jsonCLI(0, "work", "--queue", forge("allowed.db"), "--now", ahead, "--allow-clock-skew", "--idle-exit", "2s", "--visibility", "5s")
	if num(t, w, "deleted") != len(young) || num(t, w, "dead_lettered") != 0 {
		t.Fatalf("worker with --allow-clock-skew: %v, want both deleted", w)
	}
	snaps = e.snapshots(ctx)
	for _, id := range young {
		if _, ok := snaps[id]; ok {
			t.Errorf("snapshot %s not deleted with --allow-clock-skew", id)
		}
	}
}
