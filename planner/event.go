package planner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// ErrEventScope is wrapped when an event names an account the config does not reach:
// bad input, never planned.
var ErrEventScope = errors.New("event outside the configured accounts")

// PlanEvent plans the snapshots an event asks for, in the events policy (config
// EventPolicy): for an EC2 state change to stopping or stopped, every volume of the
// instance when it carries the opt-in tag (events.opt_in_tag); for a BackupNow request,
// every volume of the instances its selector picks in its accounts and regions (default:
// p.Accounts and p.Regions). Each create job's key names the event (job.EventKey), so the
// event delivered twice makes one snapshot per volume; a volume that already has the
// event's snapshot is not enqueued again. Exclude tags of the policy apply. Nothing is
// deleted. p.Accounts are the accounts the caller may reach: an event naming another one
// is refused with ErrEventScope.
func (p *Planner) PlanEvent(ctx context.Context, ev event.Event) (Summary, error) {
	if p.Config == nil || p.EC2 == nil || (!p.DryRun && p.Queue == nil) {
		return Summary{}, errors.New("planning an event: no config, EC2 client factory or queue")
	}
	now, run := p.clock()
	log := p.Log.With().Str("run", run).Str("event", ev.ID).Str("detail_type", ev.DetailType).Logger()
	sum := Summary{RunID: run, Failures: []Failure{}, Warnings: []string{}, Scopes: []Scope{}, DryRun: p.DryRun, Event: &ev}

	var accounts, regions []string
	var tgt eventTarget
	switch ev.Kind {
	case event.KindStateChange:
		accounts, regions = []string{ev.Account}, []string{ev.Region}
		tgt = eventTarget{instances: []string{ev.Instance}, want: p.Config.Events.OptIn()}
		if !event.SnapshotStates[ev.State] {
			msg := fmt.Sprintf("instance %s is %s: only stopping and stopped make snapshots", ev.Instance, ev.State)
			log.Info().Str("instance", ev.Instance).Str("state", ev.State).Msg(msg)
			sum.Warnings = append(sum.Warnings, msg)
			return sum, nil
		}
	case event.KindBackupNow:
		if ev.Selector == nil {
			return sum, fmt.Errorf("planning event %s: BackupNow without a selector", ev.ID)
		}
		accounts, regions = ev.Selector.Accounts, ev.Selector.Regions
		tgt = eventTarget{instances: ev.Selector.Instances, want: ev.Selector.Tags}
		if len(accounts) == 0 {
			accounts = p.Accounts
		}
		if len(regions) == 0 {
			regions = p.Regions
		}
	default:
		return sum, fmt.Errorf("planning event %s: unknown kind %q", ev.ID, ev.Kind)
	}
	for _, a := range accounts {
		if !slices.Contains(p.Accounts, a) {
			return sum, fmt.Errorf("event %s names account %s: %w (%v)", ev.ID, a, ErrEventScope, p.Accounts)
		}
	}
	sum.Accounts, sum.Regions = len(accounts), len(regions)
	for _, account := range accounts {
		for _, region := range regions {
			sc, decisions, enqueued, failures := p.planEventScope(ctx, log, ev, account, region, tgt, now, run)
			sum.Instances += sc.instances
			sum.Volumes += sc.volumes
			sum.SnapshotJobs += sc.Creates
			sum.Enqueued += enqueued
			sum.Failures = append(sum.Failures, failures...)
			sum.Scopes = append(sum.Scopes, sc.Scope)
			if p.DryRun {
				sum.Decisions = append(sum.Decisions, decisions...)
			}
		}
	}
	sum.Errors = len(sum.Failures)
	sort.Slice(sum.Scopes, func(i, j int) bool {
		a, b := sum.Scopes[i], sum.Scopes[j]
		return a.Account < b.Account || (a.Account == b.Account && a.Region < b.Region)
	})
	SortDecisions(sum.Decisions)
	log.Info().Int("instances", sum.Instances).Int("volumes", sum.Volumes).Int("snapshot_jobs", sum.SnapshotJobs).
		Int("enqueued", sum.Enqueued).Int("errors", sum.Errors).Bool("dry_run", p.DryRun).Msg("event plan done")
	return sum, ctx.Err()
}

type eventScope struct {
	Scope
	instances, volumes int
}

// eventTarget is what an event asks to snapshot in an account-region: the instances it
// names (none: any) that carry the wanted tags.
type eventTarget struct {
	instances []string
	want      map[string]string
}

// planEventScope plans an event in one account and region, as planScope plans a schedule:
// list (listEvent), decide (decideEvent, then done for a second delivery), send.
func (p *Planner) planEventScope(ctx context.Context, log zerolog.Logger, ev event.Event, account, region string,
	tgt eventTarget, now time.Time, run string) (eventScope, []Decision, int, []Failure) {
	sc := newScopeRun(log, account, region)
	res := eventScope{Scope: Scope{Account: account, Region: region}}
	client := p.EC2(account, region)
	pol := p.Config.EventPolicy()

	found, volTags, err := listEvent(ctx, client, tgt, &pol)
	if class, _ := cloud.Classify(err); class == cloud.NotFound && len(tgt.instances) > 0 {
		// Terminated and gone: nothing left to snapshot.
		sc.log.Warn().Err(err).Strs("instances", tgt.instances).Msg("the event's instance does not exist")
		return res, nil, 0, nil
	}
	if err != nil {
		sc.fail(fmt.Errorf("listing the event's instances and volumes in %s/%s (no snapshots): %w", account, region, err))
		return res, nil, 0, sc.failures
	}
	decisions := decideEvent(found, volTags, &pol, tgt, ev.ID, &res)
	if ev.Kind == event.KindStateChange {
		for _, id := range notOptedIn(tgt.instances, found, tgt.want) {
			sc.log.Info().Str("instance", id).Str("reason", reason.NotOptedIn).Msg("instance does not opt in to snapshots on stop")
		}
	}
	markDone(ctx, client, account, decisions, sc.log)

	for _, d := range decisions {
		if d.Action == ActionCreate {
			res.Creates++
		}
	}
	msgs := sc.messages(decisions, run, now)
	if p.DryRun {
		return res, decisions, 0, sc.failures
	}
	return res, decisions, p.send(ctx, sc, msgs), sc.failures
}

// listEvent lists the instances an event targets (in a state that can be snapshotted) and,
// when the policy has exclude tags, every volume's tags.
func listEvent(ctx context.Context, client EC2, tgt eventTarget, pol *config.Policy) ([]Instance, map[string]map[string]string, error) {
	in := &ec2.DescribeInstancesInput{}
	if len(tgt.instances) > 0 {
		in.InstanceIds = tgt.instances
	} else {
		in.MaxResults = aws.Int32(1000)
	}
	in.Filters = tagFilters(tgt.want)
	in.Filters = append(in.Filters, types.Filter{Name: aws.String("instance-state-name"),
		Values: []string{"pending", "running", "stopping", "stopped"}})
	found, err := describeInstances(ctx, client, in)
	if err != nil || len(pol.Select.ExcludeTags) == 0 {
		return found, nil, err
	}
	_, volTags, err := listVolumes(ctx, client, slices.Sorted(maps.Keys(pol.Select.ExcludeTags)))
	if err != nil {
		return nil, nil, fmt.Errorf("listing volumes (exclusions cannot be told): %w", err)
	}
	return found, volTags, nil
}

// decideEvent decides the event's creates over what listEvent found: one per volume of
// each targeted instance, or one per instance with consistency: instance, each keyed by
// the event (job.EventKey); skips for instances not opted in and excluded volumes. It
// counts the instances and volumes into res.
func decideEvent(found []Instance, volTags map[string]map[string]string, pol *config.Policy, tgt eventTarget, eventID string, res *eventScope) []Decision {
	account, region := res.Account, res.Region
	var decisions []Decision
	seen := map[string]bool{}
	for _, inst := range found {
		d0 := Decision{Account: account, Region: region, Policy: pol.Name, Instance: inst.ID, InstanceName: inst.Tags[tag.Name],
			InstanceTags: instanceTags(pol, &inst)}
		if !allTags(tgt.want, inst.Tags) || (len(tgt.instances) > 0 && !slices.Contains(tgt.instances, inst.ID)) {
			// The server's filter is a hint: the tags decide.
			d0.Action, d0.Reason = ActionSkip, reason.NotOptedIn
			decisions = append(decisions, d0)
			continue
		}
		res.instances++
		var vols []string // the volumes of an instance snapshot (consistency: instance)
		for _, a := range inst.Volumes {
			if seen[a.Volume] && !pol.PerInstance() {
				continue
			}
			if !seen[a.Volume] {
				seen[a.Volume] = true
				res.volumes++
			}
			d := d0
			d.Volume, d.Device = a.Volume, a.Device
			skip := volumeSkip(pol, &inst, a, volTags)
			if pol.Select.Excludes(inst.Tags) {
				skip = reason.Excluded
			}
			switch {
			case skip != "":
				d.Action, d.Reason = ActionSkip, skip
			case pol.PerInstance():
				vols = append(vols, a.Volume)
				continue
			default:
				d.Action, d.Reason, d.Key = ActionCreate, reason.Event, job.EventKey(account, region, a.Volume, pol.Name, eventID)
			}
			decisions = append(decisions, d)
		}
		if len(vols) > 0 {
			d := d0
			d.Detail = "volumes " + strings.Join(vols, " ")
			d.Action, d.Reason, d.Key = ActionCreate, reason.Event, job.EventKey(account, region, inst.ID, pol.Name, eventID)
			decisions = append(decisions, d)
		}
	}
	return decisions
}

// markDone turns into skips the creates whose snapshot exists already (a second delivery
// of the event), found with one listing by job tag. A failed listing is logged: the
// workers find a job's snapshot before they create one.
func markDone(ctx context.Context, client EC2, account string, decisions []Decision, log zerolog.Logger) {
	var keys []string
	for _, d := range decisions {
		if d.Action == ActionCreate {
			keys = append(keys, d.Key)
		}
	}
	if len(keys) == 0 {
		return
	}
	done := map[string]bool{}
	err := describeSnapshots(ctx, client, []types.Filter{{Name: aws.String("tag:" + tag.Job), Values: keys}}, func(s types.Snapshot) {
		if aws.ToString(s.OwnerId) == account && s.State != types.SnapshotStateError {
			done[tagMap(s.Tags)[tag.Job]] = true
		}
	})
	if err != nil {
		log.Warn().Err(err).Msg("could not look for the event's snapshots; enqueuing all")
	}
	for i := range decisions {
		if d := &decisions[i]; d.Action == ActionCreate && done[d.Key] {
			d.Action, d.Reason = ActionSkip, reason.Done
		}
	}
}

// allTags reports whether every one of want is in tags with the same value.
func allTags(want, tags map[string]string) bool {
	for k, v := range want {
		if got, ok := tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// notOptedIn are the named instances not found with the wanted tags.
func notOptedIn(named []string, found []Instance, want map[string]string) []string {
	var out []string
	for _, id := range named {
		ok := false
		for _, in := range found {
			if in.ID == id && allTags(want, in.Tags) {
				ok = true
			}
		}
		if !ok {
			out = append(out, id)
		}
	}
	return out
}
