package planner

import (
	"context"
	"time"

	"github.com/snapfleet/snapfleet/internal/audit"
)

// Auditor keeps the audit trail (audit.Record). The planner gives it the deletes a plan
// refused: snapshots that retention expires but that something outside snapfleet
// protects (protected) or that the circuit breaker held (held). A dry run gives it nothing.
type Auditor interface {
	Audit(ctx context.Context, recs ...audit.Record)
}

// AuditKind is the kind of the planner's audit records (the worker's name a job kind).
const AuditKind = "plan"

// audit gives the Auditor, when set and not in a dry run, one record per protected or
// held snapshot of the plan's results.
func (p *Planner) audit(ctx context.Context, run string, results []scopeResult) {
	if p.Audit == nil || p.DryRun {
		return
	}
	host, pid := audit.Self()
	at := time.Now().UTC()
	var recs []audit.Record
	for _, r := range results {
		for _, d := range r.res.Decisions {
			if d.Action != ActionProtected && d.Action != ActionHeld {
				continue
			}
			recs = append(recs, audit.Record{At: at, Run: run, Kind: AuditKind, Account: d.Account, Region: d.Region,
				Policy: d.Policy, Snapshot: d.Snapshot, Volume: d.Volume, Action: d.Action, Reason: d.Reason,
				Error: d.Detail, Host: host, PID: pid})
		}
	}
	p.Audit.Audit(ctx, recs...)
}
