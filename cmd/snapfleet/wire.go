package main

import (
	"fmt"
	"time"

	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/planner"
	"github.com/snapfleet/snapfleet/queue"
	"github.com/snapfleet/snapfleet/worker"
)

// The worker's settings, their defaults and their ranges, for the flags of work and run
// and for the Lambda worker's environment alike.
const (
	// defaultConcurrency is --concurrency's default: jobs a long-running worker handles at once.
	defaultConcurrency = 4
	// defaultBatchConcurrency is SNAPFLEET_CONCURRENCY's default: the Lambda worker is
	// handed one SQS batch (up to 10 records) per invocation and runs it at once.
	defaultBatchConcurrency = 10
	maxConcurrency          = 256
	// defaultVisibility is what a heartbeat extends a running job's message to.
	defaultVisibility = 30 * time.Second
	minVisibility     = time.Second
	maxVisibility     = 12 * time.Hour
)

// checkConcurrency says what is wrong with a worker concurrency, nil when it is in range.
func checkConcurrency(n int) error {
	if n < 1 || n > maxConcurrency {
		return fmt.Errorf("%d is not between 1 and %d", n, maxConcurrency)
	}
	return nil
}

// checkVisibility says what is wrong with a visibility timeout, nil when it is in range.
func checkVisibility(d time.Duration) error {
	if d < minVisibility || d > maxVisibility {
		return fmt.Errorf("%s is not between %s and %s", d, minVisibility, maxVisibility)
	}
	return nil
}

// newPlanner builds the planner of plan, run, plan --event and the Lambda planner: the
// one place it is built. q is nil in a dry run.
func (e *env) newPlanner(accounts, regions []string, q queue.Queue, dryRun, force bool) *planner.Planner {
	now := e.now()
	return &planner.Planner{
		Config:   e.cfg,
		Accounts: accounts,
		Regions:  regions,
		EC2:      func(account, region string) planner.EC2 { return e.clients.EC2(account, region) },
		Now:      now,
		RunID:    planner.NewRunID(now),
		DryRun:   dryRun,
		Force:    force,
		Queue:    q,
		Log:      e.log,
	}
}

// newWorker builds the worker of work, run and the Lambda worker: the one place it is
// built. Its dead letters are published to events.bus through pub (nil: none).
func (e *env) newWorker(q queue.Queue, pub *event.Publisher, f *workFlags, drain bool) *worker.Worker {
	awsNow := e.clients.AWSNow
	if f.allowClockSkew {
		awsNow = nil
		e.log.Warn().Msg("--allow-clock-skew: deletes go on whatever AWS's clock says")
	}
	return &worker.Worker{
		Queue:           event.PublishFailures(q, pub, e.log),
		Config:          e.cfg,
		EC2:             func(account, region string) worker.EC2 { return e.clients.EC2(account, region) },
		SSM:             func(account, region string) worker.SSM { return e.clients.SSM(account, region) },
		KnownAccount:    e.clients.Known,
		KMS:             func(account, region string) worker.KMS { return e.clients.KMS(account, region) },
		Limiter:         e.clients.Limiter,
		Now:             e.now,
		AWSNow:          awsNow,
		Concurrency:     f.concurrency,
		Visibility:      f.visibility,
		IdleExit:        f.idleExit,
		ExitWhenDrained: drain,
		ShutdownGrace:   f.shutdownGrace,
		Log:             e.log,
		Observe:         f.progress.chain(f.observe),
		Drill:           e.drillHandler(q, pub),
	}
}
