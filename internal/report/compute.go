package report

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/planner"
)

// Statuses of a selected volume.
const (
	StatusOK      = "ok"
	StatusLate    = "late"
	StatusMissing = "missing"
)

// Report is the coverage report, printed by `snapfleet report --output json`.
type Report struct {
	Now      time.Time `json:"now"`
	Accounts int       `json:"accounts"`
	Regions  int       `json:"regions"`
	Headline Headline  `json:"headline"`
	// Volumes has one row per selected volume and policy, worst first: missing, then late
	// by the most, then ok.
	Volumes   []VolumeStatus `json:"volumes"`
	ByAccount []StatusCount  `json:"by_account"`
	ByRegion  []StatusCount  `json:"by_region"`
	ByPolicy  []StatusCount  `json:"by_policy"`
	ByScope   []StatusCount  `json:"by_scope"`
	// Unprotected are the in-use volumes of instances no policy selects; OptedOut those
	// an exclude tag (or exclude_boot) leaves out on purpose.
	Unprotected    []Unselected `json:"unprotected"`
	OptedOut       []Unselected `json:"opted_out"`
	RecoveryPoints Points       `json:"recovery_points"`
	Failures       Failures     `json:"failures"`
	Cost           CostReport   `json:"cost"`
	Drills         DrillReport  `json:"drills"`
	// Errors are the account-regions (or sources) that could not be read: exit status 1.
	Errors []Failure `json:"errors"`
}

// Headline are the figures an alarm watches: the coverage gauges.
type Headline struct {
	VolumesOK        int     `json:"volumes_ok"`
	VolumesLate      int     `json:"volumes_late"`
	VolumesMissing   int     `json:"volumes_missing"`
	Unprotected      int     `json:"unprotected"`
	OptedOut         int     `json:"opted_out"`
	ErrorSnapshots   int     `json:"error_snapshots"`
	PendingSnapshots int     `json:"pending_snapshots"`
	DeadLetters      int     `json:"dead_letters"`
	MonthlyCostUSD   float64 `json:"estimated_monthly_cost_usd"`
}

// VolumeStatus is the RPO of one selected volume under one policy.
type VolumeStatus struct {
	Account  string `json:"account"`
	Region   string `json:"region"`
	Policy   string `json:"policy"`
	Volume   string `json:"volume"`
	Instance string `json:"instance"`
	Status   string `json:"status"`
	// Newest is the StartTime of the newest completed recovery point; nil when missing.
	Newest     *time.Time `json:"newest"`
	AgeSeconds float64    `json:"age_seconds,omitempty"`
	// RPOSeconds is the policy's every plus the grace.
	RPOSeconds    float64 `json:"rpo_seconds"`
	LateBySeconds float64 `json:"late_by_seconds,omitempty"`
	LateBy        string  `json:"late_by,omitempty"`
}

// StatusCount counts the volume statuses of one account, region, policy or account-region.
type StatusCount struct {
	Key         string `json:"key"`
	OK          int    `json:"ok"`
	Late        int    `json:"late"`
	Missing     int    `json:"missing"`
	Unprotected int    `json:"unprotected"`
	OptedOut    int    `json:"opted_out"`
}

// Unselected is an in-use volume no policy snapshots.
type Unselected struct {
	Account  string `json:"account"`
	Region   string `json:"region"`
	Volume   string `json:"volume"`
	Instance string `json:"instance"`
	// Reason of an opted-out volume: the exclude tag or exclude_boot, and its policy.
	Reason string `json:"reason,omitempty"`
}

// Points counts the completed recovery points.
type Points struct {
	Total       int `json:"total"`
	Crash       int `json:"crash"`
	Application int `json:"application"`
	Archived    int `json:"archived"`
	Copies      int `json:"copies"`
	// CopiesByDestination counts the copies present in each account-region.
	CopiesByDestination []Count `json:"copies_by_destination"`
}

// Count is a number under a key.
type Count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// SnapshotRef names a snapshot of the report.
type SnapshotRef struct {
	Account  string    `json:"account"`
	Region   string    `json:"region"`
	Policy   string    `json:"policy"`
	Volume   string    `json:"volume"`
	Snapshot string    `json:"snapshot"`
	Start    time.Time `json:"start"`
}

// Failures is what failed: dead letters and snapshots pending or in error.
type Failures struct {
	// DeadLetters is nil when no --queue was given.
	DeadLetters *DeadLetters  `json:"dead_letters"`
	Pending     []SnapshotRef `json:"pending"`
	Error       []SnapshotRef `json:"error"`
}

// DeadLetters counts the dead letters of a jobs queue by reason.
type DeadLetters struct {
	Queue    string  `json:"queue"`
	Total    int     `json:"total"`
	ByReason []Count `json:"by_reason"`
}

// Compute is the report of the scopes read at now. It reads nothing but its arguments.
func Compute(scopes []*Scope, cfg *config.Config, now time.Time) *Report {
	rep := &Report{Now: now, Volumes: []VolumeStatus{}, Unprotected: []Unselected{}, OptedOut: []Unselected{},
		Errors: []Failure{}, Failures: Failures{Pending: []SnapshotRef{}, Error: []SnapshotRef{}}}
	copies := map[string]int{}
	for _, sc := range scopes {
		sc.classify(rep, cfg, now)
		p := sc.points
		rep.RecoveryPoints.Total += p.Total
		rep.RecoveryPoints.Crash += p.Crash
		rep.RecoveryPoints.Application += p.Application
		rep.RecoveryPoints.Archived += p.Archived
		rep.RecoveryPoints.Copies += p.Copies
		if p.Copies > 0 {
			copies[sc.Account+"/"+sc.Region] += p.Copies
		}
		rep.Failures.Pending = append(rep.Failures.Pending, sc.pending...)
		rep.Failures.Error = append(rep.Failures.Error, sc.failed...)
	}
	rep.RecoveryPoints.CopiesByDestination = counts(copies)
	slices.SortStableFunc(rep.Volumes, worstFirst)
	rep.ByAccount = statusCounts(rep, func(a, _, _ string) string { return a })
	rep.ByRegion = statusCounts(rep, func(_, r, _ string) string { return r })
	rep.ByPolicy = statusCounts(rep, func(_, _, p string) string { return p })
	rep.ByScope = statusCounts(rep, func(a, r, _ string) string { return a + "/" + r })
	rep.Cost = costReport(scopes, cfg)
	h := &rep.Headline
	for _, v := range rep.Volumes {
		switch v.Status {
		case StatusOK:
			h.VolumesOK++
		case StatusLate:
			h.VolumesLate++
		default:
			h.VolumesMissing++
		}
	}
	h.Unprotected, h.OptedOut = len(rep.Unprotected), len(rep.OptedOut)
	h.ErrorSnapshots, h.PendingSnapshots = len(rep.Failures.Error), len(rep.Failures.Pending)
	h.MonthlyCostUSD = rep.Cost.Total.USD
	return rep
}

// worstFirst orders missing volumes first, then late ones by how late, then ok ones by age.
func worstFirst(a, b VolumeStatus) int {
	rank := map[string]int{StatusMissing: 0, StatusLate: 1, StatusOK: 2}
	if c := cmp.Compare(rank[a.Status], rank[b.Status]); c != 0 {
		return c
	}
	if c := cmp.Compare(b.LateBySeconds, a.LateBySeconds); c != 0 {
		return c
	}
	if c := cmp.Compare(b.AgeSeconds, a.AgeSeconds); c != 0 {
		return c
	}
	return cmp.Compare(a.Account+a.Region+a.Volume+a.Policy, b.Account+b.Region+b.Volume+b.Policy)
}

// classify sorts the scope's attached volumes into selected (with their RPO), opted out
// and unprotected.
func (sc *Scope) classify(rep *Report, cfg *config.Config, now time.Time) {
	type seen struct {
		instance string
		policies map[string]bool
		optedOut string
	}
	vols := map[string]*seen{}
	var order []string
	tags := map[string]map[string]string{}
	for id, v := range sc.Volumes {
		tags[id] = v.Tags
	}
	for ii := range sc.Instances {
		in := &sc.Instances[ii]
		for _, a := range in.Volumes {
			s := vols[a.Volume]
			if s == nil {
				s = &seen{instance: in.ID, policies: map[string]bool{}}
				vols[a.Volume] = s
				order = append(order, a.Volume)
			}
			for pi := range cfg.Policies {
				p := &cfg.Policies[pi]
				why := optOut(p, in, a, tags)
				switch {
				case planner.Selects(p, in) && why == "":
					s.policies[p.Name] = true
				case why != "" && s.optedOut == "":
					s.optedOut = why
				}
			}
		}
	}
	for _, id := range order {
		s := vols[id]
		u := Unselected{Account: sc.Account, Region: sc.Region, Volume: id, Instance: s.instance}
		switch {
		case len(s.policies) > 0:
			for _, p := range cfg.Policies {
				if s.policies[p.Name] {
					rep.Volumes = append(rep.Volumes, sc.rpo(p, id, s.instance, cfg, now))
				}
			}
		case s.optedOut != "":
			u.Reason = s.optedOut
			rep.OptedOut = append(rep.OptedOut, u)
		case sc.inUse(id):
			rep.Unprotected = append(rep.Unprotected, u)
		}
	}
}

// inUse reports whether an attached volume is in use: its listed state, in-use when the
// listing did not show it.
func (sc *Scope) inUse(id string) bool {
	v, ok := sc.Volumes[id]
	return !ok || v.State == "in-use"
}

// optOut says why p leaves the volume out on purpose: an exclude tag on the instance or
// the volume, or exclude_boot; "" when nothing does.
func optOut(p *config.Policy, in *planner.Instance, a planner.Attachment, tags map[string]map[string]string) string {
	for _, k := range slices.Sorted(maps.Keys(p.Select.ExcludeTags)) {
		v := p.Select.ExcludeTags[k]
		if in.Tags[k] == v && hasKey(in.Tags, k) {
			return fmt.Sprintf("policy %s: instance tag %s=%s", p.Name, k, v)
		}
		if tags[a.Volume][k] == v && hasKey(tags[a.Volume], k) {
			return fmt.Sprintf("policy %s: volume tag %s=%s", p.Name, k, v)
		}
	}
	if planner.Selects(p, in) && planner.VolumeSkip(p, in, a, tags) != "" {
		return fmt.Sprintf("policy %s: exclude_boot", p.Name)
	}
	return ""
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// rpo is the status of volume id under policy p.
func (sc *Scope) rpo(p config.Policy, id, instance string, cfg *config.Config, now time.Time) VolumeStatus {
	limit := time.Duration(p.Every) + cfg.Report.GraceOf(p)
	v := VolumeStatus{Account: sc.Account, Region: sc.Region, Policy: p.Name, Volume: id, Instance: instance,
		Status: StatusMissing, RPOSeconds: limit.Seconds()}
	newest, ok := sc.newest[volumeKey{p.Name, id}]
	if !ok {
		return v
	}
	age := max(now.Sub(newest), 0)
	v.Newest, v.AgeSeconds = &newest, age.Seconds()
	if age <= limit {
		v.Status = StatusOK
		return v
	}
	late := age - limit
	v.Status, v.LateBySeconds, v.LateBy = StatusLate, late.Seconds(), late.Round(time.Minute).String()
	return v
}

// statusCounts counts the statuses under key(account, region, policy); unprotected and
// opted-out volumes have no policy and count under every key but the policy's.
func statusCounts(rep *Report, key func(account, region, policy string) string) []StatusCount {
	m := map[string]*StatusCount{}
	get := func(k string) *StatusCount {
		if m[k] == nil {
			m[k] = &StatusCount{Key: k}
		}
		return m[k]
	}
	for _, v := range rep.Volumes {
		c := get(key(v.Account, v.Region, v.Policy))
		switch v.Status {
		case StatusOK:
			c.OK++
		case StatusLate:
			c.Late++
		default:
			c.Missing++
		}
	}
	if key("a", "r", "") != "" {
		for _, u := range rep.Unprotected {
			get(key(u.Account, u.Region, "")).Unprotected++
		}
		for _, u := range rep.OptedOut {
			get(key(u.Account, u.Region, "")).OptedOut++
		}
	}
	out := make([]StatusCount, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, *m[k])
	}
	return out
}

func counts(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, Count{Key: k, Count: m[k]})
	}
	return out
}

// deadLetters counts the dead letters of queue by reason, most first.
func deadLetters(queue string, letters []DeadLetter) *DeadLetters {
	m := map[string]int{}
	for _, l := range letters {
		r := l.Reason
		if r == "" {
			r = "unknown"
		}
		m[r]++
	}
	d := &DeadLetters{Queue: queue, Total: len(letters), ByReason: counts(m)}
	slices.SortStableFunc(d.ByReason, func(a, b Count) int { return cmp.Compare(b.Count, a.Count) })
	return d
}
