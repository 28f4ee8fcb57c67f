package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/planner"
	"github.com/snapfleet/snapfleet/queue"
)

type planFlags struct {
	dryRun      bool
	force       bool
	checkShares bool
	event       string
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
			if err := checkSharesUsage("plan", f.checkShares, f.dryRun); err != nil {
				return err
			}
			if f.checkShares && f.event != "" {
				return usagef("plan: --check-shares has nothing to check with --event (an event plans no deletes)")
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
				s, err = e.plan(cmd.Context(), queueURL, f.dryRun, f.force, f.checkShares)
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
	addCheckShares(cmd, &f.checkShares)
	return cmd
}

// addCheckShares adds --check-shares to plan and run.
func addCheckShares(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "check-shares", false, fmt.Sprintf("with --dry-run: show the planned deletes of shared snapshots as protected (one DescribeSnapshotAttribute per delete, at most %d per account-region)", planner.MaxShareChecks))
}

// checkSharesUsage refuses --check-shares without --dry-run: it is a review, and a plan
// that enqueues leaves shares to the worker, which checks them before each delete.
func checkSharesUsage(command string, checkShares, dryRun bool) error {
	if checkShares && !dryRun {
		return usagef("%s: --check-shares needs --dry-run (a plan that enqueues leaves shares to the worker, which checks them before each delete)", command)
	}
	return nil
}

// plan resolves the accounts and regions and runs the planner once; force lets deletes
// through the circuit breaker's fraction, checkShares (a dry run's) shows shared snapshots.
func (e *env) plan(ctx context.Context, queueURL string, dryRun, force, checkShares bool) (planner.Summary, error) {
	p, closeQ, err := e.planner(ctx, queueURL, dryRun, force)
	if err != nil {
		return planner.Summary{}, err
	}
	defer closeQ()
	p.CheckShares = checkShares
	return p.Plan(ctx)
}

// planner checks the configured accounts against the credentials, opens the jobs queue
// (unless dryRun: none), then resolves the accounts and regions: a foreign account or a
// queue that cannot be used is bad usage found before any listing, and a foreign account
// before the queue is even opened.
func (e *env) planner(ctx context.Context, queueURL string, dryRun, force bool) (*planner.Planner, func(), error) {
	if err := e.checkAccounts(ctx); err != nil {
		return nil, nil, err
	}
	var q queue.Queue
	closeQ := func() {}
	if !dryRun {
		var err error
		if q, err = e.openJobs(ctx, queueURL, 0); err != nil {
			return nil, nil, err
		}
		closeQ = func() { q.Close() }
	}
	accounts, regions, err := e.targets(ctx)
	if err != nil {
		closeQ()
		return nil, nil, err
	}
	p := e.newPlanner(accounts, regions, q, dryRun, force)
	if dryRun {
		return p, closeQ, nil
	}
	aud, closeAudit := e.auditor(q, event.NewPublisher(e.clients.Config(), e.cfg.Events.Bus))
	p.Audit = aud
	return p, func() { closeAudit(); closeQ() }, nil
}

// targets are the account-regions to plan (cloud.Clients.Targets); no region, or a
// listed account that is not the credentials' own, is a usage error.
func (e *env) targets(ctx context.Context) (accounts, regions []string, err error) {
	accounts, regions, err = e.clients.Targets(ctx, e.cfg.Regions)
	if errors.Is(err, cloud.ErrNoRegion) {
		return nil, nil, usageError{err}
	}
	return accounts, regions, e.accountError(err)
}

// checkAccounts checks the config's accounts against the credentials before any job
// (cloud.Clients.CheckAccounts).
func (e *env) checkAccounts(ctx context.Context) error {
	return e.accountError(e.clients.CheckAccounts(ctx))
}

// accountError makes an account whose credentials are another's a usage error.
func (e *env) accountError(err error) error {
	var foreign *cloud.ForeignAccountError
	if errors.As(err, &foreign) {
		return usageError{err}
	}
	return err
}
