package planner

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
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
	// InstanceTags are the instance's tags the policy's tags_from_instance copies onto a
	// create's snapshots (job.InstanceTags: bounded).
	InstanceTags map[string]string `json:"instance_tags,omitempty"`
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
	// SourceAccount, SourceRegion and SourceSnapshot: the snapshot a copy decision copies.
	SourceAccount  string `json:"source_account,omitempty"`
	SourceRegion   string `json:"source_region,omitempty"`
	SourceSnapshot string `json:"source_snapshot,omitempty"`
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

// Snapshot is what the planner needs to know of one snapshot, read from its tags. A plan
// holds one for each snapshot of its account-region (a million, for 100,000 volumes):
// what only some snapshots have is behind a pointer, and the flags are packed at the end.
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
	Set string
	// Start is the StartTime; zero when missing.
	Start time.Time
	// State is the snapshot state (pending, completed, error, ...).
	State string
	// Bad names a snapfleet tag that could not be parsed; the snapshot's volume and
	// policy get no deletes.
	Bad string
	// Tier is the storage tier: standard or archive.
	Tier string
	// Origin holds a copy's snapfleet:source* tags; nil when it has none.
	Origin *Origin
	Made   bool
	// Protected: the snapshot carries an aws:backup:* or aws:dlm:* tag.
	Protected bool
	// Adopted: a legacy snapshot without snapfleet:policy that Policy adopts.
	Adopted bool
	// Copy: a disaster-recovery copy (it carries snapfleet:source): never a snapshot of
	// its volume at the source; its destination's plan weighs it (copies.go).
	Copy bool
}

// Origin is where a disaster-recovery copy came from: its snapfleet:source,
// snapfleet:source-region, snapfleet:source-account and snapfleet:source-time tags.
type Origin struct {
	Snapshot, Region, Account string
	Start                     time.Time
}

// origin returns s's Origin, made when it has none.
func (s *Snapshot) origin() *Origin {
	if s.Origin == nil {
		s.Origin = &Origin{}
	}
	return s.Origin
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
	// SharesUnchecked counts the deletes a CheckShares plan did not ask about (markShared).
	SharesUnchecked int
	// Copies and Archives count the copy and archive jobs; Listings the calls a
	// destination's listing of its copies made.
	Copies   int
	Archives int
	Listings int

	account, region string
	// destination: the result of a copy destination (copies.go), not a source scope.
	destination bool
	// sources are the scope's snapshots that its policies copy (copies.go).
	sources []copySource
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

// Decide plans one account and region: a create for each selected volume that has no
// snapshot of the policy in the current period, a delete for each owned, managed
// snapshot that retention expires; keep and skip decisions say why nothing happens to the
// rest. It reads nothing but its arguments.
func Decide(inv Inventory, cfg *config.Config, now time.Time) Result {
	return decide(inv, cfg, now, true)
}

// decide is Decide, with every keep decision in the result when keeps is set; else the
// keeps are only counted, but those a plan warns of (retention.KeptFuture,
// retention.KeptUnknownTime): a plan that is not a dry run and does not log each
// decision needs no more, and a million snapshots' keeps would take most of its memory.
//
// Without keeps, the creates and the deletes are decided at once, on two cores when there
// are: they read the inventory and the groups only, and count into different fields of
// the result. With keeps, one after the other into one slice: a dry run's million keeps
// are not built apart and then copied behind the creates.
func decide(inv Inventory, cfg *config.Config, now time.Time, keeps bool) Result {
	var res Result
	gs := groupSnapshots(inv, &res)
	if keeps {
		res.Decisions = decideCreates(make([]Decision, 0, len(inv.Instances)*2+len(inv.Snapshots)), inv, cfg, now, gs, &res)
		res.Decisions = decideDeletes(res.Decisions, &inv, cfg, now, gs, &res, keeps)
		return res
	}
	var deletes []Decision
	var wg sync.WaitGroup
	wg.Go(func() { deletes = decideDeletes(nil, &inv, cfg, now, gs, &res, keeps) })
	res.Decisions = decideCreates(make([]Decision, 0, len(inv.Instances)*2), inv, cfg, now, gs, &res)
	wg.Wait()
	res.Decisions = append(res.Decisions, deletes...)
	return res
}

type groupKey struct{ policy, volume string }

// groups holds the owned snapshots grouped by (policy, volume) in compressed rows: group
// g has key keys[g] and its members' indexes in Inventory.Snapshots are
// rows[start[g]:start[g+1]].
type groups struct {
	index map[groupKey]int32
	keys  []groupKey
	start []int32
	rows  []int32
	// blockedPolicy holds the policies with a snapshot whose volume is unknown.
	blockedPolicy map[string]bool
}

// groupSnapshots groups the owned snapshots, counting them and the foreign ones in res.
func groupSnapshots(inv Inventory, res *Result) *groups {
	gid := make([]int32, len(inv.Snapshots)) // snapshot i's group, -1 when ignored
	gs := &groups{index: make(map[groupKey]int32, len(inv.Snapshots)/8+1), blockedPolicy: map[string]bool{}}
	var counts []int32
	for i := range inv.Snapshots {
		s := &inv.Snapshots[i]
		if s.Owner != inv.Account {
			gid[i] = -1
			res.ForeignSnapshots++
			continue
		}
		if s.Copy {
			gid[i] = -1 // its destination's plan weighs it
			continue
		}
		res.SnapshotsSeen++
		if s.Volume == "" && !s.Adopted {
			// Which volume it belongs to is unknown: it could be the newest of any.
			gs.blockedPolicy[s.Policy] = true
		}
		k := groupKey{s.Policy, s.Volume}
		g, ok := gs.index[k]
		if !ok {
			g = int32(len(gs.keys))
			gs.index[k] = g
			gs.keys = append(gs.keys, k)
			counts = append(counts, 0)
		}
		counts[g]++
		gid[i] = g
	}
	gs.start = make([]int32, len(gs.keys)+1)
	for g, c := range counts {
		gs.start[g+1] = gs.start[g] + c
	}
	gs.rows = make([]int32, gs.start[len(gs.keys)])
	fill := append([]int32(nil), gs.start[:len(gs.keys)]...)
	for i, g := range gid {
		if g >= 0 {
			gs.rows[fill[g]] = int32(i)
			fill[g]++
		}
	}
	return gs
}

// members returns the rows of group g.
func (gs *groups) members(g int) []int32 { return gs.rows[gs.start[g]:gs.start[g+1]] }

// of returns the rows of the group with key k; nil when there is none.
func (gs *groups) of(k groupKey) []int32 {
	g, ok := gs.index[k]
	if !ok {
		return nil
	}
	return gs.members(int(g))
}

func decideCreates(out []Decision, inv Inventory, cfg *config.Config, now time.Time, gs *groups, res *Result) []Decision {
	selectedInstances := make(map[string]bool, len(inv.Instances))
	volumes := make(map[string]bool, len(inv.Instances))
	for pi := range cfg.Policies {
		p := &cfg.Policies[pi]
		cur := currentPeriod(p, now)
		if p.PerInstance() {
			out = decideInstances(out, inv, p, cur, gs, selectedInstances, volumes, res)
			continue
		}
		type candidate struct {
			instance, name, device string
			excluded               bool
			tags                   map[string]string
		}
		var cands []candidate
		vols := []string{}
		byVol := make(map[string]int, len(inv.Instances))
		keyOf := job.CreateKeys(inv.Account, inv.Region, p.Name, cur.start)
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
					cands = append(cands, candidate{instance: in.ID, name: in.Tags[tag.Name], device: a.Device, tags: instanceTags(p, in)})
					vols = append(vols, a.Volume)
				}
				cands[ci].excluded = cands[ci].excluded || excluded
			}
		}
		for ci, vol := range vols {
			c := &cands[ci]
			d := Decision{Account: inv.Account, Region: inv.Region, Policy: p.Name,
				Volume: vol, Instance: c.instance, InstanceName: c.name, Device: c.device, InstanceTags: c.tags}
			key := keyOf(vol)
			switch {
			case c.excluded:
				d.Action, d.Reason = ActionSkip, reason.Excluded
			case done(inv.Snapshots, gs.of(groupKey{p.Name, vol}), cur, key):
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
func decideInstances(out []Decision, inv Inventory, p *config.Policy, cur period, gs *groups,
	selected, volumes map[string]bool, res *Result) []Decision {
	for ii := range inv.Instances {
		in := &inv.Instances[ii]
		if !selects(p, in) {
			continue
		}
		selected[in.ID] = true
		d := Decision{Account: inv.Account, Region: inv.Region, Policy: p.Name, Instance: in.ID, InstanceTags: instanceTags(p, in)}
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
			rows := gs.of(groupKey{p.Name, a.Volume})
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

// instanceTags are the tags of in that p's tags_from_instance copies onto its snapshots,
// within the bounds a job message carries (job.InstanceTags; the rest are left out).
func instanceTags(p *config.Policy, in *Instance) map[string]string {
	if len(p.TagsFromInstance) == 0 {
		return nil
	}
	tags, _ := job.InstanceTags(in.Tags, p.TagsFromInstance)
	return tags
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
