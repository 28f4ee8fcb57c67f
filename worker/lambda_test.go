package worker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// TestHandleBatchOutcomes routes every outcome of a delivered batch: done messages are left
// for the event source mapping (not deleted), poison ones dead-lettered and done, snoozed
// and retryable ones hidden for their backoff and returned for retry, one still running at
// the deadline released and returned for retry. The slow handler and the deadline are
// what moto cannot serve; the moto path is cmd/snapfleet's lambdafn_test.go.
func TestHandleBatchOutcomes(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	period := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	vols := []string{"vol-00000000000000001", "vol-00000000000000002", "vol-00000000000000003", "vol-00000000000000004", "vol-00000000000000005"}
	bodies := [][]byte{[]byte(`{"v":2}`)}
	for _, v := range vols {
		bodies = append(bodies, encode(t, createJob(v, "default", period)))
	}
	ids := q.add(0, bodies...)
	msgs, err := q.Receive(context.Background(), 10, 0)
	if err != nil || len(msgs) != len(ids) {
		t.Fatalf("receive: %d messages, %v", len(msgs), err)
	}
	h := HandlerFunc(func(ctx context.Context, j job.Job) (Result, error) {
		switch j.Volume {
		case vols[0]:
			return Result{Action: Created, Snapshot: "snap-0000000000000000a"}, nil
		case vols[1]:
			return Result{}, Skip(reason.VolumeGone)
		case vols[2]:
			return Result{}, Snooze(15*time.Second, errors.New("SnapshotCreationPerVolumeRateExceeded"))
		case vols[3]:
			return Result{}, errors.New("transient")
		default: // deaf until cancelled: still running at the deadline
			<-ctx.Done()
			return Result{}, ctx.Err()
		}
	})
	w := testWorker(q, h)
	w.Concurrency = 10
	w.forceWait = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), replyMargin+w.forceWait+500*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := w.HandleBatch(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 800*time.Millisecond {
		t.Errorf("HandleBatch took %s; the deadline leaves it %s", took, 600*time.Millisecond)
	}
	// ids: poison, created, skipped, snoozed, retry, deadline
	if want := []string{ids[3], ids[4], ids[5]}; !slices.Equal(res.Retry, want) {
		t.Errorf("Retry = %v, want snoozed, retryable and released %v", res.Retry, want)
	}
	if want := []string{ids[0]}; !slices.Equal(res.DeadLettered, want) {
		t.Errorf("DeadLettered = %v, want the poison message %v", res.DeadLettered, want)
	}
	if want := (Stats{Processed: 5, Created: 1, Skipped: 1, Retried: 2, DeadLettered: 1}); res.Stats != want {
		t.Errorf("stats = %+v, want %+v", res.Stats, want)
	}
	left, deleted, dead, vis := q.state()
	if len(deleted) != 0 {
		t.Errorf("deleted %v: finished messages are the event source mapping's to delete", deleted)
	}
	if len(dead) != 1 || dead[0].id != ids[0] || dead[0].reason != reason.InvalidMessage {
		t.Errorf("dead letters = %+v, want the poison message with invalid_message", dead)
	}
	if left != 5 {
		t.Errorf("%d messages left in the queue, want 5 (all but the dead-lettered)", left)
	}
	got := map[string]time.Duration{}
	for _, v := range vis {
		got[v.id] = v.d
	}
	if got[ids[3]] < 15*time.Second || got[ids[4]] < retryBase || got[ids[5]] != 0 || len(got) != 3 {
		t.Errorf("visibility changes = %v: want snoozed >= 15s, retry >= %s, released 0, nothing else", got, retryBase)
	}
}

// TestHandleBatchStartsNothingPastTheDeadline: with fewer slots than messages and a
// deadline already too close, unstarted messages are returned for retry untouched.
func TestHandleBatchStartsNothingPastTheDeadline(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	period := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	ids := q.add(0, encode(t, createJob("vol-00000000000000001", "default", period)), encode(t, createJob("vol-00000000000000002", "default", period)))
	msgs, err := q.Receive(context.Background(), 10, 0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("receive: %d messages, %v", len(msgs), err)
	}
	block := HandlerFunc(func(ctx context.Context, j job.Job) (Result, error) {
		<-ctx.Done()
		return Result{}, ctx.Err()
	})
	w := testWorker(q, block)
	w.Concurrency = 1
	w.forceWait = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), replyMargin+w.forceWait+200*time.Millisecond)
	defer cancel()
	res, err := w.HandleBatch(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Retry, ids) {
		t.Errorf("Retry = %v, want both %v", res.Retry, ids)
	}
	if _, _, _, vis := q.state(); len(vis) != 1 || vis[0].id != ids[0] || vis[0].d != 0 {
		t.Errorf("visibility changes = %v, want only the started message released", vis)
	}
}
