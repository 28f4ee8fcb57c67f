// Package retention decides which snapshots of one volume are kept and which expire. It is
// a pure function of the snapshots, the policy's rules and the clock, used by the planner
// to enqueue deletes and again by the worker to re-check each delete against live state.
package retention

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Snapshot is what retention needs to know of one snapshot. A zero Start means the time
// could not be read: such a snapshot is never counted and never deleted.
type Snapshot struct {
	ID    string
	Start time.Time
}

// Rules are the keep rules of a policy. A rule with a zero value is off; MinKeep is a
// floor that holds whatever the other rules say, and the newest snapshot is always kept.
type Rules struct {
	MaxAge   time.Duration
	KeepLast int
	MinKeep  int
}

// Reasons a snapshot is kept or deleted; they appear in logs, dry-run plans and refusals.
const (
	KeptNewest      = "newest"
	KeptMinKeep     = "min_keep"
	KeptKeepLast    = "keep_last"
	KeptMaxAge      = "max_age"
	KeptUnknownTime = "unknown_time"
	KeptFuture      = "future_time"
	Expired         = "expired"
)

// Decision is the verdict on one snapshot.
type Decision struct {
	ID     string
	Keep   bool
	Reason string
}

// Decide returns one decision per snapshot, newest first. Snapshots with an unknown or
// future start time are kept and do not count toward any rule.
func Decide(snaps []Snapshot, r Rules, now time.Time) []Decision {
	dated := make([]Snapshot, 0, len(snaps))
	out := make([]Decision, 0, len(snaps))
	for _, s := range snaps {
		switch {
		case s.Start.IsZero():
			out = append(out, Decision{ID: s.ID, Keep: true, Reason: KeptUnknownTime})
		case s.Start.After(now):
			out = append(out, Decision{ID: s.ID, Keep: true, Reason: KeptFuture})
		default:
			dated = append(dated, s)
		}
	}
	sort.Slice(dated, func(i, j int) bool {
		if !dated[i].Start.Equal(dated[j].Start) {
			return dated[i].Start.After(dated[j].Start)
		}
		return dated[i].ID > dated[j].ID
	})
	for i, s := range dated {
		d := Decision{ID: s.ID, Keep: true}
		switch {
		case i == 0:
			d.Reason = KeptNewest
		case i < r.MinKeep:
			d.Reason = KeptMinKeep
		case i < r.KeepLast:
			d.Reason = KeptKeepLast
		case r.MaxAge > 0 && now.Sub(s.Start) < r.MaxAge:
			d.Reason = KeptMaxAge
		default:
			d.Keep = false
			d.Reason = Expired
		}
		out = append(out, d)
	}
	return out
}

// Explain says in words why a decision was reached under these rules.
func (r Rules) Explain(d Decision) string {
	switch d.Reason {
	case KeptMinKeep:
		return fmt.Sprintf("within min_keep %d", r.MinKeep)
	case KeptKeepLast:
		return fmt.Sprintf("within keep_last %d", r.KeepLast)
	case KeptMaxAge:
		return fmt.Sprintf("younger than max_age %s", r.MaxAge)
	case Expired:
		// Name only the rules that are on: "older than max_age 0s" would read as nonsense.
		var parts []string
		if r.MaxAge > 0 {
			parts = append(parts, fmt.Sprintf("older than max_age %s", r.MaxAge))
		}
		beyond := "beyond "
		if r.KeepLast > 0 {
			beyond += fmt.Sprintf("keep_last %d and ", r.KeepLast)
		}
		parts = append(parts, beyond+fmt.Sprintf("min_keep %d", max(1, r.MinKeep)))
		return strings.Join(parts, " and ")
	default:
		return d.Reason
	}
}
