package planner

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/retention"
	"github.com/snapfleet/snapfleet/internal/tag"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// Actions of a decision.
const (
	ActionCreate = "create"
	ActionDelete = "delete"
	ActionKeep   = "keep"
	ActionSkip   = "skip"
	// ActionProtected: retention would expire the snapshot, but something outside
	// snapfleet protects it (an AMI, AWS Backup or DLM, a lock, a share).
	ActionProtected = "protected"
	// ActionHeld: retention expires the snapshot, but the circuit breaker held every
	// delete of its account-region.
	ActionHeld = "held"
)

// Decision is what the planner decided for one volume and policy (create, skip), for one
// instance of a policy with consistency: instance (create, skip: Volume is empty and
// Detail lists the volumes), or for one managed snapshot (delete, keep).
type Decision struct {
	Account  string `json:"account"`
	Region   string `json:"region"`
	Policy   string `json:"policy"`
	Action   string `json:"action"`
	Volume   string `json:"volume,omitempty"`
	Snapshot string `json:"snapshot,omitempty"`
	Instance string `json:"instance,omitempty"`
	Device   string `json:"device,omitempty"`
	// InstanceName is the instance's Name tag, which names a create's snapshot.
	InstanceName string `json:"instance_name,omitempty"`
	// Key is the job key of a create or delete.
	Key    string `json:"key,omitempty"`
	Reason string `json:"reason"`
	// Detail says it in words: for keep and delete, every retention rule that kept the
	// snapshot or that it is beyond; for protected, what protects it.
	Detail string `json:"detail,omitempty"`
	// Orphan: the snapshot's volume no longer exists.
	Orphan bool `json:"orphan,omitempty"`
	// Adopted: a legacy snapshot the policy adopts (no snapfleet:policy tag).
	Adopted bool `json:"adopted,omitempty"`
}

// Inventory is what the planner read of one account and region. Build it from the AWS
// listings (Plan does) or by hand (tests, benchmarks); Decide is a pure function of it.
type Inventory struct {
	Account string
	Region  string
	// Instances in the states of any policy. Nil when the listing failed: no creates.
	Instances []Instance
	// VolumeTags holds the tags of volumes that carry any of the policies' exclude tag
	// keys; volumes not in it have none of them.
	VolumeTags map[string]map[string]string
	// Snapshots carrying the snapfleet:policy tag, as listed (any owner: Decide filters).
	Snapshots []Snapshot
	// SnapshotsComplete says the snapshot listing finished without error. Deletes are
	// planned only when it is true (fail closed).
	SnapshotsComplete bool
	// Volumes holds every volume that exists in the account-region; nil when not listed,
	// and then no snapshot counts as an orphan (the live rules are the stricter ones).
	Volumes map[string]bool
	// Protections are what the deletion classifier found, by snapshot id: an AMI, a
	// lock, a share — or reason.FailClosed when it could not tell.
	Protections map[string]Protection
}

// Protection is why a snapshot that retention expires must not be deleted.
type Protection struct {
	Reason string
	Detail string
}

// Instance is one EC2 instance and its EBS volumes.
type Instance struct {
	ID    string
	State string
	Tags  map[string]string
	// Root is the root device name (RootDeviceName), for exclude_boot.
	Root    string
	Volumes []Attachment
}

// Attachment is an EBS volume in an instance's block device mappings.
type Attachment struct {
	Volume string
	Device string
}

// Snapshot is what the planner needs to know of one snapshot, read from its tags.
type Snapshot struct {
	ID    string
	Owner string
	// Policy is the snapfleet:policy tag.
	Policy string
	// Volume is the snapfleet:volume tag, or the snapshot's VolumeId without it; empty
	// when the tag is present but unparseable.
	Volume string
	// Job is the snapfleet:job tag.
	Job string
	// Set is the creation of Job the snapshot belongs to and Made whether a create of Job
	// made it (job.SetOf): only those are kept or removed as duplicates.
	Set  string
	Made bool
	// Start is the StartTime; zero when missing.
	Start time.Time
	// State is the snapshot state (pending, completed, error, ...).
	State string
	// Protected: the snapshot carries an aws:backup:* or aws:dlm:* tag.
	Protected bool
	// Adopted: a legacy snapshot without snapfleet:policy that Policy adopts.
	Adopted bool
	// Bad names a snapfleet tag that could not be parsed; the snapshot's volume and
	// policy get no deletes.
	Bad string
}

// Result is the outcome of Decide for one account and region.
type Result struct {
	Decisions []Decision
	// Instances selected by at least one policy.
	Instances int
	// Volumes attached to selected instances (excluded ones too), each counted once.
	Volumes int
	// SnapshotsSeen counts managed snapshots owned by the account.
	SnapshotsSeen int
	// ForeignSnapshots counts listed snapshots of other owners, ignored.
	ForeignSnapshots int
	// UnknownPolicies counts this scope's snapshots per policy not in the config.
	UnknownPolicies map[string]int
	// Creates and Deletes count the decisions of those actions.
	Creates int
	Deletes int
	// Kept, Protected and Held count the snapshot decisions of those actions.
	Kept      int
	Protected int
	Held      int
	// Orphans counts owned, managed (or adopted) snapshots whose volume is gone.
	Orphans int
	// Breaker is set when the circuit breaker held the deletes (see Trip).
	Breaker *Breaker

	account, region string
}

// Breaker says why the deletes of an account-region were not enqueued.
type Breaker struct {
	// Reason is "max_delete_fraction" or "incomplete_listing".
	Reason   string  `json:"reason"`
	Deletes  int     `json:"deletes"`
	Managed  int     `json:"managed"`
	Fraction float64 `json:"max_delete_fraction"`
}

// Breaker reasons.
const (
	BreakerFraction   = "max_delete_fraction"
	BreakerIncomplete = "incomplete_listing"
)

func (b *Breaker) String() string {
	if b.Reason == BreakerIncomplete {
		return "circuit breaker: the snapshot listing was incomplete; no deletes planned (--force does not override this)"
	}
	return fmt.Sprintf("circuit breaker: would delete %d of %d managed snapshots (more than max_delete_fraction %g); no deletes enqueued (--force overrides)",
		b.Deletes, b.Managed, b.Fraction)
}

// Trip applies the circuit breaker to a result: when the listing was incomplete, or the
// result deletes more than fraction of the managed snapshots it saw and force is off,
// every delete becomes ActionHeld and Breaker says why. It reports whether it tripped.
func (r *Result) Trip(complete bool, fraction float64, force bool) bool {
	if !complete {
		r.Breaker = &Breaker{Reason: BreakerIncomplete, Managed: r.SnapshotsSeen, Fraction: fraction}
		return true
	}
	if force || r.Deletes == 0 || float64(r.Deletes) <= fraction*float64(r.SnapshotsSeen) {
		return false
	}
	r.Breaker = &Breaker{Reason: BreakerFraction, Deletes: r.Deletes, Managed: r.SnapshotsSeen, Fraction: fraction}
	for i := range r.Decisions {
		d := &r.Decisions[i]
		if d.Action == ActionDelete {
			d.Action, d.Reason, d.Key = ActionHeld, reason.CircuitBreaker, ""
			r.Held++
		}
	}
	r.Deletes = 0
	return true
}

type groupKey struct{ policy, volume string }

// Decide plans one account and region: a create for each selected volume that has no
// snapshot of the policy in the current period, a delete for each owned, managed
// snapshot that retention expires; keep and skip decisions say why nothing happens to the
// rest. It reads nothing but its arguments.
func Decide(inv Inventory, cfg *config.Config, now time.Time) Result {
	res := Result{Decisions: make([]Decision, 0, len(inv.Snapshots)+len(inv.Instances)*2)}
	policies := make(map[string]*config.Policy, len(cfg.Policies))
	for i := range cfg.Policies {
		policies[cfg.Policies[i].Name] = &cfg.Policies[i]
	}

	// Group the owned, managed snapshots by (policy, volume) in compressed rows: gid[i]
	// is snapshot i's group (-1 when ignored), rows[start[g]:start[g+1]] its members.
	gid := make([]int32, len(inv.Snapshots))
	index := make(map[groupKey]int32, len(inv.Snapshots)/8+1)
	var keys []groupKey
	var counts []int32
	blockedPolicy := map[string]bool{}
	for i := range inv.Snapshots {
		s := &inv.Snapshots[i]
		if s.Owner != inv.Account {
			gid[i] = -1
			res.ForeignSnapshots++
			continue
		}
		res.SnapshotsSeen++
		if s.Volume == "" && !s.Adopted {
			// Which volume it belongs to is unknown: it could be the newest of any.
			blockedPolicy[s.Policy] = true
		}
		k := groupKey{s.Policy, s.Volume}
		g, ok := index[k]
		if !ok {
			g = int32(len(keys))
			index[k] = g
			keys = append(keys, k)
			counts = append(counts, 0)
		}
		counts[g]++
		gid[i] = g
	}
	start := make([]int32, len(keys)+1)
	for g, c := range counts {
		start[g+1] = start[g] + c
	}
	rows := make([]int32, start[len(keys)])
	fill := append([]int32(nil), start[:len(keys)]...)
	for i, g := range gid {
		if g >= 0 {
			rows[fill[g]] = int32(i)
			fill[g]++
		}
	}
	members := func(k groupKey) []int32 {
		g, ok := index[k]
		if !ok {
			return nil
		}
		return rows[start[g]:start[g+1]]
	}

	res.Decisions = decideCreates(res.Decisions, inv, cfg, now, members, &res)
	dups := duplicates(inv, start, rows)
	res.Decisions = decideDeletes(res.Decisions, inv, policies, now, keys, start, rows, blockedPolicy, dups, &res)
	return res
}

func decideCreates(out []Decision, inv Inventory, cfg *config.Config, now time.Time, members func(groupKey) []int32, res *Result) []Decision {
	selectedInstances := map[string]bool{}
	volumes := map[string]bool{}
	for pi := range cfg.Policies {
		p := &cfg.Policies[pi]
		cur := currentPeriod(p, now)
		if p.PerInstance() {
			out = decideInstances(out, inv, p, cur, members, selectedInstances, volumes, res)
			continue
		}
		type candidate struct {
			instance, name, device string
			excluded               bool
		}
		var cands []candidate
		vols := []string{}
		byVol := map[string]int{}
		for ii := range inv.Instances {
			in := &inv.Instances[ii]
			if !selects(p, in) {
				continue
			}
			selectedInstances[in.ID] = true
			instExcluded := p.Select.Excludes(in.Tags)
			for _, a := range in.Volumes {
				volumes[a.Volume] = true
				excluded := instExcluded || p.Select.Excludes(inv.VolumeTags[a.Volume])
				ci, ok := byVol[a.Volume]
				if !ok {
					// A multi-attached volume is snapshotted once, named after its first instance.
					ci = len(cands)
					byVol[a.Volume] = ci
					cands = append(cands, candidate{instance: in.ID, name: in.Tags[tag.Name], device: a.Device})
					vols = append(vols, a.Volume)
				}
				cands[ci].excluded = cands[ci].excluded || excluded
			}
		}
		for ci, vol := range vols {
			c := &cands[ci]
			d := Decision{Account: inv.Account, Region: inv.Region, Policy: p.Name,
				Volume: vol, Instance: c.instance, InstanceName: c.name, Device: c.device}
			key := job.CreateKey(inv.Account, inv.Region, vol, p.Name, cur.start)
			switch {
			case c.excluded:
				d.Action, d.Reason = ActionSkip, reason.Excluded
			case done(inv.Snapshots, members(groupKey{p.Name, vol}), cur, key):
				d.Action, d.Reason = ActionSkip, reason.Done
			default:
				d.Action, d.Reason, d.Key = ActionCreate, reason.Due, key
				res.Creates++
			}
			out = append(out, d)
		}
	}
	res.Instances = len(selectedInstances)
	res.Volumes = len(volumes)
	return out
}

// decideInstances plans a policy with consistency: instance: one create per selected
// instance that has a volume to snapshot without a snapshot of this period, skips for
// excluded volumes and instances and for instances already done. An instance is done when
// every volume it would snapshot has a snapshot of the period, or when any of them carries
// the instance's job key (a volume attached later waits for the next period: CreateSnapshots
// cannot be repeated for one volume under the same key).
func decideInstances(out []Decision, inv Inventory, p *config.Policy, cur period, members func(groupKey) []int32,
	selected, volumes map[string]bool, res *Result) []Decision {
	for ii := range inv.Instances {
		in := &inv.Instances[ii]
		if !selects(p, in) {
			continue
		}
		selected[in.ID] = true
		d := Decision{Account: inv.Account, Region: inv.Region, Policy: p.Name, Instance: in.ID}
		if p.Select.Excludes(in.Tags) {
			for _, a := range in.Volumes {
				volumes[a.Volume] = true
			}
			d.Action, d.Reason = ActionSkip, reason.Excluded
			out = append(out, d)
			continue
		}
		key := job.CreateKey(inv.Account, inv.Region, in.ID, p.Name, cur.start)
		var vols []string
		allDone, keyed := true, false
		for _, a := range in.Volumes {
			volumes[a.Volume] = true
			v := Decision{Account: inv.Account, Region: inv.Region, Policy: p.Name, Instance: in.ID, Volume: a.Volume, Device: a.Device}
			if reason := volumeSkip(p, in, a, inv.VolumeTags); reason != "" {
				v.Action, v.Reason = ActionSkip, reason
				out = append(out, v)
				continue
			}
			vols = append(vols, a.Volume)
			rows := members(groupKey{p.Name, a.Volume})
			allDone = allDone && done(inv.Snapshots, rows, cur, key)
			keyed = keyed || carries(inv.Snapshots, rows, key)
		}
		if len(vols) == 0 {
			continue
		}
		d.Detail = "volumes " + strings.Join(vols, " ")
		if allDone || keyed {
			d.Action, d.Reason = ActionSkip, reason.Done
		} else {
			d.Action, d.Reason, d.Key = ActionCreate, reason.Due, key
			res.Creates++
		}
		out = append(out, d)
	}
	return out
}

// volumeSkip says why an instance snapshot of p leaves the volume out: an exclude tag on
// the volume, or exclude_boot on its root volume; "" when it is in.
func volumeSkip(p *config.Policy, in *Instance, a Attachment, volumeTags map[string]map[string]string) string {
	switch {
	case p.Select.Excludes(volumeTags[a.Volume]):
		return reason.Excluded
	case p.ExcludeBoot && in.Root != "" && a.Device == in.Root:
		return reason.BootExcluded
	}
	return ""
}

// selects reports whether p selects the instance: its state is one of the policy's and
// every instance tag matches.
func selects(p *config.Policy, in *Instance) bool {
	ok := false
	for _, s := range p.Select.InstanceStates {
		if s == in.State {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for k, v := range p.Select.InstanceTags {
		if got, has := in.Tags[k]; !has || got != v {
			return false
		}
	}
	return true
}

// clockSkew is how far after the planner's clock a snapshot's StartTime may be and still
// count as the current period's snapshot: AWS's own bound on clock skew (it refuses SigV4
// requests signed more than 5 minutes off), so a later StartTime is a wrong date, not a
// fast clock.
const clockSkew = 5 * time.Minute

// period is the window in which a snapshot's StartTime makes it the current period's:
// [start, until), until being the period's end or now plus clockSkew, whichever is first.
type period struct{ start, until time.Time }

func currentPeriod(p *config.Policy, now time.Time) period {
	start := p.PeriodStart(now)
	until := now.Add(clockSkew)
	if end := start.Add(time.Duration(p.Every)); p.Every > 0 && end.Before(until) {
		until = end
	}
	return period{start: start, until: until}
}

func (w period) has(t time.Time) bool { return !t.IsZero() && !t.Before(w.start) && t.Before(w.until) }

// done reports whether the group holds a snapshot of this period: one dated in the
// period (and not in the future beyond clockSkew: a future-dated snapshot, which
// retention counts for nothing, does not hold back the period's create), or carrying the
// period's job key; a failed snapshot does not count.
func done(snaps []Snapshot, rows []int32, w period, key string) bool {
	for _, i := range rows {
		s := &snaps[i]
		if s.State == "error" {
			continue
		}
		if s.Job == key || w.has(s.Start) {
			return true
		}
	}
	return false
}

// carries reports whether a usable snapshot of the group carries the job key.
func carries(snaps []Snapshot, rows []int32, key string) bool {
	for _, i := range rows {
		if s := &snaps[i]; s.State != "error" && s.Job == key {
			return true
		}
	}
	return false
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

func decideDeletes(out []Decision, inv Inventory, policies map[string]*config.Policy, now time.Time,
	keys []groupKey, start, rows []int32, blockedPolicy map[string]bool, dups map[int32]string, res *Result) []Decision {
	var buf []retention.Snapshot
	explain := explainer{}
	for g, k := range keys {
		rs := rows[start[g]:start[g+1]]
		orphan := inv.Volumes != nil && k.volume != "" && !inv.Volumes[k.volume]
		if orphan {
			res.Orphans += len(rs)
		}
		emit := func(s *Snapshot, action, reason, detail string) {
			out = append(out, Decision{Account: inv.Account, Region: inv.Region, Policy: s.Policy,
				Action: action, Volume: s.Volume, Snapshot: s.ID, Reason: reason, Detail: detail,
				Orphan: orphan, Adopted: s.Adopted})
			switch action {
			case ActionKeep:
				res.Kept++
			case ActionProtected:
				res.Protected++
			}
		}
		keep := func(s *Snapshot, reason string) { emit(s, ActionKeep, reason, "") }
		p, known := policies[k.policy]
		if k.volume == "" && known && len(rs) > 0 && inv.Snapshots[rs[0]].Adopted {
			// Adopted snapshots without a usable VolumeId (copies name vol-ffffffff) have no
			// volume to count them against: kept, and they block nothing.
			for _, i := range rs {
				keep(&inv.Snapshots[i], reason.UnknownVolume)
			}
			continue
		}
		if !known {
			if res.UnknownPolicies == nil {
				res.UnknownPolicies = map[string]int{}
			}
			res.UnknownPolicies[k.policy] += len(rs)
			for _, i := range rs {
				keep(&inv.Snapshots[i], reason.UnknownPolicy)
			}
			continue
		}
		// Fail closed: anything unreadable in the group, or in the policy's scope when a
		// snapshot's volume is unknown, or an incomplete listing blocks every delete.
		blocked := !inv.SnapshotsComplete || blockedPolicy[k.policy] || (k.volume == "" && !adoptedGroup(inv.Snapshots, rs))
		buf = buf[:0]
		var dupRows []int32
		for _, i := range rs {
			s := &inv.Snapshots[i]
			switch {
			case s.Protected:
				emit(s, ActionProtected, reason.Protected, "AWS Backup or DLM tag")
				continue
			case s.Bad != "" || s.Start.IsZero():
				blocked = true
			case s.State != "completed":
				keep(s, reason.NotCompleted)
				continue
			case dups[i] != "":
				dupRows = append(dupRows, i) // not counted: it goes
				continue
			}
			buf = append(buf, retention.Snapshot{ID: s.ID, Start: s.Start})
		}
		for _, i := range dupRows {
			s := &inv.Snapshots[i]
			detail := "a duplicate creation of job " + s.Job + "; " + dups[i] + " is kept"
			prot, protected := inv.Protections[s.ID]
			switch {
			case blocked:
				emit(s, ActionKeep, reason.FailClosed, detail+", but its scope could not be read completely")
			case protected && prot.Reason == reason.FailClosed:
				emit(s, ActionKeep, reason.FailClosed, detail+", but "+prot.Detail)
			case protected:
				emit(s, ActionProtected, prot.Reason, prot.Detail)
			default:
				out = append(out, Decision{Account: inv.Account, Region: inv.Region, Policy: s.Policy,
					Action: ActionDelete, Volume: s.Volume, Snapshot: s.ID, Key: job.DeleteKey(inv.Account, inv.Region, s.ID),
					Reason: reason.Duplicate, Detail: detail, Orphan: orphan})
				res.Deletes++
			}
		}
		if len(buf) == 0 {
			continue
		}
		// retention.Decide answers by ID; map the IDs back to the group's snapshots.
		var byID map[string]*Snapshot
		if len(rs) > 16 {
			byID = make(map[string]*Snapshot, len(rs))
			for _, i := range rs {
				byID[inv.Snapshots[i].ID] = &inv.Snapshots[i]
			}
		}
		lookup := func(id string) *Snapshot {
			if byID != nil {
				return byID[id]
			}
			for _, i := range rs {
				if inv.Snapshots[i].ID == id {
					return &inv.Snapshots[i]
				}
			}
			return nil
		}
		rules := retention.FromPolicy(*p)
		if orphan {
			rules = rules.Orphaned()
		}
		for _, d := range retention.Decide(buf, rules, now) {
			s := lookup(d.ID)
			prot, protected := inv.Protections[s.ID]
			switch {
			case d.Keep:
				emit(s, ActionKeep, d.Reason, explain.of(rules, d))
			case blocked:
				emit(s, ActionKeep, reason.FailClosed, "expired ("+explain.of(rules, d)+"), but its scope could not be read completely")
			case protected && prot.Reason == reason.FailClosed:
				emit(s, ActionKeep, reason.FailClosed, "expired ("+explain.of(rules, d)+"), but "+prot.Detail)
			case protected:
				emit(s, ActionProtected, prot.Reason, prot.Detail)
			default:
				out = append(out, Decision{Account: inv.Account, Region: inv.Region, Policy: s.Policy,
					Action: ActionDelete, Volume: s.Volume, Snapshot: s.ID,
					Key: job.DeleteKey(inv.Account, inv.Region, s.ID), Reason: d.Reason, Detail: explain.of(rules, d),
					Orphan: orphan, Adopted: s.Adopted})
				res.Deletes++
			}
		}
	}
	return out
}

// adoptedGroup reports whether the group's snapshots are adopted ones.
func adoptedGroup(snaps []Snapshot, rows []int32) bool {
	return len(rows) > 0 && snaps[rows[0]].Adopted
}

// duplicates finds the owned snapshots that are duplicate creations of their job key: two
// workers created for one key (CreateSnapshot has no client token) and the worker that
// saw both could not remove one. The rule is the workers' (job.Keeper): the smallest set
// of the key none of whose snapshots failed is kept, and only once every snapshot of it
// is completed are the others removed. It returns each duplicate's row with the
// keeper's smallest id. A key's snapshots of one volume share its group, so only keys
// seen twice in a group are looked at across groups (an instance's set spans volumes).
func duplicates(inv Inventory, start, rows []int32) map[int32]string {
	scope := inv.Account + "/" + inv.Region + "/"
	var twice map[string]bool
	var buf []string
	for g := 0; g+1 < len(start); g++ {
		buf = buf[:0]
		for _, i := range rows[start[g]:start[g+1]] {
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
