package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
	"github.com/snapfleet/snapfleet/internal/testbed/sim"
)

// coverageBench measures `snapfleet report` (issue 18): a fleet of volumes instances with
// one volume each in one account-region of the simulator, snapshots spread over them (one
// a day back from the report's --now), behind the limits-faithful endpoint. It prints the
// report's wall time and peak memory, the EC2 calls it made by action (listings only), and
// the time the Describe buckets need for those calls: the floor the wall time is judged by.
func coverageBench(ctx context.Context, volumes, snapshots int) error {
	dir, err := os.MkdirTemp("", "snapfleet-bench-coverage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "snapfleet")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/snapfleet")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building snapfleet: %w", err)
	}
	s := sim.New(nil)
	url, stop, err := s.Serve("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stop()
	ep, err := awslimits.New(url, "127.0.0.1:0", awslimits.Options{})
	if err != nil {
		return err
	}
	defer ep.Close()

	const region = "us-east-1"
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	ins := s.AddInstances(ownAccount, region, volumes, 1, "running", nil)
	for i := range snapshots {
		vol := ins[i%len(ins)].Devices[0].Volume
		at := now.Add(-time.Duration(i/len(ins))*24*time.Hour - time.Hour)
		s.AddSnapshot(ownAccount, region, vol, at, map[string]string{tag.Policy: config.DefaultPolicyName, tag.Volume: vol})
	}
	cfgPath := filepath.Join(dir, "snapfleet.yaml")
	if err := os.WriteFile(cfgPath, []byte("regions: ["+region+"]\naccounts:\n  - id: \""+ownAccount+"\"\n"), 0o644); err != nil {
		return err
	}
	w := &world{sim: s, endpoint: url}
	before := ep.Calls()
	o := options{bin: bin}
	r := snapfleet(ctx, o, w.env(ep), "report", "--config", cfgPath, "--now", now.Format(time.RFC3339), "--output", "json")
	if r.code != 0 {
		return fmt.Errorf("report exit %d: %s", r.code, tail(r.stderr))
	}
	var rep struct {
		Headline       map[string]float64  `json:"headline"`
		RecoveryPoints struct{ Total int } `json:"recovery_points"`
	}
	if err := json.Unmarshal(r.stdout, &rep); err != nil {
		return fmt.Errorf("report output: %w", err)
	}
	calls := minus(ep.Calls(), before)
	var floor time.Duration
	limits := awslimits.DefaultLimits()
	var list []string
	for _, k := range slices.Sorted(maps.Keys(calls)) {
		list = append(list, fmt.Sprintf("%s %d", strings.TrimPrefix(k, "ec2:"), calls[k]))
		action := strings.TrimPrefix(k, "ec2:")
		if l, ok := limits[action]; ok && float64(calls[k]) > l.Burst {
			floor = max(floor, time.Duration((float64(calls[k])-l.Burst)/l.Refill*float64(time.Second)))
		}
	}
	var emulator time.Duration
	for _, u := range ep.Upstream() {
		emulator += u.Total
	}
	fmt.Printf("report over %d volumes and %d snapshots (sim behind awslimits): wall %s (the emulator answering: %s), peak RSS %d MiB, bucket floor %s; calls: %s; headline %v, recovery points %d\n",
		volumes, snapshots, r.wall.Round(10*time.Millisecond), emulator.Round(10*time.Millisecond), r.maxRSS/1024, floor.Round(10*time.Millisecond),
		strings.Join(list, ", "), rep.Headline, rep.RecoveryPoints.Total)
	return nil
}
