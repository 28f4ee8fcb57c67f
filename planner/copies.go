package planner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/retention"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// ActionCopy: a snapshot.copy job to a disaster-recovery destination.
const ActionCopy = "copy"

// copySource is a completed snapshot of a policy that copies, as a source scope's plan
// saw it: not a copy itself, and not deleted by this plan.
type copySource struct {
	account, region, policy, volume, id string
	start                               time.Time
}

// destKey is a destination account-region.
type destKey struct{ account, region string }

// copySources lists the snapshots of the scope that its policies copy somewhere.
func copySources(inv *Inventory, res *Result, cfg *config.Config) []copySource {
	copying := map[string]bool{}
	for _, p := range cfg.Policies {
		copying[p.Name] = len(p.Copy) > 0
	}
	deleted := map[string]bool{}
	for _, d := range res.Decisions {
		if d.Action == ActionDelete {
			deleted[d.Snapshot] = true
		}
	}
	var out []copySource
	for _, s := range inv.Snapshots {
		if s.Owner != inv.Account || s.Copy || !copying[s.Policy] || s.Adopted || s.State != "completed" ||
			s.Volume == "" || s.Bad != "" || s.Start.IsZero() || deleted[s.ID] {
			continue
		}
		out = append(out, copySource{account: inv.Account, region: inv.Region, policy: s.Policy, volume: s.Volume, id: s.ID, start: s.Start})
	}
	return out
}

// destinations returns every destination of the config for the planned accounts, each with
// the sources to copy there; a destination without sources is still listed: its copies
// are pruned.
func (p *Planner) destinations(results []scopeResult) map[destKey][]copySource {
	out := map[destKey][]copySource{}
	for _, pol := range p.Config.Policies {
		for _, c := range pol.Copy {
			for _, a := range p.Accounts {
				if k := (destKey{c.DestAccount(a), c.Region}); out[k] == nil {
					out[k] = []copySource{}
				}
			}
		}
	}
	for _, r := range results {
		for _, s := range r.res.sources {
			pol, _ := p.Config.Policy(s.policy)
			for _, c := range pol.Copy {
				k := destKey{c.DestAccount(s.account), c.Region}
				if k != (destKey{s.account, s.region}) {
					out[k] = append(out[k], s)
				}
			}
		}
	}
	return out
}

// planCopies plans every destination, Parallel at a time: one listing of its copies,
// copy jobs for the sources it lacks, and its own retention over the copies.
func (p *Planner) planCopies(ctx context.Context, log zerolog.Logger, results []scopeResult, now time.Time, run string) []scopeResult {
	dests := p.destinations(results)
	keys := slices.SortedFunc(maps.Keys(dests), func(a, b destKey) int {
		if a.account != b.account {
			return compare(a.account, b.account)
		}
		return compare(a.region, b.region)
	})
	out := make([]scopeResult, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, Parallel)
	for i, k := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i].res, out[i].enqueued, out[i].failures = p.planDestination(ctx, log, k, dests[k], now, run)
			out[i].res.account, out[i].res.region, out[i].res.destination = k.account, k.region, true
		})
	}
	wg.Wait()
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// planDestination plans one destination account-region.
func (p *Planner) planDestination(ctx context.Context, log zerolog.Logger, k destKey, sources []copySource, now time.Time, run string) (Result, int, []Failure) {
	sc := newScopeRun(log.With().Bool("destination", true).Logger(), k.account, k.region)
	if !slices.Contains(p.Accounts, k.account) {
		sc.fail(fmt.Errorf("copy destination %s/%s: account %s is not planned (not in accounts)", k.account, k.region, k.account))
		return Result{}, 0, sc.failures
	}
	client := p.EC2(k.account, k.region)
	copies, calls, err := listCopies(ctx, client, k.account)
	complete := err == nil
	if err != nil {
		sc.fail(fmt.Errorf("listing copies in %s/%s (no copies or deletes planned there): %w", k.account, k.region, err))
	}
	res := DecideCopies(k.account, k.region, sources, copies, complete, p.Config, now, nil)
	if res.Deletes > 0 {
		prot := p.classify(ctx, client, k.account, res.Decisions, sc.fail)
		res = DecideCopies(k.account, k.region, sources, copies, complete, p.Config, now, prot)
	}
	res.Listings = calls
	if res.Trip(complete, p.Config.DeleteFraction(), p.Force) && res.Breaker.Reason == BreakerFraction {
		sc.fail(fmt.Errorf("%s/%s (copies): %s", k.account, k.region, res.Breaker))
	}
	msgs := sc.messages(res.Decisions, run, now)
	sc.log.Info().Int("copies", res.SnapshotsSeen).Int("copy_jobs", res.Copies).Int("delete_jobs", res.Deletes).
		Int("listings", calls).Msg("planned copies")
	if p.DryRun {
		return res, 0, sc.failures
	}
	return res, p.send(ctx, sc, msgs), sc.failures
}

// listCopies lists the destination's copies (snapshots carrying snapfleet:source) that the
// account owns, in one paginated listing; it returns the calls made.
func listCopies(ctx context.Context, client EC2, account string) ([]Snapshot, int, error) {
	var out []Snapshot
	calls := 0
	pages := ec2.NewDescribeSnapshotsPaginator(client, &ec2.DescribeSnapshotsInput{
		OwnerIds:   []string{"self"},
		Filters:    []types.Filter{{Name: aws.String("tag-key"), Values: []string{tag.Source}}},
		MaxResults: aws.Int32(1000),
	})
	for pages.HasMorePages() {
		calls++
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, calls, fmt.Errorf("describing snapshots: %w", err)
		}
		for _, s := range page.Snapshots {
			if c := snapshotFrom(s); c.Copy {
				out = append(out, c.asCopy())
			}
		}
	}
	return out, calls, nil
}

// asCopy turns a listed copy into what the destination's retention weighs: grouped by
// its source volume and dated by its source's start time.
func (s Snapshot) asCopy() Snapshot {
	s.Copy, s.Job, s.Set, s.Made = false, "", "", false
	if s.Origin != nil && !s.Origin.Start.IsZero() {
		s.Start = s.Origin.Start
	}
	return s
}

// copyPolicies returns, for a destination, each policy that copies there with the copies'
// rules as its retain: the config the destination's retention runs under.
func copyPolicies(cfg *config.Config, account, region string) *config.Config {
	out := &config.Config{}
	for _, p := range cfg.Policies {
		for _, c := range p.Copy {
			if c.Region == region && (c.Account == account || c.Account == "") {
				out.Policies = append(out.Policies, config.Policy{Name: p.Name, Every: p.Every, Retain: c.Retain})
				break
			}
		}
	}
	return out
}

// DecideCopies plans one destination: a copy for each source without a copy there that
// the destination's retention would keep, and the destination's retention over its
// copies — grouped by source volume, with the floor, protections (prot) and breaker of a
// source scope. A copy of a policy that does not copy here is never touched. It reads
// nothing but its arguments.
func DecideCopies(account, region string, sources []copySource, copies []Snapshot, complete bool, cfg *config.Config, now time.Time, prot map[string]Protection) Result {
	dcfg := copyPolicies(cfg, account, region)
	inv := Inventory{Account: account, Region: region, Snapshots: copies, SnapshotsComplete: complete, Protections: prot}
	res := Result{}
	gs := groupSnapshots(inv, &res)
	res.Decisions = decideDeletes(nil, &inv, dcfg, now, gs, &res, true)
	if !complete {
		return res
	}
	have := map[string]bool{}
	for _, c := range copies {
		if c.Owner == account && c.State != "error" && c.Origin != nil {
			have[c.Origin.Snapshot] = true
		}
	}
	type group struct{ policy, volume string }
	pending := map[group][]copySource{}
	for _, s := range sources {
		if !have[s.id] {
			pending[group{s.policy, s.volume}] = append(pending[group{s.policy, s.volume}], s)
		}
	}
	for _, g := range slices.SortedFunc(maps.Keys(pending), func(a, b group) int {
		return compare(a.policy+"/"+a.volume, b.policy+"/"+b.volume)
	}) {
		p, ok := dcfg.Policy(g.policy)
		if !ok {
			continue
		}
		res.Decisions = append(res.Decisions, decideCopyGroup(account, region, p, pending[g], inv.Snapshots, gs.of(groupKey{g.policy, g.volume}), now, &res)...)
	}
	return res
}

// decideCopyGroup decides the sources of one (policy, source volume) that have no copy:
// retention over the group's copies and these sources together says which copies are
// worth making (a copy retention would delete at once is not made). The floor of the
// deletes above counts only copies that exist.
func decideCopyGroup(account, region string, p config.Policy, srcs []copySource, copies []Snapshot, rows []int32, now time.Time, res *Result) []Decision {
	var snaps []retention.Snapshot
	for _, i := range rows {
		if c := &copies[i]; c.State != "error" {
			snaps = append(snaps, retention.Snapshot{ID: c.ID, Start: c.Start})
		}
	}
	byID := map[string]copySource{}
	for _, s := range srcs {
		snaps = append(snaps, retention.Snapshot{ID: s.id, Start: s.start})
		byID[s.id] = s
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].id < srcs[j].id })
	var out []Decision
	for _, d := range retention.Decide(snaps, retention.FromPolicy(p), now) {
		s, ok := byID[d.ID]
		if !ok {
			continue
		}
		dec := Decision{Account: account, Region: region, Policy: p.Name, Volume: s.volume,
			SourceAccount: s.account, SourceRegion: s.region, SourceSnapshot: s.id,
			Detail: "of " + s.id + " from " + s.account + "/" + s.region}
		if d.Keep {
			dec.Action, dec.Reason, dec.Key = ActionCopy, reason.CopyDue, job.CopyKey(account, region, s.id)
			res.Copies++
		} else {
			dec.Action, dec.Reason = ActionSkip, reason.CopyNotKept
		}
		out = append(out, dec)
	}
	return out
}
