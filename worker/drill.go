package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/recovery"
)

// Drill configures the handler of volume.drill jobs: restore a recovery point into a
// throw-away volume tagged with the drill id, wait until it is available, delete it, and
// record how it went.
type Drill struct {
	// EC2 returns the client for an account and region.
	EC2 func(account, region string) recovery.DrillAPI
	// Record keeps a restore's result (the embedded queue's journal, an EventBridge
	// event); it is called once per job that ran to a result, failed restores included.
	Record func(ctx context.Context, r recovery.Record)
	// Timeout bounds the wait for a volume to become available (default 30 min); Interval
	// is how often it is read (default 2 s).
	Timeout, Interval time.Duration

	// zones caches the zone drills restore in, per account-region.
	zones sync.Map
}

// Drilled: a drill job restored its snapshot (or failed to, which its record says) and
// deleted the volume.
const Drilled Action = "drilled"

// register adds the volume.drill handler to m.
func (d *Drill) register(m *Mux, s *snapshots) {
	m.RegisterFunc(job.KindDrill, func(ctx context.Context, j job.Job) (Result, error) { return d.handle(ctx, s, j) })
}

// handle runs one drill job. The snapshot is read again (the message is a hint); one that
// is gone is skipped. A throttled call snoozes the job (it takes the volume it made over
// when it comes back); a restore that fails is a result, recorded, not a job failure.
func (d *Drill) handle(ctx context.Context, s *snapshots, j job.Job) (Result, error) {
	api := d.EC2(j.Account, j.Region)
	var points []recovery.Point
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		points, err = recovery.List(ctx, []recovery.Scope{{Account: j.Account, Region: j.Region, EC2: api}}, recovery.Selector{Snapshot: j.Snapshot})
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("reading snapshot %s: %w", j.Snapshot, err)
	}
	if len(points) == 0 {
		return Result{}, Skip(reason.SnapshotGone)
	}
	p := points[0]
	if p.Policy == "" {
		p.Policy = j.Policy
	}
	timeout, interval := d.Timeout, d.Interval
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	if interval <= 0 {
		interval = 2 * time.Second
	}
	az, err := d.zone(ctx, s, api, j.Account, j.Region)
	if err != nil {
		return Result{}, err
	}
	var rec recovery.Record
	err = s.call(ctx, func(ctx context.Context) error {
		var err error
		rec, err = recovery.Drill(ctx, api, p, j.Drill, az, s.now(), interval, timeout)
		return err
	})
	if errors.Is(err, recovery.ErrNotDrillVolume) {
		return Result{}, Permanent(reason.RefusedNotDrill, err)
	}
	if err != nil {
		return Result{}, err
	}
	if d.Record != nil {
		d.Record(ctx, rec)
	}
	return Result{Action: Drilled, Snapshot: j.Snapshot}, nil
}

// zone is the zone drills restore in, in account and region: the region's first
// available zone, read once.
func (d *Drill) zone(ctx context.Context, s *snapshots, api recovery.DrillAPI, account, region string) (string, error) {
	key := account + "/" + region
	if az, ok := d.zones.Load(key); ok {
		return az.(string), nil
	}
	var az string
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		az, err = recovery.FirstZone(ctx, api)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("finding a zone to drill in %s: %w", key, err)
	}
	d.zones.Store(key, az)
	return az, nil
}
