package worker

import (
	"context"
	"strings"
	"time"

	"github.com/snapfleet/snapfleet/internal/audit"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/queue"
)

// Auditor keeps the audit trail: it is given one audit.Record for every job the worker
// settles to a change or a refusal (success, skip, dead letter). It is called from the
// worker's goroutines and must not block for long (audit.Batcher queues and returns).
type Auditor interface {
	Audit(ctx context.Context, recs ...audit.Record)
}

// doneAction is the action of a success whose handler named none.
const doneAction = "done"

// audit tells the Auditor, when set, of a settled job. Snoozes, retries and releases
// change nothing and are not recorded; a dead letter whose queue call failed did not
// happen (the message comes back) and is recorded when it does.
func (r *runner) audit(m queue.Message, j job.Job, res Result, err error, s settled) {
	if r.w.Audit == nil {
		return
	}
	rec, ok := auditRecord(m, j, res, err, s)
	if !ok {
		return
	}
	if s.o != outSuccess || len(res.Snapshots) < 2 {
		r.w.Audit.Audit(r.qctx, rec)
		return
	}
	recs := make([]audit.Record, len(res.Snapshots))
	for i, id := range res.Snapshots {
		recs[i] = rec
		recs[i].Snapshot = id
	}
	r.w.Audit.Audit(r.qctx, recs...)
}

// auditRecord is the record of a settled job; false when its outcome is not recorded.
func auditRecord(m queue.Message, j job.Job, res Result, err error, s settled) (audit.Record, bool) {
	var action string
	switch s.o {
	case outSuccess:
		action = string(res.Action)
		if action == "" {
			action = doneAction
		}
	case outSkip:
		action = audit.Skipped
	case outDeadLetter:
		if s.qerr != nil {
			return audit.Record{}, false
		}
		action = audit.DeadLettered
		if reason.IsRefusal(s.why) {
			action = audit.Refused
		}
	default:
		return audit.Record{}, false
	}
	host, pid := audit.Self()
	rec := audit.Record{
		At: time.Now().UTC(), Run: j.Run, Key: j.Key, Kind: j.Kind,
		Account: j.Account, Region: j.Region, Policy: j.Policy,
		Snapshot: res.Snapshot, Volume: j.Volume, Instance: j.Instance,
		Action: action, Reason: s.why, Host: host, PID: pid,
	}
	if s.o == outSuccess {
		rec.Reason = res.Reason
	}
	if rec.Snapshot == "" {
		rec.Snapshot = j.Snapshot
	}
	if err != nil {
		rec.Error = strings.Join(strings.Fields(err.Error()), " ")
	}
	if s.why == reason.InvalidMessage { // perhaps not decoded: keep what was received
		rec.Message = string(m.Body[:min(len(m.Body), job.MaxSize)])
	}
	return rec, true
}
