package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snapfleet/snapfleet/internal/report"
	"github.com/snapfleet/snapfleet/planner"
)

// defaultReportEvery is how often `work --health-addr` recomputes the coverage gauges.
const defaultReportEvery = 15 * time.Minute

// coverageGauges are the coverage report's headline figures on /metrics. The worker
// computes them itself, on a schedule (--report-every), with the report's listings: a
// worker sees no plan, and the figures must not go stale when plans stop.
type coverageGauges struct {
	volumes     *prometheus.GaugeVec
	unprotected prometheus.Gauge
	optedOut    prometheus.Gauge
	errorSnaps  prometheus.Gauge
	pending     prometheus.Gauge
	cost        prometheus.Gauge
	failed      prometheus.Gauge
	refreshed   prometheus.Gauge
}

func newCoverageGauges(reg prometheus.Registerer) *coverageGauges {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	c := &coverageGauges{
		volumes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "snapfleet_coverage_volumes",
			Help: "Selected volumes (per policy) by RPO status: ok, late (newest recovery point older than every + grace), missing (none)."}, []string{"status"}),
		unprotected: g("snapfleet_coverage_unprotected_volumes", "In-use volumes of instances no policy selects."),
		optedOut:    g("snapfleet_coverage_opted_out_volumes", "In-use volumes left out on purpose by an exclude tag or exclude_boot."),
		errorSnaps:  g("snapfleet_coverage_error_snapshots", "Managed snapshots in the error state."),
		pending:     g("snapfleet_coverage_pending_snapshots", "Managed snapshots still pending."),
		cost:        g("snapfleet_coverage_estimated_monthly_cost_usd", "Estimated monthly storage cost of the managed snapshots in USD (an upper bound: full sizes)."),
		failed:      g("snapfleet_coverage_failed_scopes", "Account-regions the last coverage refresh could not list (their volumes are not counted)."),
		refreshed:   g("snapfleet_coverage_refresh_timestamp_seconds", "When the coverage gauges were last computed (Unix time)."),
	}
	reg.MustRegister(c.volumes, c.unprotected, c.optedOut, c.errorSnaps, c.pending, c.cost, c.failed, c.refreshed)
	return c
}

func (c *coverageGauges) set(r *report.Report, at time.Time) {
	h := r.Headline
	c.volumes.WithLabelValues(report.StatusOK).Set(float64(h.VolumesOK))
	c.volumes.WithLabelValues(report.StatusLate).Set(float64(h.VolumesLate))
	c.volumes.WithLabelValues(report.StatusMissing).Set(float64(h.VolumesMissing))
	c.unprotected.Set(float64(h.Unprotected))
	c.optedOut.Set(float64(h.OptedOut))
	c.errorSnaps.Set(float64(h.ErrorSnapshots))
	c.pending.Set(float64(h.PendingSnapshots))
	c.cost.Set(h.MonthlyCostUSD)
	c.failed.Set(float64(len(r.Errors)))
	c.refreshed.Set(float64(at.UnixNano()) / 1e9)
}

// watchCoverage computes the gauges now and then every `every` until ctx ends. A failed
// computation is logged and leaves the previous figures (and their timestamp) in place.
func (e *env) watchCoverage(ctx context.Context, c *coverageGauges, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		r, err := e.report(ctx, "", false)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			e.log.Error().Err(err).Msg(fmt.Sprintf("computing the coverage gauges: %v", err))
		default:
			c.set(r, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// planSummaryDetail is the detail of a snapfleet.PlanSummary event: the plan's summary
// and the coverage report's headline over the same accounts and regions, computed right
// after the plan with the report's listings (nil when they failed: logged).
func (e *env) planSummaryDetail(ctx context.Context, s planner.Summary, accounts, regions []string) any {
	s.Decisions = nil
	detail := struct {
		planner.Summary
		Coverage *report.Headline `json:"coverage"`
	}{Summary: s}
	r := &report.Reporter{Config: e.cfg, Accounts: accounts, Regions: regions, Now: e.now(), Log: e.log,
		EC2: func(account, region string) report.EC2 { return e.clients.EC2(account, region) }}
	rep, err := r.Build(ctx)
	if err != nil {
		e.log.Error().Err(err).Str("run", s.RunID).Msg(fmt.Sprintf("computing the coverage of the plan summary: %v", err))
		return detail
	}
	detail.Coverage = &rep.Headline
	return detail
}
