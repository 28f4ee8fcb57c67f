package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/planner"
	"github.com/snapfleet/snapfleet/worker"
)

// readEvent reads the event file of plan --event: bad input is a usage error naming the
// file.
func readEvent(path string) (event.Event, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return event.Event{}, usagef("plan --event: %v", err)
	}
	ev, err := event.Parse(b)
	if err != nil {
		return event.Event{}, usagef("plan --event %s: %v", path, err)
	}
	return ev, nil
}

// planEvent plans an event's snapshots (planner.PlanEvent) onto the queue.
func (e *env) planEvent(ctx context.Context, queueURL string, dryRun bool, ev event.Event) (planner.Summary, error) {
	p, closeQ, err := e.planner(ctx, queueURL, dryRun, false)
	if err != nil {
		return planner.Summary{}, err
	}
	defer closeQ()
	s, err := p.PlanEvent(ctx, ev)
	if errors.Is(err, planner.ErrEventScope) {
		return s, usageError{err}
	}
	return s, err
}

// publishSummary publishes a plan's summary to events.bus, when set. A publishing error
// is logged, not fatal: the plan is done.
func (e *env) publishSummary(ctx context.Context, s planner.Summary) {
	pub := event.NewPublisher(e.clients.Config(), e.cfg.Events.Bus)
	if pub == nil || s.DryRun {
		return
	}
	var detail any = s
	if accounts, regions, err := e.targets(ctx); err == nil {
		detail = e.planSummaryDetail(ctx, s, accounts, regions)
	}
	if err := pub.Publish(ctx, event.Outcome{DetailType: event.DetailPlanSummary, Detail: detail}); err != nil {
		e.log.Error().Err(err).Str("run", s.RunID).Msg(fmt.Sprintf("publishing the plan summary: %v", err))
	}
}

// publishWork publishes a worker's counts as snapfleet.WorkSummary when it stops (pub nil:
// no events.bus). A publishing error is logged.
func (e *env) publishWork(ctx context.Context, pub *event.Publisher, s worker.Stats) {
	pub.PublishDetached(ctx, e.log, event.Outcome{DetailType: event.DetailWorkSummary, Detail: s})
}
