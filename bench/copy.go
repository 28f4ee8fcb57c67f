package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
	"github.com/snapfleet/snapfleet/internal/testbed/sim"
)

// The copy/N scenario: N completed snapshots in one account-region, one policy copying
// them to one destination region whose copies take -copy-time in the simulator.
const (
	copySource = "eu-south-1"
	copyDest   = "eu-south-2"
)

// copyName is the scenario's name, for -only.
func copyName(n int) string { return fmt.Sprintf("copy/%d", n) }

// copyCount is how many snapshots copy/N copies: -copies, or 2,000 at -scale.
func copyCount(o options) int {
	if o.copies > 0 {
		return o.copies
	}
	return max(1, int(math.Round(2000*o.scale)))
}

// copySample is what the sampler saw of the destination's copies.
type copySample struct {
	mu              sync.Mutex
	samples, maxNow int
	first, last     time.Time // when the first copy started, and when the last did
}

// runCopy plans the copies once, runs one worker until the queue is empty and prints
// the copies in progress (sampled every 100 ms: never more than 20), η = copies started ÷
// what the 20-slot limit allowed between the first start and the last, and the plan's
// listing calls at the destination.
func runCopy(ctx context.Context, o options, w *world, ep *awslimits.Server, dir string) error {
	if w.sim == nil {
		return errors.New("copy/: needs -ec2 sim (its copies take -copy-time)")
	}
	n := copyCount(o)
	if o.copyTime == 0 {
		o.copyTime = max(5*time.Second, time.Duration(float64(time.Minute)*o.scale))
	}
	w.sim.SetCopyTime(o.copyTime)
	defer w.sim.SetCopyTime(0)
	at := time.Now().UTC().Add(-time.Hour)
	for _, in := range w.sim.AddInstances(ownAccount, copySource, n, 1, "stopped", nil) {
		vol := in.Devices[0].Volume
		w.sim.AddSnapshot(ownAccount, copySource, vol, at, map[string]string{tag.Policy: "copy", tag.Volume: vol})
	}
	cfgPath := filepath.Join(dir, "config-copy.yaml")
	cfg := fmt.Sprintf("regions: [%s]\npolicies:\n  - name: copy\n    retain: {max_age: 365d}\n    copy: [{region: %s, retain: {max_age: 365d}}]\n", copySource, copyDest)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	q, _, err := w.queues(ctx, "copy")
	if err != nil {
		return err
	}
	e := w.env(ep)
	r := snapfleet(ctx, o, e, "plan", "--config", cfgPath, "--queue", q, "--output", "json")
	if r.code != 0 {
		return fmt.Errorf("plan exit %d: %s", r.code, tail(r.stderr))
	}
	var plan struct {
		CopyJobs int `json:"copy_jobs"`
		Scopes   []struct {
			Account, Region string
			Destination     bool
			Listings        int
		}
	}
	if err := json.Unmarshal(r.stdout, &plan); err != nil {
		return fmt.Errorf("plan output: %w", err)
	}
	listings := -1
	for _, s := range plan.Scopes {
		if s.Destination && s.Region == copyDest {
			listings = s.Listings
		}
	}
	before := w.sim.CopiesStarted()
	s := &copySample{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go sampleCopies(w.sim, before, n, s, stop, done)
	wr := snapfleet(ctx, o, e, "work", "--config", cfgPath, "--queue", q, "--idle-exit", "3s", "--visibility", "30s",
		"--concurrency", fmt.Sprint(o.concurrency), "--output", "json")
	close(stop)
	<-done
	if wr.code != 0 {
		return fmt.Errorf("work exit %d: %s", wr.code, tail(wr.stderr))
	}
	var st map[string]int
	_ = json.Unmarshal(wr.stdout, &st)
	started := w.sim.CopiesStarted() - before
	window := s.last.Sub(s.first)
	allowed := float64(sim.MaxCopiesInProgress) * (window.Seconds()/o.copyTime.Seconds() + 1)
	eta := float64(started) / math.Max(1, allowed)
	fmt.Printf("\n%s (copies take %s): copy jobs %d, copies started %d, in progress at most %d (%d samples; the simulator's peak %d), "+
		"first to last start %s, the 20-slot limit allowed %.0f, η %.2f; plan listings at the destination %d; dead letters %d, work %s\n",
		copyName(n), o.copyTime, plan.CopyJobs, started, s.maxNow, s.samples, w.sim.PeakCopies(ownAccount, copyDest),
		window.Round(100*time.Millisecond), allowed, eta, listings, st["dead_lettered"], wr.wall.Round(100*time.Millisecond))
	return nil
}

// sampleCopies samples the copies in progress at the destination every 100 ms until stop,
// and when the first and the n-th copy (counted from before) started.
func sampleCopies(s *sim.Sim, before, n int, out *copySample, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		k, started := s.CopiesInProgress(ownAccount, copyDest), s.CopiesStarted()-before
		out.mu.Lock()
		out.samples++
		out.maxNow = max(out.maxNow, k)
		if started > 0 && out.first.IsZero() {
			out.first = now
		}
		if started >= n && out.last.IsZero() {
			out.last = now
		}
		out.mu.Unlock()
	}
}
