package main

// The drill scenario: `snapfleet drill` over four account-regions of the simulator, its
// volume.drill jobs worked by `snapfleet work` processes through the limits-faithful
// endpoint; η of CreateVolume (restores done ÷ restores the CreateVolume buckets allowed in
// the window), throttles, dead letters and the volumes left behind.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// drillName is the drill scenario's name, for -only.
const drillName = "drill/4"

// measureDrill runs a drill of 500 × scale recovery points (one managed snapshot of each
// volume) over 4 account-regions with 4 workers and prints its row.
func measureDrill(ctx context.Context, o options, w *world, ep *awslimits.Server, dir string, idx int) error {
	if w.sim == nil {
		fmt.Fprintln(os.Stderr, "bench: the drill scenario runs on the simulator only (it seeds snapshots and counts the volumes left there)")
		return nil
	}
	sc, per, cfgPath, err := w.drillFleet(ctx, o, dir, idx)
	if err != nil {
		return err
	}
	q, dlq, err := w.queues(ctx, fmt.Sprintf("drill%d", idx))
	if err != nil {
		return err
	}
	e := w.env(ep)
	ep.Reset()
	dr := snapfleet(ctx, o, e, "drill", "--config", cfgPath, "--queue", q, "--sample", strconv.Itoa(per), "--seed", "1", "--output", "json")
	var plan drillSummary
	if err := json.Unmarshal(dr.stdout, &plan); err != nil || dr.code != 0 {
		return fmt.Errorf("drill exit %d: %s", dr.code, tail(dr.stderr))
	}
	t0 := ep.Now()
	work, _, err := runWorkers(ctx, o, e, sc.workers, "--config", cfgPath, "--queue", q, "--idle-exit", "2s",
		"--concurrency", strconv.Itoa(o.concurrency))
	processed := work["processed"]
	if err != nil {
		return err
	}
	lim := awslimits.DefaultLimits()["CreateVolume"]
	window := max(10*time.Second, time.Duration(float64(per-int(lim.Burst))/lim.Refill*float64(time.Second)))
	doneBy, done := ep.DoneBy(t0.Add(window)), ep.Done()
	minEta, sumDone, sumAllowed, left := math.Inf(1), 0.0, 0.0, 0
	var deleted int
	for _, s := range sc.scopes {
		allowed := lim.Ceiling(per, t0, t0.Add(window))
		d := math.Min(float64(doneBy[awslimits.Done{Account: s.account, Region: s.region, Action: "CreateVolume"}]), allowed)
		minEta = math.Min(minEta, d/allowed)
		sumDone += d
		sumAllowed += allowed
		deleted += done[awslimits.Done{Account: s.account, Region: s.region, Action: "DeleteVolume"}]
		left += len(w.sim.Volumes(s.account, s.region))
	}
	throttled := map[string]int{}
	var last time.Time
	for _, st := range ep.Limiter.Stats() {
		throttled[st.Bucket] += st.Throttled
		if st.Bucket == "DeleteVolume" && st.Last.After(last) {
			last = st.Last
		}
	}
	dl, err := sqs.NewFromConfig(base(w.endpoint, mototest.Region)).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(dlq), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		return err
	}
	var thr []string
	for _, b := range []string{"CreateVolume", "DeleteVolume", "DescribeVolumes", "DescribeSnapshots"} {
		thr = append(thr, fmt.Sprintf("%s %d", b, throttled[b]))
	}
	fmt.Printf("| %s | %d | %d restores enqueued, %d processed | %d workers | ideal %.0f s | done %.1f s | η CreateVolume %.2f / %.2f | deleted %d, left %d | throttled %s | dead letters %s |\n",
		sc.name, len(sc.scopes), plan.Enqueued, processed, sc.workers, window.Seconds(), last.Sub(t0).Seconds(), minEta, sumDone/sumAllowed,
		deleted, left, strings.Join(thr, ", "), dl.Attributes["ApproximateNumberOfMessages"])
	return nil
}

// drillSummary is what the bench reads of `snapfleet drill --output json`.
type drillSummary struct {
	Drill    string `json:"drill"`
	Enqueued int    `json:"enqueued"`
}

// drillFleet builds the drill scenario's fleet on the simulator — 4 account-regions of 500
// × scale / 4 volumes, each with one managed snapshot — and its config.
func (w *world) drillFleet(ctx context.Context, o options, dir string, idx int) (scenario, int, string, error) {
	per := max(1, int(math.Round(500*o.scale/4)))
	sc := scenario{name: drillName, workers: 4}
	for _, a := range []string{"811111111111", "822222222222"} {
		for _, r := range []string{"eu-south-1", "me-south-1"} {
			sc.scopes = append(sc.scopes, scope{a, r, per})
		}
	}
	for _, s := range sc.scopes {
		if err := w.build(ctx, s); err != nil {
			return sc, 0, "", err
		}
		for _, vol := range w.volumes[s] {
			w.sim.AddSnapshot(s.account, s.region, vol, time.Now().Add(-time.Hour), map[string]string{
				tag.Policy: config.DefaultPolicyName, tag.Volume: vol, tag.AutoBackup: "true"})
		}
	}
	cfgPath := filepath.Join(dir, fmt.Sprintf("config-%d.yaml", idx))
	return sc, per, cfgPath, writeConfig(cfgPath, sc)
}
