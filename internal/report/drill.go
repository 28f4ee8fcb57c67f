package report

import (
	"github.com/snapfleet/snapfleet/internal/config"
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

// PolicyDrill is the newest drill restore of one policy.
type PolicyDrill struct {
	Policy string       `json:"policy"`
	Last   *DrillRecord `json:"last"`
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
