package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/queue"
	"github.com/snapfleet/snapfleet/worker"
)

type workFlags struct {
	concurrency   int
	idleExit      time.Duration
	visibility    time.Duration
	shutdownGrace time.Duration
	healthAddr    string // work only
	// allowClockSkew turns off the worker's clock check before deletes (--now on purpose).
	allowClockSkew bool

	// observe is the worker's Observe (the health server), or nil.
	observe func(worker.Observation)
	// progress is the display's count (run, work --idle-exit on a terminal), or nil.
	progress *workProgress
}

func (f *workFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.concurrency, "concurrency", defaultConcurrency, "jobs handled at once")
	cmd.Flags().DurationVar(&f.visibility, "visibility", defaultVisibility, "visibility timeout of a received job; a heartbeat extends it while the job runs")
	cmd.Flags().DurationVar(&f.shutdownGrace, "shutdown-grace", 20*time.Second, "on SIGINT/SIGTERM, how long in-flight jobs may finish before they are released")
	cmd.Flags().BoolVar(&f.allowClockSkew, "allow-clock-skew", false, "delete even when the worker's clock (real or --now) is more than 5m from AWS's (tests, replays with --now)")
}

func (f *workFlags) check() error {
	if err := checkConcurrency(f.concurrency); err != nil {
		return usagef("--concurrency: %v", err)
	}
	if err := checkVisibility(f.visibility); err != nil {
		return usagef("--visibility: %v", err)
	}
	switch {
	case f.idleExit < 0:
		return usagef("--idle-exit: %s is negative", f.idleExit)
	case f.shutdownGrace < 0:
		return usagef("--shutdown-grace: %s is negative", f.shutdownGrace)
	case f.healthAddr != "":
		return checkAddr(f.healthAddr)
	}
	return nil
}

func newWorkCmd(g *globals) *cobra.Command {
	f := &workFlags{}
	var queueURL string
	var reportEvery time.Duration
	cmd := &cobra.Command{
		Use:   "work",
		Short: "Consume jobs from the queue: create and delete snapshots",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if queueURL == "" {
				return usagef("work: --queue is required")
			}
			if err := f.check(); err != nil {
				return err
			}
			if reportEvery < 0 {
				return usagef("--report-every: %s is negative", reportEvery)
			}
			if f.idleExit > 0 {
				f.progress = g.startWorkProgress("work")
				defer g.endProgress()
			}
			e, err := g.setup(cmd.Context())
			if err != nil {
				return err
			}
			f.progress.useLimits(e.clients.Limiter)
			if err := e.checkAccounts(cmd.Context()); err != nil {
				return err
			}
			q, err := e.openJobs(cmd.Context(), queueURL, f.visibility)
			if err != nil {
				return err
			}
			defer q.Close()
			if f.healthAddr != "" {
				h := newHealth(f.visibility)
				stop, err := h.serve(cmd.Context(), f.healthAddr, e.log)
				if err != nil {
					return err
				}
				defer stop()
				f.observe = h.observe
				if reportEvery > 0 {
					go e.watchCoverage(cmd.Context(), newCoverageGauges(h.reg), reportEvery)
				}
			}
			s, err := e.work(cmd.Context(), q, f, false)
			if err != nil {
				return err
			}
			g.endProgress()
			if g.output == "json" {
				return g.printJSON(s)
			}
			writeWorkText(g, s)
			return nil
		},
	}
	g.addConfigFlags(cmd)
	cmd.Flags().StringVar(&queueURL, "queue", "", "jobs queue: an SQS queue URL or file:PATH")
	cmd.Flags().DurationVar(&f.idleExit, "idle-exit", 0, "exit after the queue has been empty this long (default: run until SIGINT/SIGTERM)")
	cmd.Flags().StringVar(&f.healthAddr, "health-addr", "", "serve /healthz, /readyz and /metrics (Prometheus) on this address, e.g. :8080 (default: off)")
	cmd.Flags().DurationVar(&reportEvery, "report-every", defaultReportEvery, "with --health-addr: recompute the coverage gauges (snapfleet_coverage_*) this often with the report's listings; 0 = off")
	f.add(cmd)
	return cmd
}

// work runs a worker on q until it is told to stop, idles out or (drain) empties the queue.
func (e *env) work(ctx context.Context, q queue.Queue, f *workFlags, drain bool) (worker.Stats, error) {
	pub := event.NewPublisher(e.clients.Config(), e.cfg.Events.Bus)
	w := e.newWorker(q, pub, f, drain)
	aud, closeAudit := e.auditor(q, pub)
	w.Audit = aud
	stopPoll := f.progress.poll(ctx, q)
	s, err := w.Run(ctx)
	stopPoll()
	closeAudit()
	e.publishWork(ctx, pub, s)
	return s, err
}

func writeWorkText(g *globals, s worker.Stats) {
	fmt.Fprintf(g.stdout, "processed %d: created %d, deleted %d, skipped %d, retried %d, dead-lettered %d; deferred %d\n",
		s.Processed, s.Created, s.Deleted, s.Skipped, s.Retried, s.DeadLettered, s.Deferred)
	if s.Fallbacks+s.PostFailures > 0 { // consistency: application
		fmt.Fprintf(g.stdout, "hooks: %d fell back to crash-consistent, %d post hooks failed\n", s.Fallbacks, s.PostFailures)
	}
}
