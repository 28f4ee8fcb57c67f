package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/planner"
)

type planFlags struct {
	dryRun bool
	force  bool
	event  string
}

func newPlanCmd(g *globals) *cobra.Command {
	f := &planFlags{}
	var queueURL string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "List the fleet and enqueue one job per volume to snapshot and per expired snapshot",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if queueURL == "" && !f.dryRun {
				return usagef("plan: --queue is required (or --dry-run)")
			}
			if queueURL != "" {
				if err := checkQueue(queueURL); err != nil {
					return err
				}
			}
			var ev *event.Event
			if f.event != "" {
				parsed, err := readEvent(f.event)
				if err != nil {
					return err
				}
				ev = &parsed
			}
			e, err := g.setup(cmd.Context())
			if err != nil {
				return err
			}
			var s planner.Summary
			if ev != nil {
				s, err = e.planEvent(cmd.Context(), queueURL, f.dryRun, *ev)
			} else {
				s, err = e.plan(cmd.Context(), queueURL, f.dryRun, f.force)
			}
			if err != nil {
				return err
			}
			e.publishSummary(cmd.Context(), s)
			if g.output == "json" {
				if err := g.printJSON(s); err != nil {
					return err
				}
			} else {
				s.WriteText(g.stdout)
			}
			if s.Errors > 0 {
				return errPartial
			}
			return nil
		},
	}
	g.addConfigFlags(cmd)
	cmd.Flags().StringVar(&queueURL, "queue", "", "jobs queue: an SQS queue URL or file:PATH")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "print the decisions (created, deleted, kept, protected, per account-region) without enqueuing")
	cmd.Flags().StringVar(&f.event, "event", "", "plan the snapshots of one EventBridge event read from FILE (EC2 state change, snapfleet.BackupNow) instead of the fleet")
	cmd.Flags().BoolVar(&f.force, "force", false, "let deletes through the circuit breaker's max_delete_fraction (never through an incomplete listing)")
	return cmd
}

// plan resolves the accounts and regions and runs the planner once; force lets deletes
// through the circuit breaker's fraction.
func (e *env) plan(ctx context.Context, queueURL string, dryRun, force bool) (planner.Summary, error) {
	p, closeQ, err := e.planner(ctx, queueURL, dryRun)
	if err != nil {
		return planner.Summary{}, err
	}
	defer closeQ()
	p.Force = force
	return p.Plan(ctx)
}

// planner opens the jobs queue (unless dryRun: none), then resolves the accounts and
// regions: a queue that cannot be used is bad usage found before any listing.
func (e *env) planner(ctx context.Context, queueURL string, dryRun bool) (*planner.Planner, func(), error) {
	now := e.now()
	p := &planner.Planner{
		Config: e.cfg,
		EC2:    func(account, region string) planner.EC2 { return e.clients.EC2(account, region) },
		Now:    now,
		RunID:  planner.NewRunID(now),
		DryRun: dryRun,
		Log:    e.log,
	}
	closeQ := func() {}
	if !dryRun {
		q, err := e.openJobs(ctx, queueURL, 0)
		if err != nil {
			return nil, nil, err
		}
		p.Queue, closeQ = q, func() { q.Close() }
	}
	var err error
	if p.Accounts, p.Regions, err = e.targets(ctx); err != nil {
		closeQ()
		return nil, nil, err
	}
	return p, closeQ, nil
}

// targets are the account-regions to plan (cloud.Clients.Targets); no region is a usage
// error.
func (e *env) targets(ctx context.Context) (accounts, regions []string, err error) {
	accounts, regions, err = e.clients.Targets(ctx, e.cfg.Regions)
	if errors.Is(err, cloud.ErrNoRegion) {
		return nil, nil, usageError{err}
	}
	return accounts, regions, err
}
