package retention

import (
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
)

// Projection says whether retention keeps a snapshot now and will still keep it after a
// while, the policy going on meanwhile.
type Projection struct {
	// Now and Later: kept by the rules now, and at now+d.
	Now, Later bool
}

// Project decides the snapshots now and again at now+d, as they will stand then: the
// snapshots of today, plus, for a live volume (live), the one snapshot per period of
// every the policy will have made by then (period starts after now, aligned as periods
// are: start(now)+k*every). Snapshots with an unknown or future start time count for
// nothing, as in Decide. It returns the projection of each dated snapshot by id.
func Project(snaps []Snapshot, r Rules, now time.Time, periodStart time.Time, every time.Duration, live bool, d time.Duration) map[string]Projection {
	out := make(map[string]Projection, len(snaps))
	for _, dec := range Decide(snaps, r, now) {
		out[dec.ID] = Projection{Now: dec.Keep}
	}
	later := now.Add(d)
	future := append([]Snapshot(nil), snaps...)
	if live && every > 0 {
		for t := periodStart.Add(every); !t.After(later); t = t.Add(every) {
			future = append(future, Snapshot{ID: "\x00future " + t.Format(time.RFC3339), Start: t})
		}
	}
	for _, dec := range Decide(future, r, later) {
		if p, ok := out[dec.ID]; ok {
			p.Later = dec.Keep
			out[dec.ID] = p
		}
	}
	return out
}

// ArchiveMin is AWS's minimum billed time in the archive tier: a snapshot archived and
// deleted sooner costs as if it stayed this long.
const ArchiveMin = config.ArchiveMinDays * 24 * time.Hour

// ArchiveKeeps projects retention over one volume's snapshots of policy p: kept now and
// ArchiveMin later. Later holds only when both projections keep it — the policy going on
// making snapshots (gone false), and no new snapshots under the orphans' floor — so that
// neither a volume that goes on nor one that goes makes the archive cost more.
func ArchiveKeeps(snaps []Snapshot, p config.Policy, now time.Time, gone bool) map[string]Projection {
	rules := FromPolicy(p)
	every := time.Duration(p.Every)
	if gone {
		return Project(snaps, rules.Orphaned(), now, p.PeriodStart(now), every, false, ArchiveMin)
	}
	live := Project(snaps, rules, now, p.PeriodStart(now), every, true, ArchiveMin)
	orphan := Project(snaps, rules.Orphaned(), now, p.PeriodStart(now), every, false, ArchiveMin)
	for id, pr := range live {
		pr.Later = pr.Later && orphan[id].Later
		live[id] = pr
	}
	return live
}
