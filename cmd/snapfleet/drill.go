package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/recovery"
	"github.com/snapfleet/snapfleet/planner"
	"github.com/snapfleet/snapfleet/queue"
	"github.com/snapfleet/snapfleet/worker"
)

// drillHandler is the worker's volume.drill handler: each restore's record goes to q's
// journal when it keeps one (the embedded queue) and to events.bus as a
// snapfleet.DrillResult event (pub nil: no bus).
func (e *env) drillHandler(q queue.Queue, pub *event.Publisher) *worker.Drill {
	jr, hasJournal := queue.JournalOf(q)
	return &worker.Drill{
		EC2: func(account, region string) recovery.DrillAPI { return e.clients.EC2(account, region) },
		Record: func(ctx context.Context, r recovery.Record) {
			ev := e.log.Info()
			if !r.OK {
				ev = e.log.Error().Str("error", r.Error)
			}
			ev.Str("drill", r.Drill).Str("account", r.Account).Str("region", r.Region).Str("snapshot", r.Snapshot).
				Str("volume", r.Volume).Bool("ok", r.OK).Float64("seconds", r.Seconds).Msg("drill restore")
			if hasJournal {
				body, err := json.Marshal(r)
				if err == nil {
					err = jr.Append(context.WithoutCancel(ctx), recovery.DrillStream, queue.Record{At: r.At, Body: body})
				}
				if err != nil {
					e.log.Error().Err(err).Str("drill", r.Drill).Msg("keeping a drill result")
				}
			}
			pub.PublishDetached(ctx, e.log, event.Outcome{DetailType: event.DetailDrillResult, Detail: r})
		},
	}
}

type drillFlags struct {
	workFlags
	queueURL string
	sample   int
	seed     uint64
	seedSet  bool
	stale    time.Duration
}

// drillResult is the JSON of drill.
type drillResult struct {
	Drill    string                  `json:"drill"`
	Seed     uint64                  `json:"seed"`
	Enqueued int                     `json:"enqueued"`
	Cleaned  []string                `json:"cleaned"`
	Errors   []string                `json:"errors"`
	Policies []recovery.PolicyResult `json:"policies"`
	Restores []recovery.Record       `json:"restores"`
	Failed   int                     `json:"failed"`
	// Queued: the restores were left to the workers of an SQS queue; their results go
	// to events.bus.
	Queued bool `json:"queued"`
}

func newDrillCmd(g *globals) *cobra.Command {
	f := &drillFlags{}
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Restore a seeded sample of recovery points into throw-away volumes, time them, delete them",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			f.seedSet = cmd.Flags().Changed("seed")
			e, err := g.setup(cmd.Context())
			if err != nil {
				return err
			}
			res, err := e.drill(cmd.Context(), f)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if err := g.printJSON(res); err != nil {
					return err
				}
			} else {
				writeDrill(g, res)
			}
			if res.Failed > 0 || len(res.Errors) > 0 {
				return errPartial
			}
			return nil
		},
	}
	g.addConfigFlags(cmd)
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.queueURL, "queue", "file:snapfleet.db", "file:PATH: drill in this process on the embedded queue (results kept in its file); an SQS queue URL: enqueue the restores for the workers")
	fl.IntVar(&f.sample, "sample", 3, "recovery points per account-region (at least one per policy when enough)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the sample (default: from the clock; printed)")
	fl.DurationVar(&f.stale, "stale", time.Hour, "delete drill volumes older than this that a crashed drill left")
	return cmd
}

func (f *drillFlags) check() error {
	if err := f.workFlags.check(); err != nil {
		return err
	}
	if err := checkQueue(f.queueURL); err != nil {
		return err
	}
	switch {
	case f.sample < 1 || f.sample > 1000:
		return usagef("--sample: %d is not between 1 and 1000", f.sample)
	case f.stale < 10*time.Minute:
		return usagef("--stale: %s is under 10m: a running drill's volumes would go", f.stale)
	}
	return nil
}

// drill cleans what crashed drills left, samples each account-region, enqueues one
// volume.drill job per point and, on the embedded queue, works them and reads the results.
func (e *env) drill(ctx context.Context, f *drillFlags) (drillResult, error) {
	if err := e.checkAccounts(ctx); err != nil {
		return drillResult{}, err
	}
	q, err := e.openJobs(ctx, f.queueURL, f.visibility)
	if err != nil {
		return drillResult{}, err
	}
	defer q.Close()
	scopes, err := e.scopes(ctx, "", "")
	if err != nil {
		return drillResult{}, err
	}
	now := e.now().UTC()
	res := drillResult{Drill: planner.NewRunID(now), Seed: f.seed, Cleaned: []string{}, Errors: []string{}, Policies: []recovery.PolicyResult{}, Restores: []recovery.Record{}}
	if !f.seedSet {
		res.Seed = uint64(time.Now().UnixNano())
	}
	var out []queue.Outgoing
	for _, sc := range scopes {
		api := e.clients.EC2(sc.Account, sc.Region)
		gone, err := recovery.Cleanup(ctx, api, now.Add(-f.stale))
		res.Cleaned = append(res.Cleaned, gone...)
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("%s/%s: %v", sc.Account, sc.Region, err))
		}
		points, err := recovery.List(ctx, []recovery.Scope{sc}, recovery.Selector{})
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
			continue
		}
		for _, p := range recovery.Sample(points, f.sample, res.Seed, sc.Account, sc.Region) {
			j := job.Job{V: job.Version, Kind: job.KindDrill, Key: job.DrillKey(p.Account, p.Region, p.Snapshot, res.Drill),
				Account: p.Account, Region: p.Region, Policy: p.Policy, Snapshot: p.Snapshot, Drill: res.Drill, Run: res.Drill, PlannedAt: now}
			body, err := job.Encode(j)
			if err != nil {
				return res, fmt.Errorf("encoding drill job %s: %w", j.Key, err)
			}
			out = append(out, queue.Outgoing{Body: body, DedupID: j.Key, GroupID: job.GroupID(j)})
		}
	}
	for _, msg := range res.Errors {
		e.log.Error().Str("drill", res.Drill).Msg(msg)
	}
	if err := q.Send(ctx, out); err != nil {
		return res, fmt.Errorf("enqueuing %d drill jobs: %w", len(out), err)
	}
	res.Enqueued = len(out)
	jr, embedded := queue.JournalOf(q)
	if !embedded {
		res.Queued = true
		return res, nil
	}
	s, err := e.work(ctx, q, &f.workFlags, true)
	if err != nil {
		return res, err
	}
	if s.DeadLettered > 0 {
		res.Errors = append(res.Errors, fmt.Sprintf("%d drill jobs dead-lettered (snapfleet dlq list --queue %s)", s.DeadLettered, f.queueURL))
	}
	recs, err := drillRecords(ctx, jr)
	if err != nil {
		return res, err
	}
	for _, rec := range recs {
		if rec.Drill != res.Drill {
			continue
		}
		res.Restores = append(res.Restores, rec)
		if !rec.OK {
			res.Failed++
		}
	}
	res.Policies = recovery.Summarize(res.Restores)
	return res, nil
}

func writeDrill(g *globals, r drillResult) {
	fmt.Fprintf(g.stdout, "drill %s (seed %d): %d restores enqueued, %d stale drill volumes deleted\n", r.Drill, r.Seed, r.Enqueued, len(r.Cleaned))
	if r.Queued {
		fmt.Fprintln(g.stdout, "the workers run them; results go to events.bus as snapfleet.DrillResult")
		return
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tLAST DRILL\tTRIED\tSUCCEEDED\tP50\tP99")
	for _, p := range r.Policies {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1fs\t%.1fs\n", p.Policy, p.LastDrill.Format(time.RFC3339), p.Tried, p.Succeeded, p.P50, p.P99)
	}
	tw.Flush()
	for _, rec := range r.Restores {
		if !rec.OK {
			fmt.Fprintf(g.stdout, "FAILED %s/%s %s: %s\n", rec.Account, rec.Region, rec.Snapshot, oneLine(rec.Error))
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(g.stdout, "errors: "+strings.Join(r.Errors, "; "))
	}
}

// drillRecords reads every drill record of the journal jr (records it cannot decode are
// not drills of this build and are left out).
func drillRecords(ctx context.Context, jr queue.Journal) ([]recovery.Record, error) {
	var out []recovery.Record
	err := jr.Read(ctx, recovery.DrillStream, time.Time{}, func(r queue.Record) error {
		var rec recovery.Record
		if json.Unmarshal(r.Body, &rec) == nil {
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading drill records: %w", err)
	}
	return out, nil
}
