// Package planner looks at the fleet and decides the jobs: for every account and region
// it lists the instances and their EBS volumes, and the managed snapshots the account
// owns, then enqueues one snapshot.create job per selected volume that has no snapshot of
// its policy in the current period and one snapshot.delete job per snapshot that
// retention expires. Listing (Plan) is split from deciding (Decide, a pure function) so
// the decisions can be tested and benchmarked without AWS.
//
// The planner fails closed: when a snapshot listing fails, or a snapshot's start time or
// snapfleet tags cannot be read, no delete is planned for that scope; creates still go out.
// Before it enqueues a delete it asks the deletion classifier (AMIs of the account, snapshot
// locks) and shows what is protected instead; and a circuit breaker holds every delete of
// an account-region when a plan would delete more than max_delete_fraction of its managed
// snapshots (Force overrides that, never an incomplete listing). A plan costs listings, not
// calls per snapshot: shares are checked by the worker right before each delete, and by
// the planner only in a dry run that asks (CheckShares, bounded by MaxShareChecks).
package planner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/retention"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// EC2 is what the planner calls, with the SDK's exact signatures so its paginators work.
type EC2 interface {
	ec2.DescribeInstancesAPIClient
	ec2.DescribeVolumesAPIClient
	ec2.DescribeSnapshotsAPIClient
	ec2.DescribeImagesAPIClient
	DescribeLockedSnapshots(ctx context.Context, in *ec2.DescribeLockedSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLockedSnapshotsOutput, error)
	DescribeSnapshotAttribute(ctx context.Context, in *ec2.DescribeSnapshotAttributeInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error)
}

// Sender enqueues messages; queue.Queue is one.
type Sender interface {
	Send(ctx context.Context, msgs []queue.Outgoing) error
}

// Parallel is how many account-regions are planned at once, and how many Sends a plan
// makes at once. Each account-region has its own Describe buckets at AWS, so planning
// them together costs no throttling. The cost is memory: up to Parallel inventories at
// once. Their jobs are sent once all are planned, one of each account-region in turn
// (sendorder.go), so that workers draining the queue in order feed every bucket from the
// start.
const Parallel = 16

// sendBatch is how many messages go in one Send call: one SendMessageBatch.
const sendBatch = 10

// Planner plans every account and region of a configuration.
type Planner struct {
	Config *config.Config
	// Accounts and Regions to plan, resolved by the caller (the config's, or the
	// caller's own account and the SDK's region).
	Accounts []string
	Regions  []string
	// EC2 returns the client for an account and region.
	EC2 func(account, region string) EC2
	// Queue receives the jobs; it may be nil when DryRun.
	Queue Sender
	// Now is the planning clock; zero means time.Now().
	Now time.Time
	// RunID names this run in jobs and logs; empty means a random one.
	RunID  string
	DryRun bool
	// Force lets deletes through the circuit breaker's max_delete_fraction (never through
	// an incomplete listing).
	Force bool
	// CheckShares, in a dry run only, shows the planned deletes of shared snapshots as
	// protected shared (markShared): one call per delete, at most MaxShareChecks per
	// account-region. Without it the plan enqueues them and the worker skips them.
	CheckShares bool
	Log         zerolog.Logger
	// Audit, when set, is given the deletes a plan refuses (protected, held) as audit
	// records; never in a dry run.
	Audit Auditor
}

// Summary is the outcome of a plan, printed by `snapfleet plan --output json`.
type Summary struct {
	RunID         string `json:"run_id"`
	Accounts      int    `json:"accounts"`
	Regions       int    `json:"regions"`
	Instances     int    `json:"instances"`
	Volumes       int    `json:"volumes"`
	SnapshotsSeen int    `json:"snapshots_seen"`
	SnapshotJobs  int    `json:"snapshot_jobs"`
	DeleteJobs    int    `json:"delete_jobs"`
	CopyJobs      int    `json:"copy_jobs"`
	ArchiveJobs   int    `json:"archive_jobs"`
	Enqueued      int    `json:"enqueued"`
	// Errors counts Failures: account-regions (or parts of them) that could not be
	// planned or enqueued. More than zero means exit status 1.
	Errors   int       `json:"errors"`
	Failures []Failure `json:"failures"`
	// Kept, Protected (by an AMI, AWS Backup or DLM, a lock, a share) and Held (by the
	// circuit breaker) count snapshot decisions; Orphans the managed snapshots whose
	// volume is gone.
	Kept      int `json:"kept"`
	Protected int `json:"protected"`
	Held      int `json:"held"`
	Orphans   int `json:"orphans"`
	// Warnings are things an operator should look at, e.g. a policy with snapshots that
	// is not in the config.
	Warnings []string `json:"warnings"`
	// Scopes has one entry per account-region, sorted.
	Scopes []Scope `json:"scopes"`
	// Decisions are listed in a dry run only, sorted by account, region, policy, volume,
	// snapshot: two plans of the same fleet diff cleanly.
	Decisions []Decision `json:"decisions,omitempty"`
	DryRun    bool       `json:"dry_run"`
	Force     bool       `json:"force,omitempty"`
	// CheckShares: the dry run asked which planned deletes are shared (Planner.CheckShares).
	CheckShares bool `json:"check_shares,omitempty"`
	// Event is the event planned by PlanEvent; nil for a scheduled or manual plan.
	Event *event.Event `json:"event,omitempty"`
}

// Scope is the plan of one account-region.
type Scope struct {
	Account   string   `json:"account"`
	Region    string   `json:"region"`
	Managed   int      `json:"managed"`
	Orphans   int      `json:"orphans"`
	Creates   int      `json:"creates"`
	Deletes   int      `json:"deletes"`
	Kept      int      `json:"kept"`
	Protected int      `json:"protected"`
	Held      int      `json:"held"`
	Breaker   *Breaker `json:"breaker,omitempty"`
	// SharesUnchecked counts the planned deletes whose shares a CheckShares plan did not
	// ask about, past MaxShareChecks.
	SharesUnchecked int `json:"shares_unchecked,omitempty"`
	// Destination: the plan of a copy destination (its copies), not of a source scope;
	// Copies counts its copy jobs, Listings its listing calls. Archives counts a source
	// scope's archive jobs.
	Destination bool `json:"destination,omitempty"`
	Copies      int  `json:"copies,omitempty"`
	Archives    int  `json:"archives,omitempty"`
	Listings    int  `json:"listings,omitempty"`
}

// Failure is one thing that went wrong in an account and region.
type Failure struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	Error   string `json:"error"`
}

// Plan lists and decides every account and region, Parallel at a time, and then enqueues
// the jobs, one of each account-region in turn (or, in a dry run, lists the decisions). A
// failing account-region is recorded in the summary and does not stop the others; the
// error is for bad usage or cancellation.
func (p *Planner) Plan(ctx context.Context) (Summary, error) {
	switch {
	case p.Config == nil:
		return Summary{}, errors.New("planning: no config")
	case p.EC2 == nil:
		return Summary{}, errors.New("planning: no EC2 client factory")
	case len(p.Accounts) == 0 || len(p.Regions) == 0:
		return Summary{}, errors.New("planning: no account or no region to plan")
	case !p.DryRun && p.Queue == nil:
		return Summary{}, errors.New("planning: no queue to enqueue on")
	case p.CheckShares && !p.DryRun:
		return Summary{}, errors.New("planning: CheckShares is for a dry run (a plan that enqueues leaves shares to the worker)")
	}
	now, run := p.clock()
	sum := Summary{RunID: run, Accounts: len(p.Accounts), Regions: len(p.Regions), Failures: []Failure{}, Warnings: []string{},
		Scopes: []Scope{}, DryRun: p.DryRun, Force: p.Force, CheckShares: p.CheckShares}
	log := p.Log.With().Str("run", run).Logger()

	results := make([]scopeResult, len(p.Accounts)*len(p.Regions))
	boxes := make([]*outbox, len(results))
	var wg sync.WaitGroup
	sem := make(chan struct{}, Parallel)
	i := 0
	for _, account := range p.Accounts {
		for _, region := range p.Regions {
			slot, box := &results[i], &boxes[i]
			i++
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				var msgs []queue.Outgoing
				var sc *scopeRun
				slot.res, msgs, sc = p.planScope(ctx, log, account, region, now, run)
				slot.res.account, slot.res.region = account, region
				*box = &outbox{sc: sc, msgs: msgs}
			})
		}
	}
	wg.Wait()
	if !p.DryRun {
		sending := time.Now()
		inPhase(ctx, "sending", func(ctx context.Context) { p.sendAll(ctx, boxes) }) // every account-region's jobs in turn (sendorder.go)
		log.Info().Dur("sending", time.Since(sending)).Msg("enqueued")
	}
	for i, b := range boxes {
		results[i].enqueued, results[i].failures = b.sent, b.sc.failures
	}
	results = append(results, p.planCopies(ctx, log, results, now, run)...)
	p.audit(ctx, run, results)

	unknown := map[string]int{}
	for _, r := range results {
		sum.add(r.res, r.enqueued, r.failures, p.DryRun)
		for pol, n := range r.res.UnknownPolicies {
			unknown[pol] += n
		}
	}
	sum.Errors = len(sum.Failures)
	sum.warnUnknown(unknown, log)
	sort.Slice(sum.Scopes, func(i, j int) bool {
		a, b := sum.Scopes[i], sum.Scopes[j]
		return a.Account < b.Account || (a.Account == b.Account && a.Region < b.Region)
	})
	SortDecisions(sum.Decisions)
	log.Info().Int("instances", sum.Instances).Int("volumes", sum.Volumes).Int("snapshots_seen", sum.SnapshotsSeen).
		Int("snapshot_jobs", sum.SnapshotJobs).Int("delete_jobs", sum.DeleteJobs).Int("enqueued", sum.Enqueued).
		Int("kept", sum.Kept).Int("protected", sum.Protected).Int("held", sum.Held).Int("orphans", sum.Orphans).
		Int("errors", sum.Errors).Bool("dry_run", p.DryRun).Msg("plan done")
	return sum, ctx.Err()
}

// scopeResult is what planScope returns for one account-region.
type scopeResult struct {
	res      Result
	enqueued int
	failures []Failure
}

// add counts one account-region's plan into the summary (its decisions only in a dry run).
func (sum *Summary) add(r Result, enqueued int, failures []Failure, dryRun bool) {
	sum.Instances += r.Instances
	sum.Volumes += r.Volumes
	sum.SnapshotsSeen += r.SnapshotsSeen
	sum.SnapshotJobs += r.Creates
	sum.DeleteJobs += r.Deletes
	sum.CopyJobs += r.Copies
	sum.ArchiveJobs += r.Archives
	sum.Enqueued += enqueued
	sum.Failures = append(sum.Failures, failures...)
	sum.Kept += r.Kept
	sum.Protected += r.Protected
	sum.Held += r.Held
	sum.Orphans += r.Orphans
	sum.Scopes = append(sum.Scopes, Scope{Account: r.account, Region: r.region, Managed: r.SnapshotsSeen,
		Orphans: r.Orphans, Creates: r.Creates, Deletes: r.Deletes, Kept: r.Kept,
		Protected: r.Protected, Held: r.Held, Breaker: r.Breaker, SharesUnchecked: r.SharesUnchecked,
		Destination: r.destination, Copies: r.Copies, Archives: r.Archives, Listings: r.Listings})
	if r.SharesUnchecked > 0 {
		sum.Warnings = append(sum.Warnings, sharesUnchecked(r.account, r.region, r.SharesUnchecked))
	}
	if dryRun {
		sum.Decisions = append(sum.Decisions, r.Decisions...)
	}
}

// warnUnknown warns, policy by policy, of managed snapshots whose policy is not in the
// config: they are never deleted.
func (sum *Summary) warnUnknown(unknown map[string]int, log zerolog.Logger) {
	for _, pol := range slices.Sorted(maps.Keys(unknown)) {
		msg := fmt.Sprintf("policy %s has %d snapshots and is not in the config: they are never deleted (renamed or removed policy?)", pol, unknown[pol])
		log.Warn().Str("policy", pol).Int("snapshots", unknown[pol]).Msg(msg)
		sum.Warnings = append(sum.Warnings, msg)
	}
}

// planScope plans one account and region and returns its jobs to send (none in a dry
// run) and its run, which holds what went wrong; it never fails as a whole.
func (p *Planner) planScope(ctx context.Context, log zerolog.Logger, account, region string, now time.Time, run string) (Result, []queue.Outgoing, *scopeRun) {
	sc := newScopeRun(log, account, region)
	log = sc.log
	client := p.EC2(account, region)
	began := time.Now()
	var inv Inventory
	inPhase(ctx, "listing", func(ctx context.Context) { inv = p.inventory(ctx, client, sc) })
	listed := time.Since(began)
	// The rest of this function, and the goroutines it starts, are deciding.
	defer pprof.SetGoroutineLabels(ctx)
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("phase", "deciding")))

	// Every keep decision only when they are shown (a dry run) or logged.
	keeps := p.DryRun || logsDebug(log)
	res := decide(inv, p.Config, now, keeps)
	if res.ForeignSnapshots > 0 {
		log.Warn().Int("snapshots", res.ForeignSnapshots).Msg("ignored snapshots of other owners returned by the listing")
	}
	if res.Deletes > 0 {
		// The deletion classifier, only for the delete candidates; then decide again, when
		// it protected any (else the decisions would be the same).
		if inv.Protections = p.classify(ctx, client, account, res.Decisions, sc.fail); len(inv.Protections) > 0 {
			res = decide(inv, p.Config, now, keeps)
		}
	}
	if res.Trip(inv.SnapshotsComplete, p.Config.DeleteFraction(), p.Force) {
		ev := log.Error().Str("reason", res.Breaker.Reason).Int("managed", res.Breaker.Managed)
		if res.Breaker.Reason == BreakerFraction {
			// The incomplete listing is already a failure of its own.
			sc.failures = append(sc.failures, Failure{Account: account, Region: region, Error: res.Breaker.String()})
			ev = ev.Int("deletes", res.Breaker.Deletes).Float64("max_delete_fraction", res.Breaker.Fraction)
		}
		ev.Msg(res.Breaker.String())
	}
	if p.CheckShares && res.Deletes > 0 {
		// After the breaker: it counts what a plan enqueues, shared snapshots included.
		markShared(ctx, client, sc, &res)
		if res.SharesUnchecked > 0 {
			log.Warn().Int("snapshots", res.SharesUnchecked).Msg(sharesUnchecked(account, region, res.SharesUnchecked))
		}
	}

	res.sources = copySources(&inv, &res, p.Config)
	if inv.SnapshotsComplete {
		p.planArchives(ctx, client, sc, &inv, &res, now)
	}
	msgs := sc.messages(res.Decisions, run, now)
	log.Info().Int("instances", res.Instances).Int("volumes", res.Volumes).Int("snapshots_seen", res.SnapshotsSeen).
		Int("snapshot_jobs", res.Creates).Int("delete_jobs", res.Deletes).
		Dur("listing", listed).Dur("deciding", time.Since(began)-listed).Msg("planned")
	if p.DryRun {
		return res, nil, sc
	}
	return res, msgs, sc
}

// inPhase runs f with the profiler label phase=name on its goroutine and those it starts:
// a CPU profile of a plan (SNAPFLEET_CPUPROFILE) then splits by phase, listing, deciding
// and sending (go tool pprof -tagfocus phase=sending).
func inPhase(ctx context.Context, name string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels("phase", name), f)
}

// logsDebug reports whether log writes debug lines.
func logsDebug(log zerolog.Logger) bool {
	e := log.Debug()
	defer e.Discard()
	return e.Enabled()
}

// sharesUnchecked is the warning of a CheckShares plan past MaxShareChecks.
func sharesUnchecked(account, region string, n int) string {
	return fmt.Sprintf("%s/%s: the shares of %d planned deletes were not checked (at most %d per account-region); the worker checks each before deleting",
		account, region, n, MaxShareChecks)
}

// messages logs each decision and encodes the jobs of the creates and deletes. Creates
// and deletes take different token buckets: enqueued alternately, workers draining the
// queue in order feed both at once instead of one after the other.
func (sc *scopeRun) messages(decisions []Decision, run string, now time.Time) []queue.Outgoing {
	log := sc.log
	encoded := encodeJobs(decisions, run, now)
	var creates, deletes []queue.Outgoing
	next := 0
	for _, d := range decisions {
		ev := log.Debug()
		switch {
		case d.Reason == retention.KeptFuture || d.Reason == retention.KeptUnknownTime:
			ev = log.Warn() // never counted, never deleted: someone should look
		case d.Action == ActionDelete || d.Action == ActionProtected || d.Action == ActionHeld:
			ev = log.Info()
		}
		ev.Str("policy", d.Policy).Str("volume", d.Volume).Str("snapshot", d.Snapshot).
			Str("action", d.Action).Str("key", d.Key).Str("reason", d.Reason).Str("detail", d.Detail).Msg("decided")
		if !d.isJob() {
			continue
		}
		e := encoded[next]
		next++
		if e.err != nil {
			sc.fail(e.err)
			continue
		}
		if d.Action == ActionDelete {
			deletes = append(deletes, e.msg)
		} else {
			creates = append(creates, e.msg)
		}
	}
	return interleave(creates, deletes)
}

// isJob reports whether the decision is carried out by a job.
func (d *Decision) isJob() bool {
	return d.Action == ActionCreate || d.Action == ActionDelete || d.Action == ActionCopy || d.Action == ActionArchive
}

// encoded is a job's message, or why it could not be encoded.
type encoded struct {
	msg queue.Outgoing
	err error
}

// encodeJobs encodes the jobs of decisions, in their order, a part on each core: a
// plan of 130,000 jobs spent half a second encoding them on one.
func encodeJobs(decisions []Decision, run string, now time.Time) []encoded {
	var jobs []int
	for i := range decisions {
		if decisions[i].isJob() {
			jobs = append(jobs, i)
		}
	}
	out := make([]encoded, len(jobs))
	per := max(1, (len(jobs)+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for from := 0; from < len(jobs); from += per {
		wg.Go(func() {
			for k := from; k < min(from+per, len(jobs)); k++ {
				out[k].msg, out[k].err = decisions[jobs[k]].message(run, now)
			}
		})
	}
	wg.Wait()
	return out
}

// interleave alternates the elements of a and b, then the rest of the longer.
func interleave[T any](a, b []T) []T {
	out := make([]T, 0, len(a)+len(b))
	for i := 0; i < max(len(a), len(b)); i++ {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

// clock returns the planning time (Now, or the real clock) in UTC and the run id (RunID,
// or a new one).
func (p *Planner) clock() (time.Time, string) {
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	if p.RunID != "" {
		return now, p.RunID
	}
	return now, NewRunID(now)
}

// NewRunID returns a run id: the planning time and a random suffix.
func NewRunID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// message is the job of a create or delete decision, encoded for the queue: a create
// without a volume is an instance's (consistency: instance).
func (d Decision) message(run string, now time.Time) (queue.Outgoing, error) {
	j := job.Job{V: job.Version, Key: d.Key, Account: d.Account, Region: d.Region, Policy: d.Policy,
		Volume: d.Volume, Run: run, PlannedAt: now, InstanceTags: d.InstanceTags}
	switch {
	case d.Action == ActionCreate && d.Volume == "":
		j.Kind, j.Instance = job.KindCreateInstance, d.Instance
	case d.Action == ActionCreate:
		j.Kind, j.Instance, j.Device, j.Name = job.KindCreate, d.Instance, d.Device, d.InstanceName
	case d.Action == ActionCopy:
		j.Kind, j.SourceAccount, j.SourceRegion, j.SourceSnapshot = job.KindCopy, d.SourceAccount, d.SourceRegion, d.SourceSnapshot
	case d.Action == ActionArchive:
		j.Kind, j.Snapshot = job.KindArchive, d.Snapshot
	default:
		j.Kind, j.Snapshot, j.Duplicate = job.KindDelete, d.Snapshot, d.Reason == reason.Duplicate
	}
	body, err := job.Encode(j)
	if err != nil && j.Name != "" {
		// The name only labels the snapshot: one the message cannot carry (a control
		// character, or too long for it) leaves the worker the instance id.
		j.Name = ""
		body, err = job.Encode(j)
	}
	if err != nil && j.InstanceTags != nil {
		// Bounded, yet with escapes they may not fit beside the longest other fields: the
		// snapshots then go without them rather than not at all.
		j.InstanceTags = nil
		body, err = job.Encode(j)
	}
	if err != nil {
		return queue.Outgoing{}, fmt.Errorf("encoding job %s: %w", d.Key, err)
	}
	return queue.Outgoing{Body: body, DedupID: d.Key, GroupID: job.GroupID(j)}, nil
}
