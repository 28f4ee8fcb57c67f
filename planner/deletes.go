package planner

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/retention"
)

// deleter holds what decideDeletes needs across the groups of one scope.
type deleter struct {
	inv      *Inventory
	res      *Result
	out      []Decision
	now      time.Time
	policies map[string]*config.Policy
	gs       *groups
	dups     map[int32]string
	explain  explainer
	buf      []retention.Snapshot // the group's snapshots that retention weighs
	keeps    bool                 // every keep decision in out, not only counted (decide)
}

// group is one (policy, volume) group of a scope's owned snapshots.
type group struct {
	groupKey
	rows []int32
	// orphan: the volume no longer exists.
	orphan bool
}

// decideDeletes appends a decision for each owned snapshot of the scope, group by group:
// keep (unless !keeps: see decide), protected or delete. Without keeps the groups are
// decided a part on each core (a plan of a million snapshots spent half a second here on
// one), each part into decisions and counts of its own, joined in the groups' order.
// With keeps, in one part: a dry run's million keeps are not built apart and then copied.
func decideDeletes(out []Decision, inv *Inventory, cfg *config.Config, now time.Time, gs *groups, res *Result, keeps bool) []Decision {
	policies := make(map[string]*config.Policy, len(cfg.Policies))
	for i := range cfg.Policies {
		policies[cfg.Policies[i].Name] = &cfg.Policies[i]
	}
	dups := duplicates(inv, gs)
	parts := 1
	if !keeps {
		parts = deleteParts(len(gs.keys))
	}
	ds := make([]deleter, parts)
	per := (len(gs.keys) + parts - 1) / max(1, parts)
	var wg sync.WaitGroup
	for n := range ds {
		d := &ds[n]
		*d = deleter{inv: inv, res: &Result{}, now: now, gs: gs, explain: explainer{}, keeps: keeps, policies: policies, dups: dups}
		if n == 0 {
			d.res, d.out = res, out
		}
		wg.Go(func() {
			for g := n * per; g < min((n+1)*per, len(gs.keys)); g++ {
				k := gs.keys[g]
				d.decideGroup(&group{groupKey: k, rows: gs.members(g),
					orphan: inv.Volumes != nil && k.volume != "" && !inv.Volumes[k.volume]})
			}
		})
	}
	wg.Wait()
	out = ds[0].out
	for _, d := range ds[1:] {
		out = append(out, d.out...)
		res.addDeletes(d.res)
	}
	return out
}

// deleteParts is how many parts decideDeletes splits groups into: one per core (two at
// least), of a thousand groups at least (a part costs a goroutine and an explainer).
func deleteParts(groups int) int {
	return max(1, min(max(2, runtime.GOMAXPROCS(0)), groups/1000))
}

// addDeletes adds the counts decideDeletes makes of a part to r.
func (r *Result) addDeletes(part *Result) {
	r.Orphans += part.Orphans
	r.Deletes += part.Deletes
	r.Kept += part.Kept
	r.Protected += part.Protected
	for pol, n := range part.UnknownPolicies {
		if r.UnknownPolicies == nil {
			r.UnknownPolicies = map[string]int{}
		}
		r.UnknownPolicies[pol] += n
	}
}

// decideGroup decides the snapshots of one group.
func (d *deleter) decideGroup(g *group) {
	if g.orphan {
		d.res.Orphans += len(g.rows)
	}
	p, known := d.policies[g.policy]
	switch {
	case g.volume == "" && known && adoptedGroup(d.inv.Snapshots, g.rows):
		// Adopted snapshots without a usable VolumeId (copies name vol-ffffffff) have no
		// volume to count them against: kept, and they block nothing.
		d.keepAll(g, reason.UnknownVolume)
		return
	case !known:
		if d.res.UnknownPolicies == nil {
			d.res.UnknownPolicies = map[string]int{}
		}
		d.res.UnknownPolicies[g.policy] += len(g.rows)
		d.keepAll(g, reason.UnknownPolicy)
		return
	}
	// Fail closed: anything unreadable in the group, or in the policy's scope when a
	// snapshot's volume is unknown, or an incomplete listing blocks every delete.
	blocked := !d.inv.SnapshotsComplete || d.gs.blockedPolicy[g.policy] || (g.volume == "" && !adoptedGroup(d.inv.Snapshots, g.rows))
	dupRows, unreadable := d.triage(g)
	blocked = blocked || unreadable
	for _, i := range dupRows {
		s := &d.inv.Snapshots[i]
		d.expire(g, s, blocked, reason.Duplicate, "a duplicate creation of job "+s.Job+"; "+d.dups[i]+" is kept")
	}
	if len(d.buf) > 0 {
		d.retain(g, p, blocked)
	}
}

func (d *deleter) keepAll(g *group, why string) {
	for _, i := range g.rows {
		d.emit(g, &d.inv.Snapshots[i], ActionKeep, why, "")
	}
}

// triage decides the group's snapshots that retention does not weigh (AWS Backup or DLM
// ones, unfinished ones), puts the others in d.buf and returns the duplicates apart. It
// reports whether a snapshot with an unreadable tag or start time blocks the group.
func (d *deleter) triage(g *group) (dupRows []int32, unreadable bool) {
	d.buf = d.buf[:0]
	for _, i := range g.rows {
		s := &d.inv.Snapshots[i]
		switch {
		case s.Protected:
			d.emit(g, s, ActionProtected, reason.Protected, "AWS Backup or DLM tag")
			continue
		case s.Bad != "" || s.Start.IsZero():
			unreadable = true
		case s.State != "completed":
			d.emit(g, s, ActionKeep, reason.NotCompleted, "")
			continue
		case d.dups[i] != "":
			dupRows = append(dupRows, i) // not counted: it goes
			continue
		}
		d.buf = append(d.buf, retention.Snapshot{ID: s.ID, Start: s.Start})
	}
	return dupRows, unreadable
}

// retain applies the policy's retention rules to the snapshots in d.buf.
func (d *deleter) retain(g *group, p *config.Policy, blocked bool) {
	snaps := groupSnapshotsByID(d.inv.Snapshots, g.rows)
	rules := retention.FromPolicy(*p)
	if g.orphan {
		rules = rules.Orphaned()
	}
	for _, r := range retention.Decide(d.buf, rules, d.now) {
		s := snaps.get(r.ID)
		if r.Keep {
			detail := ""
			if d.shows(ActionKeep, r.Reason) {
				detail = d.explain.of(rules, r)
			}
			d.emit(g, s, ActionKeep, r.Reason, detail)
			continue
		}
		d.expire(g, s, blocked, r.Reason, d.explain.of(rules, r))
	}
}

// snapshotsByID maps the IDs retention.Decide answers with back to a group's snapshots:
// by a map in a large group, by a scan in a small one.
type snapshotsByID struct {
	snaps []Snapshot
	rows  []int32
	m     map[string]*Snapshot
}

func groupSnapshotsByID(snaps []Snapshot, rows []int32) snapshotsByID {
	b := snapshotsByID{snaps: snaps, rows: rows}
	if len(rows) > 16 {
		b.m = make(map[string]*Snapshot, len(rows))
		for _, i := range rows {
			b.m[snaps[i].ID] = &snaps[i]
		}
	}
	return b
}

func (b snapshotsByID) get(id string) *Snapshot {
	if b.m != nil {
		return b.m[id]
	}
	for _, i := range b.rows {
		if b.snaps[i].ID == id {
			return &b.snaps[i]
		}
	}
	return nil
}

// expire decides a snapshot that is to go for why (a duplicate, or retention's expiry)
// with detail: deleted, unless its scope is blocked or something protects it.
func (d *deleter) expire(g *group, s *Snapshot, blocked bool, why, detail string) {
	dup := why == reason.Duplicate
	prot, protected := d.inv.Protections[s.ID]
	switch {
	case blocked || (protected && prot.Reason == reason.FailClosed):
		but := "its scope could not be read completely"
		if !blocked {
			but = prot.Detail
		}
		if dup {
			d.emit(g, s, ActionKeep, reason.FailClosed, detail+", but "+but)
		} else {
			d.emit(g, s, ActionKeep, reason.FailClosed, "expired ("+detail+"), but "+but)
		}
	case protected:
		d.emit(g, s, ActionProtected, prot.Reason, prot.Detail)
	default:
		d.out = append(d.out, Decision{Account: d.inv.Account, Region: d.inv.Region, Policy: s.Policy,
			Action: ActionDelete, Volume: s.Volume, Snapshot: s.ID, Key: job.DeleteKey(d.inv.Account, d.inv.Region, s.ID),
			Reason: why, Detail: detail, Orphan: g.orphan, Adopted: s.Adopted && !dup})
		d.res.Deletes++
	}
}

// emit adds a keep or protected decision and counts it.
func (d *deleter) emit(g *group, s *Snapshot, action, why, detail string) {
	if d.shows(action, why) {
		d.out = append(d.out, Decision{Account: d.inv.Account, Region: d.inv.Region, Policy: s.Policy,
			Action: action, Volume: s.Volume, Snapshot: s.ID, Reason: why, Detail: detail,
			Orphan: g.orphan, Adopted: s.Adopted})
	}
	switch action {
	case ActionKeep:
		d.res.Kept++
	case ActionProtected:
		d.res.Protected++
	}
}

// shows reports whether a decision of action for why is in the result: every one but a
// keep when the result holds no keeps (decide), and those keeps a plan warns of.
func (d *deleter) shows(action, why string) bool {
	return action != ActionKeep || d.keeps || why == retention.KeptFuture || why == retention.KeptUnknownTime
}

// adoptedGroup reports whether the group's snapshots are adopted ones.
func adoptedGroup(snaps []Snapshot, rows []int32) bool {
	return len(rows) > 0 && snaps[rows[0]].Adopted
}

// explainer caches retention's explanations: a scope has few distinct ones, and this step
// would otherwise format a string for each of up to millions of snapshots.
type explainer map[explainKey]string

type explainKey struct {
	rules  retention.Rules
	reason string
	kept   [10]string
}

func (e explainer) of(r retention.Rules, d retention.Decision) string {
	k := explainKey{rules: r, reason: d.Reason}
	if len(d.Rules) > len(k.kept) {
		return r.Explain(d)
	}
	copy(k.kept[:], d.Rules)
	if s, ok := e[k]; ok {
		return s
	}
	s := r.Explain(d)
	e[k] = s
	return s
}

// duplicates finds the owned snapshots that are duplicate creations of their job key: two
// workers created for one key (CreateSnapshot has no client token) and the worker that
// saw both could not remove one. The rule is the workers' (job.Keeper): the smallest set
// of the key none of whose snapshots failed is kept, and only once every snapshot of it
// is completed are the others removed. It returns each duplicate's row with the
// keeper's smallest id. A key's snapshots of one volume share its group, so only keys
// seen twice in a group are looked at across groups (an instance's set spans volumes).
func duplicates(inv *Inventory, gs *groups) map[int32]string {
	twice := keysSeenTwice(inv, gs)
	if twice == nil {
		return nil
	}
	byKey := map[string][]int32{}
	for i := range inv.Snapshots {
		if s := &inv.Snapshots[i]; s.Made && s.Owner == inv.Account && twice[s.Job] {
			byKey[s.Job] = append(byKey[s.Job], int32(i))
		}
	}
	dups := map[int32]string{}
	for _, rs := range byKey {
		made := make([]job.Made, len(rs))
		for n, i := range rs {
			s := &inv.Snapshots[i]
			made[n] = job.Made{ID: s.ID, Set: s.Set, Failed: s.State == "error"}
		}
		keep, ok := job.Keeper(made)
		if !ok {
			continue
		}
		keeper, completed := "", true
		for _, i := range rs {
			if s := &inv.Snapshots[i]; s.Set == keep {
				completed = completed && s.State == "completed"
				if keeper == "" || s.ID < keeper {
					keeper = s.ID
				}
			}
		}
		if !completed {
			continue
		}
		for _, i := range rs {
			if inv.Snapshots[i].Set != keep {
				dups[i] = keeper
			}
		}
	}
	return dups
}

// keysSeenTwice returns the job keys of this scope that two snapshots of one group were
// made for; nil when there is none.
func keysSeenTwice(inv *Inventory, gs *groups) map[string]bool {
	scope := inv.Account + "/" + inv.Region + "/"
	var twice map[string]bool
	var buf []string
	for g := range gs.keys {
		buf = buf[:0]
		for _, i := range gs.members(g) {
			if s := &inv.Snapshots[i]; s.Made && strings.HasPrefix(s.Job, scope) {
				buf = append(buf, s.Job)
			}
		}
		if len(buf) < 2 {
			continue
		}
		slices.Sort(buf)
		for n := 1; n < len(buf); n++ {
			if buf[n] == buf[n-1] {
				if twice == nil {
					twice = map[string]bool{}
				}
				twice[buf[n]] = true
			}
		}
	}
	return twice
}
