package main

import (
	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/planner"
	"github.com/snapfleet/snapfleet/worker"
)

// runResult is the JSON of `snapfleet run`: both summaries, the work's all zero in a
// dry run (DESIGN.md §2: run prints both sets).
type runResult struct {
	Plan planner.Summary `json:"plan"`
	Work worker.Stats    `json:"work"`
}

func newRunCmd(g *globals) *cobra.Command {
	f := &workFlags{}
	var queueURL string
	var dryRun, force, checkShares bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Plan and work in one process until the queue is drained (single machine, embedded queue by default)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if err := checkSharesUsage("run", checkShares, dryRun); err != nil {
				return err
			}
			if err := checkQueue(queueURL); err != nil {
				return err
			}
			if !dryRun {
				f.progress = g.startWorkProgress("run")
				defer g.endProgress()
			}
			e, err := g.setup(cmd.Context())
			if err != nil {
				return err
			}
			f.progress.useLimits(e.clients.Limiter)
			res := runResult{}
			if res.Plan, err = e.plan(cmd.Context(), queueURL, dryRun, force, checkShares); err != nil {
				return err
			}
			f.progress.plan(res.Plan.Scopes)
			e.publishSummary(cmd.Context(), res.Plan)
			if !dryRun {
				q, err := e.openJobs(cmd.Context(), queueURL, f.visibility)
				if err != nil {
					return err
				}
				defer q.Close()
				s, err := e.work(cmd.Context(), q, f, true)
				if err != nil {
					return err
				}
				res.Work = s
			}
			g.endProgress()
			if g.output == "json" {
				if err := g.printJSON(res); err != nil {
					return err
				}
			} else {
				res.Plan.WriteText(g.stdout)
				if !dryRun {
					writeWorkText(g, res.Work)
				}
			}
			if res.Plan.Errors > 0 || res.Work.DeadLettered > 0 {
				return errPartial
			}
			return nil
		},
	}
	g.addConfigFlags(cmd)
	cmd.Flags().StringVar(&queueURL, "queue", "file:snapfleet.db", "jobs queue: file:PATH (embedded) or an SQS queue URL")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan's decisions; enqueue and change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "plan deletes even past max_delete_fraction (never on an incomplete listing)")
	addCheckShares(cmd, &checkShares)
	f.add(cmd)
	return cmd
}
