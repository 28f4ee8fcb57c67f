package report

import (
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/recovery"
)

// NoDrills is what the report says when no drill was recorded.
const NoDrills = "no drills recorded"

// DrillReport is the last drill of each policy.
type DrillReport struct {
	// Note is NoDrills when no drill was recorded at all.
	Note string `json:"note,omitempty"`
	// ByPolicy has one row per configured policy (and per other policy drilled); Last is
	// nil for a policy never drilled.
	ByPolicy []PolicyDrill `json:"by_policy"`
}

// PolicyDrill is the newest drill restore of one policy, and the figures of the drill it
// was part of (restores tried and succeeded, p50/p99 time-to-available).
type PolicyDrill struct {
	Policy string                 `json:"policy"`
	Last   *DrillRecord           `json:"last"`
	Drill  *recovery.PolicyResult `json:"drill,omitempty"`
}

// lastDrillPerPolicy keeps the newest record of each policy.
func lastDrillPerPolicy(cfg *config.Config, records []DrillRecord) DrillReport {
	newest := map[string]DrillRecord{}
	for _, r := range records {
		if cur, ok := newest[r.Policy]; !ok || r.At.After(cur.At) {
			newest[r.Policy] = r
		}
	}
	d := DrillReport{ByPolicy: []PolicyDrill{}}
	if len(records) == 0 {
		d.Note = NoDrills
	}
	done := map[string]bool{}
	row := func(name string) {
		done[name] = true
		pd := PolicyDrill{Policy: name}
		if r, ok := newest[name]; ok {
			pd.Last = &r
			pd.Drill = drillFigures(records, r.Drill, name)
		}
		d.ByPolicy = append(d.ByPolicy, pd)
	}
	for _, p := range cfg.Policies {
		row(p.Name)
	}
	for _, r := range records {
		if !done[r.Policy] {
			row(r.Policy)
		}
	}
	return d
}

// drillFigures summarises the records of one drill for one policy.
func drillFigures(records []DrillRecord, drill, policy string) *recovery.PolicyResult {
	var of []DrillRecord
	for _, r := range records {
		if r.Drill == drill && r.Policy == policy {
			of = append(of, r)
		}
	}
	s := recovery.Summarize(of)
	if len(s) != 1 {
		return nil
	}
	return &s[0]
}
