package planner

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/retention"
)

// ActionArchive: a snapshot.archive job (ModifySnapshotTier to archive). A snapshot old
// enough to archive that is not archived gets an ActionSkip decision saying why.
const ActionArchive = "archive"

// MaxArchivedPerVolume is AWS's limit of archived snapshots per volume.
const MaxArchivedPerVolume = 25

// planArchives adds the archive decisions of a source scope to res: candidates first, the
// deletion classifier (AMIs, locks) asked about them, then decided again.
func (p *Planner) planArchives(ctx context.Context, client EC2, sc *scopeRun, inv *Inventory, res *Result, now time.Time) {
	ds := DecideArchives(inv, p.Config, now, nil)
	var asked []Decision
	for _, d := range ds {
		if d.Action == ActionArchive {
			asked = append(asked, Decision{Action: ActionDelete, Snapshot: d.Snapshot})
		}
	}
	if len(asked) == 0 {
		res.Decisions = append(res.Decisions, ds...)
		return
	}
	ds = DecideArchives(inv, p.Config, now, p.classify(ctx, client, sc.account, asked, sc.fail))
	for _, d := range ds {
		if d.Action == ActionArchive {
			res.Archives++
		}
	}
	res.Decisions = append(res.Decisions, ds...)
}

// DecideArchives decides, for the policies with archive:, each kept snapshot older than
// archive.after that is not archived yet: archive it when retention keeps it now and
// ArchiveMin later (the policy making its snapshots meanwhile, and again as if the
// volume were gone), unless it is the newest of its volume, prot protects it (an AMI, a
// lock; the worker checks shares), or the volume has MaxArchivedPerVolume archived.
// Oldest first, so the limit goes to the snapshots kept longest. It reads nothing but
// its arguments.
func DecideArchives(inv *Inventory, cfg *config.Config, now time.Time, prot map[string]Protection) []Decision {
	groups := map[groupKey][]*Snapshot{}
	for i := range inv.Snapshots {
		s := &inv.Snapshots[i]
		pol, ok := cfg.Policy(s.Policy)
		if !ok || pol.Archive == nil || s.Owner != inv.Account || s.Copy || s.Volume == "" || s.Protected ||
			s.State != "completed" || s.Bad != "" || s.Start.IsZero() {
			continue
		}
		k := groupKey{s.Policy, s.Volume}
		groups[k] = append(groups[k], s)
	}
	keys := make([]groupKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].policy < keys[j].policy || (keys[i].policy == keys[j].policy && keys[i].volume < keys[j].volume)
	})
	var out []Decision
	for _, k := range keys {
		pol, _ := cfg.Policy(k.policy)
		gone := inv.Volumes != nil && !inv.Volumes[k.volume]
		out = append(out, archiveGroup(inv, pol, groups[k], gone, now, prot)...)
	}
	return out
}

// archiveGroup decides the archive candidates of one (policy, volume) group.
func archiveGroup(inv *Inventory, p config.Policy, group []*Snapshot, gone bool, now time.Time, prot map[string]Protection) []Decision {
	snaps := make([]retention.Snapshot, len(group))
	for i, s := range group {
		snaps[i] = retention.Snapshot{ID: s.ID, Start: s.Start}
	}
	keep := retention.ArchiveKeeps(snaps, p, now, gone)
	sort.Slice(group, func(i, j int) bool { return group[i].Start.Before(group[j].Start) })
	newest := group[len(group)-1].ID
	archived := 0
	for _, s := range group {
		if s.Tier == "archive" {
			archived++
		}
	}
	after := time.Duration(p.Archive.After)
	var out []Decision
	for _, s := range group {
		pr := keep[s.ID]
		if s.Tier == "archive" || now.Sub(s.Start) < after || !pr.Now {
			continue
		}
		d := Decision{Account: inv.Account, Region: inv.Region, Policy: p.Name, Volume: s.Volume, Snapshot: s.ID, Action: ActionSkip}
		pt, protected := prot[s.ID]
		switch {
		case s.ID == newest:
			d.Reason, d.Detail = reason.Newest, "not archived: the newest snapshot of its volume"
		case !pr.Later:
			d.Reason, d.Detail = reason.ArchiveCostsMore, fmt.Sprintf("not archived: retention deletes it within %d days, the archive tier's minimum billed time", config.ArchiveMinDays)
		case protected:
			d.Reason, d.Detail = pt.Reason, "not archived: "+pt.Detail
		case archived >= MaxArchivedPerVolume:
			d.Reason, d.Detail = reason.ArchiveLimit, fmt.Sprintf("not archived: the volume has %d archived snapshots (AWS's limit)", MaxArchivedPerVolume)
		default:
			archived++
			d.Action, d.Reason, d.Key = ActionArchive, reason.Archive, job.ArchiveKey(inv.Account, inv.Region, s.ID)
			d.Detail = fmt.Sprintf("older than archive.after %s and kept %d days from now", p.Archive.After, config.ArchiveMinDays)
		}
		out = append(out, d)
	}
	return out
}
