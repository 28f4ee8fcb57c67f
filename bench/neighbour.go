package main

// The neighbour: another client of the same account-region (a console, Terraform, other
// automation) that spends part of its CreateSnapshot and DescribeSnapshots buckets while
// snapfleet runs. snapfleet must lose nothing and dead-letter nothing; its η is judged
// against what the neighbour left (BENCHMARKS.md).

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
)

// neighbourVolumes is how many volumes the neighbour snapshots in turn: at 2 creates a
// second, each volume is asked again after 20 s, past the per-volume 15 s.
const neighbourVolumes = 40

// neighbour is what the neighbour did.
type neighbour struct {
	mu        sync.Mutex
	created   []time.Time // when each of its CreateSnapshot calls succeeded
	calls     map[string]int
	throttled map[string]int
}

// createdBy is how many of its creates succeeded by t.
func (n *neighbour) createdBy(t time.Time) int {
	if n == nil {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, at := range n.created {
		if !at.After(t) {
			c++
		}
	}
	return c
}

// startNeighbour makes the neighbour's volumes in s (on stopped instances: the default
// policy does not select them) and starts it: rate CreateSnapshot and rate
// DescribeSnapshots calls a second through the endpoint, not retried when throttled,
// until stop is called or until says snapfleet is done.
func (w *world) startNeighbour(ctx context.Context, ep *awslimits.Server, s scope, rate float64, until func(*neighbour) bool) (stop func() *neighbour) {
	var vols []string
	for _, in := range w.sim.AddInstances(s.account, s.region, neighbourVolumes, 1, "stopped", nil) {
		vols = append(vols, in.Devices[0].Volume)
	}
	cfg := base(ep.URL, s.region)
	cfg.RetryMaxAttempts = 1
	cl := ec2.NewFromConfig(cfg)
	n := &neighbour{calls: map[string]int{}, throttled: map[string]int{}}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	record := func(action string, err error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.calls[action]++
		if err != nil {
			n.throttled[action]++
		} else if action == "CreateSnapshot" {
			n.created = append(n.created, time.Now())
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if until(n) {
				return
			}
			vol := vols[i%len(vols)]
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := cl.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
				if ctx.Err() == nil {
					record("CreateSnapshot", err)
				}
			}()
			go func() {
				defer wg.Done()
				_, err := cl.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
					Filters: []ec2types.Filter{{Name: aws.String("volume-id"), Values: []string{vol}}}})
				if ctx.Err() == nil {
					record("DescribeSnapshots", err)
				}
			}()
		}
	}()
	return func() *neighbour {
		cancel()
		wg.Wait()
		return n
	}
}

// snapfleetDone reports whether snapfleet's creates in s all took effect: those the
// endpoint counted less the neighbour's.
func snapfleetDone(ep *awslimits.Server, s scope) func(*neighbour) bool {
	return func(n *neighbour) bool {
		got := ep.Done()[awslimits.Done{Account: s.account, Region: s.region, Action: "CreateSnapshot"}]
		return got-n.createdBy(time.Now()) >= s.volumes
	}
}
