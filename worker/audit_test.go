package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/audit"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
)

// auditLog is an Auditor that keeps what it is given.
type auditLog struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (a *auditLog) Audit(_ context.Context, recs ...audit.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, recs...)
}

func (a *auditLog) records() []audit.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]audit.Record(nil), a.recs...)
}

// TestAuditRouting: every job settled to a change or a refusal gives the Auditor one
// record with its action, reason and resource, whatever handler settled it; snoozes and
// retries, which change nothing, give none.
func TestAuditRouting(t *testing.T) {
	t.Parallel()
	const snap = "snap-0123456789abcdef0"
	tests := []struct {
		name   string
		result Result
		err    error
		want   string // action/reason; "" for no record
	}{
		{name: "created", result: Result{Action: Created, Snapshot: snap, Reason: reason.Due}, want: "created/due"},
		{name: "existed", result: Result{Action: Existed, Snapshot: snap}, want: "existed/"},
		{name: "a kind's own action", result: Result{Action: "copied", Snapshot: snap}, want: "copied/"},
		{name: "no action", result: Result{}, want: "done/"},
		{name: "skip", err: skipErr(reason.InUse, errors.New("used by ami-1")), want: "skipped/in_use"},
		{name: "refused", err: Permanent(reason.RefusedRetention, errors.New("kept")), want: "refused/refused_retention"},
		{name: "dead letter", err: Permanent(reason.AccessDenied, errors.New("no")), want: "dead_lettered/access_denied"},
		{name: "snooze", err: Snooze(20*time.Second, errors.New("throttled"))},
		{name: "retry", err: errors.New("something odd")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newFakeQueue()
			j := createJob("vol-0123456789abcdef0", "default", plannedAt)
			q.add(0, encode(t, j))
			w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) { return tt.result, tt.err }))
			w.ExitWhenDrained = false
			w.IdleExit = 100 * time.Millisecond
			log := &auditLog{}
			w.Audit = log
			runFor(t, w, 5*time.Second)
			recs := log.records()
			if tt.want == "" {
				if len(recs) != 0 {
					t.Fatalf("records %+v, want none", recs)
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1: %+v", len(recs), recs)
			}
			r := recs[0]
			if got := r.Action + "/" + r.Reason; got != tt.want {
				t.Errorf("record %s, want %s", got, tt.want)
			}
			if r.Key != j.Key || r.Run != j.Run || r.Kind != j.Kind || r.Volume != j.Volume || r.Account != j.Account ||
				r.Region != j.Region || r.Host == "" || r.PID == 0 || r.At.IsZero() {
				t.Errorf("record %+v does not name the job and the process", r)
			}
			if r.Snapshot != tt.result.Snapshot || (tt.err != nil) != (r.Error != "") {
				t.Errorf("record snapshot %q, error %q", r.Snapshot, r.Error)
			}
		})
	}
}

// TestAuditBatch: HandleBatch (the Lambda worker) audits through the same route: a refused
// job and an undecodable message each give one record.
func TestAuditBatch(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	q.add(0, encode(t, deleteJob("snap-0123456789abcdef0", "default")), []byte(`{"v":1}`))
	msgs, err := q.Receive(context.Background(), 10, 0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("receive: %d, %v", len(msgs), err)
	}
	w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) {
		return Result{}, Permanent(reason.RefusedUnmanaged, errors.New("not ours"))
	}))
	log := &auditLog{}
	w.Audit = log
	if _, err := w.HandleBatch(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	got := map[string]audit.Record{}
	for _, r := range log.records() {
		got[r.Action+"/"+r.Reason] = r
	}
	if r, ok := got["refused/refused_unmanaged"]; !ok || r.Snapshot != "snap-0123456789abcdef0" {
		t.Errorf("records %+v: want the refused delete with its snapshot", got)
	}
	if r, ok := got["dead_lettered/invalid_message"]; !ok || r.Message != `{"v":1}` {
		t.Errorf("records %+v: want the undecodable message dead-lettered with its body", got)
	}
	if len(got) != 2 {
		t.Errorf("records %+v, want 2", got)
	}
}

// TestAuditReasons: through moto, a create's record says due with the snapshot it made, an
// expired snapshot's deletion says expired, and a duplicate creation removed by a delete
// marked duplicate says duplicate — while the keeper, named by a delete marked duplicate
// too, is refused by retention.
func TestAuditReasons(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, "policies:\n  - name: daily\n    retain: {max_age: 30d, min_keep: 1}\n")
	period := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	create := createJob(e.volume(t), "daily", period)
	old := e.volume(t)
	expired := e.managed(t, old, "daily", 40*24*time.Hour)
	e.managed(t, old, "daily", time.Hour)
	pairJob := createJob(e.volume(t), "daily", period)
	a, b := e.made(t, pairJob), e.made(t, pairJob)
	keeper, dup := min(a, b), max(a, b)
	marked := func(id string) job.Job {
		j := deleteJob(id, "daily")
		j.Volume, j.Duplicate = pairJob.Volume, true
		return j
	}
	q := newFakeQueue()
	q.add(0, encode(t, create), encode(t, deleteJob(expired, "daily")), encode(t, marked(dup)))
	w := e.newWorker(q, cfg, time.Now)
	log := &auditLog{}
	w.Audit = log
	runFor(t, w, 20*time.Second)
	q = newFakeQueue()
	q.add(0, encode(t, marked(keeper)))
	w = e.newWorker(q, cfg, time.Now)
	w.Audit = log
	runFor(t, w, 20*time.Second)

	got := map[string]string{} // key → action/reason
	for _, r := range log.records() {
		got[r.Key] = r.Action + "/" + r.Reason
		if r.Kind == job.KindCreate && (r.Snapshot == "" || e.exists(t, r.Snapshot) == false) {
			t.Errorf("create record names snapshot %q, which does not exist", r.Snapshot)
		}
	}
	want := map[string]string{
		create.Key:                 "created/due",
		deleteJob(expired, "").Key: "deleted/expired",
		deleteJob(dup, "").Key:     "deleted/duplicate",
		deleteJob(keeper, "").Key:  "refused/refused_retention",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("record of %s: %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("records %v, want %v", got, want)
	}
}

// TestAuditSnapshots: a success that made several snapshots gives one record each.
func TestAuditSnapshots(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	q.add(0, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	made := []string{"snap-0123456789abcdef0", "snap-0123456789abcdef1"}
	w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) {
		return Result{Action: Created, Snapshot: made[0], Snapshots: made, Reason: reason.Due}, nil
	}))
	log := &auditLog{}
	w.Audit = log
	runFor(t, w, 5*time.Second)
	recs := log.records()
	if len(recs) != 2 || recs[0].Snapshot != made[0] || recs[1].Snapshot != made[1] || recs[1].Action != "created" || recs[1].Reason != "due" {
		t.Errorf("records %+v, want one created record per snapshot", recs)
	}
}
