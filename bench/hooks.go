package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// hooksName is the consistency: application scenario: instances with two volumes each,
// one snapshots.create job per instance running the default hooks through SSM Run
// Command, with latency injected on EC2 and SSM. It reads the freeze window of every
// instance from the simulator's SSM — from the pre hook's invocation answering Success to
// the post hook's SendCommand arriving — and η of the CreateSnapshots bucket.
const hooksName = "hooks/app"

// Latency injected on every EC2 and SSM call of the scenario: hooksLatency plus up to
// hooksJitter, uniform (50 ms on average).
const (
	hooksLatency = 25 * time.Millisecond
	hooksJitter  = 50 * time.Millisecond
)

func runHooks(ctx context.Context, o options, w *world, dir string) error {
	if w.sim == nil {
		fmt.Printf("%s: skipped (-ec2 sim only: the freeze window is read from the simulator's SSM)\n", hooksName)
		return nil
	}
	n := o.hooksInstances
	sc := scope{account: ownAccount, region: "af-south-1", volumes: n} // a region no other scenario uses
	w.sim.AddInstances(sc.account, sc.region, n, o.hooksVolumes, "running", nil)
	ep, err := awslimits.New(w.endpoint, "127.0.0.1:0", awslimits.Options{Latency: hooksLatency, Jitter: hooksJitter, SSMLatency: true})
	if err != nil {
		return err
	}
	defer ep.Close()
	cfgPath := filepath.Join(dir, "config-hooks.yaml")
	cfg := fmt.Sprintf("regions: [%s]\naccounts:\n  - id: %q\npolicies:\n  - name: app\n    consistency: application\n    retain: {max_age: 30d}\n",
		sc.region, sc.account)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	q, dlq, err := w.queues(ctx, "hooks")
	if err != nil {
		return err
	}
	e := append(w.env(ep), "AWS_ENDPOINT_URL_SSM="+ep.URL)
	nowArg := time.Now().UTC().Add(365 * 24 * time.Hour).Format(time.RFC3339)
	ep.Reset()
	if r := snapfleet(ctx, o, e, "plan", "--config", cfgPath, "--queue", q, "--now", nowArg); r.code != 0 {
		return fmt.Errorf("plan exit %d: %s", r.code, tail(r.stderr))
	}
	t0 := ep.Now()
	work, _, err := runWorkers(ctx, o, e, o.hooksWorkers, "--config", cfgPath, "--queue", q, "--now", nowArg,
		"--allow-clock-skew", "--idle-exit", "2s", "--concurrency", strconv.Itoa(o.concurrency))
	if err != nil {
		return err
	}
	windows, missing := freezeWindows(w, sc)
	lim := awslimits.DefaultLimits()[awslimits.BucketCreateSnapshots]
	window := max(10*time.Second, time.Duration(float64(n-int(lim.Burst))/lim.Refill*float64(time.Second)))
	allowed := lim.Ceiling(n, t0, t0.Add(window))
	done := float64(ep.DoneBy(t0.Add(window))[awslimits.Done{Account: sc.account, Region: sc.region, Action: "CreateSnapshots"}])
	fmt.Printf("%s: %d instances × %d volumes, %d workers × --concurrency %d, latency %s + up to %s on every EC2 and SSM call\n",
		hooksName, n, o.hooksVolumes, o.hooksWorkers, o.concurrency, hooksLatency, hooksJitter)
	fmt.Printf("  freeze window (pre Success → post SendCommand): p50 %s  p99 %s  max %s  (%d instances, %d without a window)\n",
		pct(windows, 0.5), pct(windows, 0.99), pct(windows, 1), len(windows), missing)
	fmt.Printf("  η CreateSnapshots: %.2f (%.0f done of %.0f allowed within W = %s)  calls: %v\n",
		math.Min(done, allowed)/allowed, done, allowed, window.Round(time.Second), ep.Calls())
	fmt.Printf("  work: %v  dead letters: %s\n", work, dlqCount(ctx, w, dlq))
	return nil
}

// freezeWindows are the instances' freeze windows, from the simulator's commands: each
// instance's pre (Succeeded) and post (Sent), named by their comments.
func freezeWindows(w *world, sc scope) (windows []time.Duration, missing int) {
	pre, post := map[string]time.Time{}, map[string]time.Time{}
	for _, c := range w.sim.Commands() {
		if c.Account != sc.account || c.Region != sc.region || len(c.Instances) != 1 {
			continue
		}
		switch {
		case strings.HasPrefix(c.Comment, "snapfleet pre ") && !c.Succeeded.IsZero():
			pre[c.Instances[0]] = c.Succeeded
		case strings.HasPrefix(c.Comment, "snapfleet post "):
			post[c.Instances[0]] = c.Sent
		}
	}
	for id, p := range pre {
		if q, ok := post[id]; ok {
			windows = append(windows, q.Sub(p))
		} else {
			missing++
		}
	}
	slices.Sort(windows)
	return windows, missing
}

// pct is the q-quantile of sorted ds (nearest rank), rounded to the millisecond.
func pct(ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		return "—"
	}
	i := min(len(ds)-1, max(0, int(math.Ceil(q*float64(len(ds))))-1))
	return ds[i].Round(time.Millisecond).String()
}

// dlqCount is the dead-letter queue's approximate message count.
func dlqCount(ctx context.Context, w *world, dlq string) string {
	out, err := sqs.NewFromConfig(base(w.endpoint, mototest.Region)).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(dlq), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		return err.Error()
	}
	return out.Attributes["ApproximateNumberOfMessages"]
}
