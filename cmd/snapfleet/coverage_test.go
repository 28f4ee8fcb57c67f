package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/report"
	"github.com/snapfleet/snapfleet/internal/testbed/logbuf"
)

// TestCoverageGauges: after a plan of the report's fleet, the coverage in the
// snapfleet.PlanSummary event and the snapfleet_coverage_* gauges of `work --health-addr`
// equal the headline of `report --output json` at the same --now.
func TestCoverageGauges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.config = writeFile(t, "coverage.yaml", reportConfig+"events:\n  bus: ops\n")
	read := e.busQueue(ctx, "ops")
	e.buildReportFleet(ctx)
	now := e.start.Format(time.RFC3339)
	dir := t.TempDir()

	e.jsonCLI(0, "plan", "--queue", "file:"+filepath.Join(dir, "jobs.db"), "--now", now)
	want := e.report(e.start).Headline
	if want.VolumesLate != 1 || want.MonthlyCostUSD == 0 {
		t.Fatalf("report headline %+v: not the report fleet", want)
	}
	var summary map[string]any
	for _, ev := range read(1) {
		if ev["detail-type"] == "snapfleet.PlanSummary" {
			summary = ev["detail"].(map[string]any)
		}
	}
	var inEvent report.Headline
	if b, err := json.Marshal(summary["coverage"]); err != nil || json.Unmarshal(b, &inEvent) != nil || inEvent != want {
		t.Errorf("PlanSummary coverage %v, want %+v", summary["coverage"], want)
	}

	// The worker consumes a queue of its own: the fleet stays as the report saw it.
	cmd := exec.Command(binary, "work", "--queue", "file:"+filepath.Join(dir, "idle.db"), "--config", e.config, "--now", now,
		"--health-addr", "127.0.0.1:0", "--report-every", "1h")
	cmd.Env = append(os.Environ(), e.moto.Env()...)
	var stderr logbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var base string
	listening := regexp.MustCompile(`"addr":"(127\.0\.0\.1:[0-9]+)"[^\n]*serving /healthz`)
	eventually(t, 30*time.Second, func() string {
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
			return ""
		}
		return "the worker logged no health address:\n" + tail(stderr.String())
	})
	var metrics string
	eventually(t, 30*time.Second, func() string {
		_, body, err := httpGet(base + "/metrics")
		if metrics = body; err != nil || !regexp.MustCompile(`(?m)^snapfleet_coverage_refresh_timestamp_seconds [1-9]`).MatchString(body) {
			return fmt.Sprintf("no coverage refresh on /metrics (%v):\n%s", err, tail(stderr.String()))
		}
		return ""
	})
	for name, v := range map[string]float64{
		`snapfleet_coverage_volumes{status="ok"}`:       float64(want.VolumesOK),
		`snapfleet_coverage_volumes{status="late"}`:     float64(want.VolumesLate),
		`snapfleet_coverage_volumes{status="missing"}`:  float64(want.VolumesMissing),
		`snapfleet_coverage_unprotected_volumes`:        float64(want.Unprotected),
		`snapfleet_coverage_opted_out_volumes`:          float64(want.OptedOut),
		`snapfleet_coverage_error_snapshots`:            float64(want.ErrorSnapshots),
		`snapfleet_coverage_pending_snapshots`:          float64(want.PendingSnapshots),
		`snapfleet_coverage_estimated_monthly_cost_usd`: want.MonthlyCostUSD,
		`snapfleet_coverage_failed_scopes`:              0,
	} {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(metrics)
		if m == nil {
			t.Errorf("/metrics has no %s", name)
			continue
		}
		if got, err := strconv.ParseFloat(m[1], 64); err != nil || got != v {
			t.Errorf("%s = %s, want %v (the report's)", name, m[1], v)
		}
	}
}
