package main

// plan100k: the cost of planning one large account-region — 100,000 volumes and
// 1,000,000 managed snapshots at -scale 1 (100,000 × scale and ten times as many), about
// 3 % of the snapshots expired — through the limits-faithful endpoint: the plan's wall
// time against the time its listing calls need at the buckets' rates, the listing calls
// per action, and the plan process's peak memory (BENCHMARKS.md).

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
)

const plan100kHeader = "| scenario | volumes | snapshots | expired | plan wall s | ideal s (listings at the buckets' rates) | wall ÷ ideal | listing calls by action | listing / deciding / sending s | plan peak MiB | plan CPU s | create / delete jobs |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|"

// snapshotsPerVolume: one a day for ten days; on 3 volumes in 10 the oldest is 40 days
// old instead, past the default policy's max_age of 30 days.
const snapshotsPerVolume = 10

func runPlan100k(ctx context.Context, o options, w *world, ep *awslimits.Server, dir string) error {
	if w.sim == nil {
		return fmt.Errorf("plan100k needs the simulator (-ec2 sim)")
	}
	s := scope{ownAccount, "ap-south-1", max(1, int(math.Round(100000*o.scale)))}
	now := time.Now().UTC()
	expired := 0
	for i, in := range w.sim.AddInstances(s.account, s.region, s.volumes, 1, "running", nil) {
		vol := in.Devices[0].Volume
		for d := 1; d <= snapshotsPerVolume; d++ {
			age := time.Duration(d) * 24 * time.Hour
			if d == snapshotsPerVolume && i%10 < 3 {
				age = 40 * 24 * time.Hour
				expired++
			}
			at := now.Add(-age)
			w.sim.AddSnapshot(s.account, s.region, vol, at, map[string]string{
				tag.Policy: config.DefaultPolicyName, tag.Volume: vol, tag.AutoBackup: "true",
				tag.Expires: at.Add(30 * 24 * time.Hour).Format(time.RFC3339),
				tag.Job:     job.CreateKey(s.account, s.region, vol, config.DefaultPolicyName, at.Truncate(24*time.Hour))})
		}
	}
	sc := scenario{name: "plan100k", scopes: []scope{s}}
	cfgPath := filepath.Join(dir, "config-plan100k.yaml")
	if err := writeConfig(cfgPath, sc); err != nil {
		return err
	}
	q, _, err := w.queues(ctx, "plan100k")
	if err != nil {
		return err
	}
	ep.Reset()
	planStart := time.Now()
	pr := snapfleet(ctx, o, w.env(ep), "plan", "--config", cfgPath, "--queue", q, "--now", now.Format(time.RFC3339), "--force", "--output", "json")
	if pr.code != 0 {
		return fmt.Errorf("plan100k: plan exit %d: %s", pr.code, tail(pr.stderr))
	}
	var plan map[string]any
	if err := json.Unmarshal(pr.stdout, &plan); err != nil {
		return fmt.Errorf("plan100k: plan output %q: %w", pr.stdout, err)
	}
	// Where the time after the listing went: the last listing call's answer, against the
	// plan's end.
	var last time.Time
	for _, a := range awslimits.Listings {
		if at := ep.DoneAt(awslimits.Done{Account: s.account, Region: s.region, Action: a}); len(at) > 0 && at[len(at)-1].After(last) {
			last = at[len(at)-1]
		}
	}
	fmt.Fprintf(os.Stderr, "bench: plan100k: the last listing call was answered %.2f s into the plan, %.2f s before its end\n",
		last.Sub(planStart).Seconds(), pr.wall.Seconds()-last.Sub(planStart).Seconds())
	calls := byService(ep.Calls(), nil, "ec2")
	limits := awslimits.DefaultLimits()
	ideal := 0.0
	var parts []string
	for _, a := range sortedByCount(calls) {
		parts = append(parts, fmt.Sprintf("%s %d", a, calls[a]))
		l, ok := limits[a]
		if !ok {
			continue
		}
		ideal = math.Max(ideal, math.Max(0, float64(calls[a])-l.Burst)/l.Refill)
	}
	fmt.Println()
	fmt.Println(plan100kHeader)
	ratio := "—"
	if ideal > 0 {
		ratio = fmt.Sprintf("%.2f", pr.wall.Seconds()/ideal)
	}
	phase := func(msg, field string) float64 { return logField(pr.stderr, msg, field) / 1000 }
	throttled := 0
	for _, st := range ep.Limiter.Stats() {
		throttled += st.Throttled
	}
	up := ep.Upstream()["ec2:DescribeSnapshots"]
	fmt.Fprintf(os.Stderr, "bench: plan100k: %d calls throttled by the endpoint; the simulator answered DescribeSnapshots in %.1f s over %d calls\n",
		throttled, up.Total.Seconds(), up.Calls)
	fmt.Printf("| plan100k | %d | %d | %d | %.1f | %.1f | %s | %s | %.1f / %.1f / %.1f | %.0f | %.1f | %d / %d |\n", s.volumes, s.volumes*snapshotsPerVolume, expired,
		pr.wall.Seconds(), ideal, ratio, strings.Join(parts, ", "),
		phase("planned", "listing"), phase("planned", "deciding"), phase("enqueued", "sending"), float64(pr.maxRSS)/1024, pr.cpu.Seconds(),
		jsonInt(plan["snapshot_jobs"]), jsonInt(plan["delete_jobs"]))
	if n := jsonInt(plan["delete_jobs"]); n != expired {
		fmt.Fprintf(os.Stderr, "bench: plan100k: %d delete jobs, want %d\n", n, expired)
	}
	return nil
}

// sortedByCount is calls' actions, most calls first.
func sortedByCount(calls map[string]int) []string {
	out := make([]string, 0, len(calls))
	for a := range calls {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if calls[out[i]] != calls[out[j]] {
			return calls[out[i]] > calls[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

// logField is the number field of the first JSON log line of stderr with message msg
// (zerolog writes durations in milliseconds); 0 when there is none.
func logField(stderr []byte, msg, field string) float64 {
	for line := range strings.Lines(string(stderr)) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["message"] != msg {
			continue
		}
		f, _ := m[field].(float64)
		return f
	}
	return 0
}
