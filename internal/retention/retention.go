// Package retention decides which snapshots of one volume are kept and which expire. It is
// a pure function of the snapshots, the policy's rules and the clock, used by the planner
// to enqueue deletes and again by the worker to re-check each delete against live state.
//
// The rules are restic's `forget` made familiar: keep_last keeps the newest N snapshots;
// keep_hourly, keep_daily, keep_weekly (ISO weeks), keep_monthly and keep_yearly keep the
// newest snapshot of each of the last N such UTC periods that have snapshots, counted
// newest first; max_age keeps what is younger than it (restic's --keep-within, measured
// from now). A snapshot goes only when no rule keeps it, and min_keep is a floor under
// everything: the newest min_keep snapshots stay whatever the rules say. The newest dated
// snapshot is always kept, except for an orphan (its volume is gone) under a policy that
// opted in with orphans.min_keep 0.
package retention

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
)

// Snapshot is what retention needs to know of one snapshot. A zero Start means the time
// could not be read: such a snapshot is never counted and never deleted.
type Snapshot struct {
	ID    string
	Start time.Time
}

// Rules are the keep rules of a policy. A rule with a zero value is off; MinKeep is a
// floor that holds whatever the other rules say, and the newest snapshot is always kept
// (unless Orphan and MinKeep is 0).
type Rules struct {
	MaxAge      time.Duration
	KeepLast    int
	KeepHourly  int
	KeepDaily   int
	KeepWeekly  int
	KeepMonthly int
	KeepYearly  int
	MinKeep     int
	// Orphan says the rules apply to the snapshots of a volume that no longer exists:
	// MinKeep is then the policy's orphans.min_keep and, when that is 0, even the newest
	// snapshot may expire. Set it with Orphaned, never by hand.
	Orphan bool
	// OrphanMinKeep is the floor Orphaned applies (orphans.min_keep; by default MinKeep).
	OrphanMinKeep int
}

// Orphaned returns the rules for the snapshots of a volume that is gone.
func (r Rules) Orphaned() Rules {
	r.Orphan = true
	r.MinKeep = r.OrphanMinKeep
	return r
}

// Reasons a snapshot is kept or deleted; they appear in logs, dry-run plans and refusals.
// The count rules' reasons are their config keys.
const (
	KeptNewest      = "newest"
	KeptMinKeep     = "min_keep"
	KeptKeepLast    = "keep_last"
	KeptHourly      = "keep_hourly"
	KeptDaily       = "keep_daily"
	KeptWeekly      = "keep_weekly"
	KeptMonthly     = "keep_monthly"
	KeptYearly      = "keep_yearly"
	KeptMaxAge      = "max_age"
	KeptUnknownTime = "unknown_time"
	KeptFuture      = "future_time"
	Expired         = "expired"
)

// Decision is the verdict on one snapshot.
type Decision struct {
	ID   string
	Keep bool
	// Reason is the first of: newest, min_keep (the floors), then the first keep rule
	// that keeps it, in the order of Rules' fields; Expired when nothing keeps it.
	Reason string
	// Rules names every keep rule that keeps the snapshot (keep_last, keep_daily, ...,
	// max_age), floors aside; empty for an expired snapshot.
	Rules []string
}

// bucket is one count rule: how many periods, and the period of a UTC time.
type bucket struct {
	name   string
	n      int
	period func(time.Time) int64
}

func hourOf(t time.Time) int64 {
	h := t.Unix() / 3600
	if t.Unix()%3600 < 0 {
		h--
	}
	return h
}
func dayOf(t time.Time) int64 { return int64(t.Year())*1000 + int64(t.YearDay()) }
func weekOf(t time.Time) int64 {
	y, w := t.ISOWeek()
	return int64(y)*100 + int64(w)
}
func monthOf(t time.Time) int64 { return int64(t.Year())*100 + int64(t.Month()) }
func yearOf(t time.Time) int64  { return int64(t.Year()) }

// Decide returns one decision per snapshot: first those with an unknown or future start
// time, in input order — they are kept and count toward no rule —, then the dated ones
// newest first (ties in start time: the greater id is newer).
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
	var buckets []bucket
	for _, b := range []bucket{
		{KeptHourly, r.KeepHourly, hourOf}, {KeptDaily, r.KeepDaily, dayOf}, {KeptWeekly, r.KeepWeekly, weekOf},
		{KeptMonthly, r.KeepMonthly, monthOf}, {KeptYearly, r.KeepYearly, yearOf},
	} {
		if b.n > 0 {
			buckets = append(buckets, b)
		}
	}
	left := make([]int, len(buckets))
	last := make([]int64, len(buckets))
	seen := make([]bool, len(buckets))
	for i, b := range buckets {
		left[i] = b.n
	}
	keepNewest := !r.Orphan || r.MinKeep > 0
	for i, s := range dated {
		var rules []string
		if i < r.KeepLast {
			rules = append(rules, KeptKeepLast)
		}
		utc := s.Start.UTC()
		for bi, b := range buckets {
			if left[bi] == 0 {
				continue
			}
			// Newest first: the first snapshot met in a period is that period's newest.
			if p := b.period(utc); !seen[bi] || p != last[bi] {
				seen[bi], last[bi] = true, p
				left[bi]--
				rules = append(rules, b.name)
			}
		}
		if r.MaxAge > 0 && now.Sub(s.Start) < r.MaxAge {
			rules = append(rules, KeptMaxAge)
		}
		d := Decision{ID: s.ID, Keep: true, Rules: rules}
		switch {
		case i == 0 && keepNewest:
			d.Reason = KeptNewest
		case i < r.MinKeep:
			d.Reason = KeptMinKeep
		case len(rules) > 0:
			d.Reason = rules[0]
		default:
			d.Keep, d.Reason = false, Expired
		}
		out = append(out, d)
	}
	return out
}

// describe says what one rule means under r, e.g. "within keep_daily 7".
func (r Rules) describe(rule string) string {
	switch rule {
	case KeptNewest:
		return "newest of its volume"
	case KeptMinKeep:
		return "within " + r.floorName() + fmt.Sprintf(" %d", r.MinKeep)
	case KeptKeepLast:
		return fmt.Sprintf("within keep_last %d", r.KeepLast)
	case KeptHourly:
		return fmt.Sprintf("newest of its UTC hour, within keep_hourly %d", r.KeepHourly)
	case KeptDaily:
		return fmt.Sprintf("newest of its UTC day, within keep_daily %d", r.KeepDaily)
	case KeptWeekly:
		return fmt.Sprintf("newest of its ISO week, within keep_weekly %d", r.KeepWeekly)
	case KeptMonthly:
		return fmt.Sprintf("newest of its UTC month, within keep_monthly %d", r.KeepMonthly)
	case KeptYearly:
		return fmt.Sprintf("newest of its UTC year, within keep_yearly %d", r.KeepYearly)
	case KeptMaxAge:
		return fmt.Sprintf("younger than max_age %s", config.Duration(r.MaxAge))
	}
	return rule
}

func (r Rules) floorName() string {
	if r.Orphan {
		return "orphans.min_keep"
	}
	return "min_keep"
}

// Explain says in words why a decision was reached under these rules: every rule that
// keeps a kept snapshot, or every rule that is on and let an expired one go.
func (r Rules) Explain(d Decision) string {
	switch d.Reason {
	case Expired:
		// Name only the rules that are on: "older than max_age 0s" would read as nonsense.
		var parts []string
		if r.MaxAge > 0 {
			parts = append(parts, fmt.Sprintf("older than max_age %s", config.Duration(r.MaxAge)))
		}
		var beyond []string
		for _, c := range []struct {
			name string
			n    int
		}{{"keep_last", r.KeepLast}, {"keep_hourly", r.KeepHourly}, {"keep_daily", r.KeepDaily},
			{"keep_weekly", r.KeepWeekly}, {"keep_monthly", r.KeepMonthly}, {"keep_yearly", r.KeepYearly}} {
			if c.n > 0 {
				beyond = append(beyond, fmt.Sprintf("%s %d", c.name, c.n))
			}
		}
		floor := max(1, r.MinKeep)
		if r.Orphan {
			floor = max(0, r.MinKeep)
		}
		beyond = append(beyond, fmt.Sprintf("%s %d", r.floorName(), floor))
		parts = append(parts, "beyond "+strings.Join(beyond, ", "))
		s := strings.Join(parts, " and ")
		if r.Orphan {
			s += " (volume gone)"
		}
		return s
	case KeptUnknownTime:
		return "start time unknown: never counted, never deleted"
	case KeptFuture:
		return "start time in the future: never counted, never deleted"
	}
	var parts []string
	if d.Reason == KeptNewest || d.Reason == KeptMinKeep {
		parts = append(parts, r.describe(d.Reason))
	}
	rules := d.Rules
	if len(rules) == 0 && len(parts) == 0 {
		rules = []string{d.Reason} // a decision built by hand, without Rules
	}
	for _, rule := range rules {
		parts = append(parts, r.describe(rule))
	}
	return strings.Join(parts, "; ")
}
