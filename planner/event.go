package planner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/queue"
)

// ErrEventScope is wrapped when an event names an account the config does not reach:
// bad input, never planned.
var ErrEventScope = errors.New("event outside the configured accounts")

// Reasons of event decisions, besides ReasonExcluded and ReasonDone.
const (
	// ReasonEvent: the volume is snapshotted for the event.
	ReasonEvent = "event"
	// ReasonNotOptedIn: the instance of a state change does not carry the opt-in tag.
	ReasonNotOptedIn = "not_opted_in"
)

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
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	run := p.RunID
	if run == "" {
		run = NewRunID(now)
	}
	log := p.Log.With().Str("run", run).Str("event", ev.ID).Str("detail_type", ev.DetailType).Logger()
	sum := Summary{RunID: run, Failures: []Failure{}, Warnings: []string{}, Scopes: []Scope{}, DryRun: p.DryRun, Event: &ev}

	var accounts, regions, instances []string
	var tags map[string]string
	switch ev.Kind {
	case event.KindStateChange:
		accounts, regions, instances = []string{ev.Account}, []string{ev.Region}, []string{ev.Instance}
		tags = p.Config.Events.OptIn()
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
		instances, tags = ev.Selector.Instances, ev.Selector.Tags
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
			sc, decisions, enqueued, failures := p.planEventScope(ctx, log, ev, account, region, instances, tags, now, run)
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

// planEventScope plans an event in one account and region.
func (p *Planner) planEventScope(ctx context.Context, log zerolog.Logger, ev event.Event, account, region string,
	instances []string, want map[string]string, now time.Time, run string) (eventScope, []Decision, int, []Failure) {
	log = log.With().Str("account", account).Str("region", region).Logger()
	sc := eventScope{Scope: Scope{Account: account, Region: region}}
	var failures []Failure
	fail := func(err error) {
		log.Error().Err(err).Msg("planning the event failed")
		failures = append(failures, Failure{Account: account, Region: region, Error: err.Error()})
	}
	client := p.EC2(account, region)
	pol := p.Config.EventPolicy()

	in := &ec2.DescribeInstancesInput{}
	if len(instances) > 0 {
		in.InstanceIds = instances
	} else {
		in.MaxResults = aws.Int32(1000)
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("tag:" + k), Values: []string{want[k]}})
	}
	in.Filters = append(in.Filters, types.Filter{Name: aws.String("instance-state-name"),
		Values: []string{"pending", "running", "stopping", "stopped"}})
	var found []Instance
	pages := ec2.NewDescribeInstancesPaginator(client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			if class, _ := cloud.Classify(err); class == cloud.NotFound && len(instances) > 0 {
				// Terminated and gone: nothing left to snapshot.
				log.Warn().Err(err).Strs("instances", instances).Msg("the event's instance does not exist")
				return sc, nil, 0, failures
			}
			fail(fmt.Errorf("describing the event's instances in %s/%s: %w", account, region, err))
			return sc, nil, 0, failures
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				found = append(found, instanceOf(i))
			}
		}
	}
	var volTags map[string]map[string]string
	if len(pol.Select.ExcludeTags) > 0 {
		ex := make([]string, 0, len(pol.Select.ExcludeTags))
		for k := range pol.Select.ExcludeTags {
			ex = append(ex, k)
		}
		var err error
		if _, volTags, err = listVolumes(ctx, client, ex); err != nil {
			fail(fmt.Errorf("listing volumes in %s/%s (exclusions cannot be told: no snapshots): %w", account, region, err))
			return sc, nil, 0, failures
		}
	}

	var decisions []Decision
	seen := map[string]bool{}
	for _, inst := range found {
		d0 := Decision{Account: account, Region: region, Policy: pol.Name, Instance: inst.ID, InstanceName: inst.Tags[tag.Name]}
		if !allTags(want, inst.Tags) || (len(instances) > 0 && !slices.Contains(instances, inst.ID)) {
			// The server's filter is a hint: the tags decide.
			d0.Action, d0.Reason = ActionSkip, ReasonNotOptedIn
			decisions = append(decisions, d0)
			continue
		}
		sc.instances++
		var vols []string // the volumes of an instance snapshot (consistency: instance)
		for _, a := range inst.Volumes {
			if seen[a.Volume] && !pol.PerInstance() {
				continue
			}
			if !seen[a.Volume] {
				seen[a.Volume] = true
				sc.volumes++
			}
			d := d0
			d.Volume, d.Device = a.Volume, a.Device
			reason := volumeSkip(&pol, &inst, a, volTags)
			if pol.Select.Excludes(inst.Tags) {
				reason = ReasonExcluded
			}
			switch {
			case reason != "":
				d.Action, d.Reason = ActionSkip, reason
			case pol.PerInstance():
				vols = append(vols, a.Volume)
				continue
			default:
				d.Action, d.Reason, d.Key = ActionCreate, ReasonEvent, job.EventKey(account, region, a.Volume, pol.Name, ev.ID)
			}
			decisions = append(decisions, d)
		}
		if len(vols) > 0 {
			d := d0
			d.Detail = "volumes " + strings.Join(vols, " ")
			d.Action, d.Reason, d.Key = ActionCreate, ReasonEvent, job.EventKey(account, region, inst.ID, pol.Name, ev.ID)
			decisions = append(decisions, d)
		}
	}
	if ids := notOptedIn(instances, found, want); len(ids) > 0 && ev.Kind == event.KindStateChange {
		for _, id := range ids {
			log.Info().Str("instance", id).Str("reason", ReasonNotOptedIn).Msg("instance does not opt in to snapshots on stop")
		}
	}
	// Volumes that already have the event's snapshot (a second delivery) are done.
	var keys2 []string
	for _, d := range decisions {
		if d.Action == ActionCreate {
			keys2 = append(keys2, d.Key)
		}
	}
	if len(keys2) > 0 {
		done := map[string]bool{}
		err := describeSnapshots(ctx, client, []types.Filter{{Name: aws.String("tag:" + tag.Job), Values: keys2}}, func(s types.Snapshot) {
			if aws.ToString(s.OwnerId) == account && s.State != types.SnapshotStateError {
				done[tagMap(s.Tags)[tag.Job]] = true
			}
		})
		if err != nil {
			// The workers find the job's snapshot before they create one.
			log.Warn().Err(err).Msg("could not look for the event's snapshots; enqueuing all")
		}
		for i := range decisions {
			if d := &decisions[i]; d.Action == ActionCreate && done[d.Key] {
				d.Action, d.Reason = ActionSkip, ReasonDone
			}
		}
	}
	var msgs []queue.Outgoing
	for _, d := range decisions {
		log.Info().Str("policy", d.Policy).Str("volume", d.Volume).Str("action", d.Action).Str("key", d.Key).
			Str("reason", d.Reason).Msg("decided")
		if d.Action != ActionCreate {
			continue
		}
		sc.Creates++
		msg, err := d.message(run, now)
		if err != nil {
			fail(err)
			continue
		}
		msgs = append(msgs, msg)
	}
	if p.DryRun {
		return sc, decisions, 0, failures
	}
	sent := 0
	for len(msgs) > 0 {
		n := min(sendBatch, len(msgs))
		if err := p.Queue.Send(ctx, msgs[:n]); err != nil {
			fail(fmt.Errorf("enqueuing the event's jobs of %s/%s (%d of %d sent): %w", account, region, sent, sent+len(msgs), err))
			break
		}
		sent += n
		msgs = msgs[n:]
	}
	return sc, decisions, sent, failures
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
