// Package report computes snapfleet's coverage report (DESIGN.md §10) from listings only:
// for every configured account and region it lists the instances, the volumes and the
// managed snapshots (three paginated Describe calls, the planner's own listing code), and
// answers which selected volumes have a completed recovery point within their policy's
// every plus a grace (ok, late, missing), which in-use volumes no policy selects
// (unprotected, or opted out by an exclude tag), how many recovery points are
// application-consistent, copied and archived, what failed (dead letters by reason,
// pending and error snapshots), what the snapshots cost a month (an upper bound from the
// sizes AWS reports) and when restores were last drilled. It writes the report as text,
// JSON or one self-contained HTML page; its headline figures are the coverage gauges.
package report

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/recovery"
	"github.com/snapfleet/snapfleet/planner"
)

// EC2 is what the report calls: listings only, with the SDK's signatures.
type EC2 interface {
	ec2.DescribeInstancesAPIClient
	ec2.DescribeVolumesAPIClient
	ec2.DescribeSnapshotsAPIClient
}

// DrillSource gives the restore drills recorded so far (one record per restore); the
// report shows the newest per policy.
type DrillSource interface {
	LastDrills(ctx context.Context) ([]DrillRecord, error)
}

// DrillRecord is one restore of a drill, as `snapfleet drill` keeps it.
type DrillRecord = recovery.Record

// DeadLetter is what the report reads of one dead letter.
type DeadLetter struct {
	Kind, Reason, Account, Region string
}

// Reporter builds the report of a configuration's accounts and regions.
type Reporter struct {
	Config *config.Config
	// Accounts and Regions to report on, resolved by the caller.
	Accounts []string
	Regions  []string
	// EC2 returns the client for an account and region.
	EC2 func(account, region string) EC2
	// Now is the report's clock; zero means time.Now().
	Now time.Time
	// DeadLetters, when Queue is set, are the dead letters of the jobs queue Queue.
	Queue       string
	DeadLetters []DeadLetter
	// EBS, when set, measures the changed blocks of a sample of snapshots per
	// account-region with the EBS direct API (--measure-changes).
	EBS func(account, region string) EBS
	// Drills, when set, gives the drills recorded; nil: none recorded.
	Drills DrillSource
	Log    zerolog.Logger
}

// Build lists every account and region, planner.Parallel at a time (each has its own
// Describe buckets at AWS), and computes the report. An account-region whose listing
// failed is left out and named in Errors; the error is for bad usage or cancellation.
func (r *Reporter) Build(ctx context.Context) (*Report, error) {
	switch {
	case r.Config == nil:
		return nil, errors.New("reporting: no config")
	case r.EC2 == nil:
		return nil, errors.New("reporting: no EC2 client factory")
	case len(r.Accounts) == 0 || len(r.Regions) == 0:
		return nil, errors.New("reporting: no account or no region")
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	scopes := make([]*Scope, 0, len(r.Accounts)*len(r.Regions))
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		fail     []Failure
		measured []*Measured
		mfail    []Failure
	)
	sem := make(chan struct{}, planner.Parallel)
	for _, account := range r.Accounts {
		for _, region := range r.Regions {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				sc, err := List(ctx, r.EC2(account, region), r.Config, account, region, r.EBS != nil)
				var m *Measured
				var merr error
				if err == nil && r.EBS != nil {
					m, merr = sc.measure(ctx, r.EBS(account, region))
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					r.Log.Error().Err(err).Str("account", account).Str("region", region).Msg("reporting failed")
					fail = append(fail, Failure{Account: account, Region: region, Error: err.Error()})
					return
				}
				scopes = append(scopes, sc)
				if merr != nil {
					r.Log.Error().Err(merr).Str("account", account).Str("region", region).Msg("measuring changed blocks failed")
					mfail = append(mfail, Failure{Account: account, Region: region, Error: merr.Error()})
				} else if m != nil {
					measured = append(measured, m)
				}
			})
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(scopes, func(i, j int) bool {
		return scopes[i].Account+"/"+scopes[i].Region < scopes[j].Account+"/"+scopes[j].Region
	})
	rep := Compute(scopes, r.Config, now)
	sort.Slice(fail, func(i, j int) bool { return fail[i].Account+fail[i].Region < fail[j].Account+fail[j].Region })
	rep.Errors = append(rep.Errors, fail...)
	if r.EBS != nil {
		addMeasured(&rep.Cost, measured, mfail)
		rep.Errors = append(rep.Errors, mfail...)
	}
	rep.Accounts, rep.Regions = len(r.Accounts), len(r.Regions)
	if r.Queue != "" {
		rep.Failures.DeadLetters = deadLetters(r.Queue, r.DeadLetters)
		rep.Headline.DeadLetters = rep.Failures.DeadLetters.Total
	}
	drills, err := r.lastDrills(ctx)
	if err != nil {
		rep.Errors = append(rep.Errors, Failure{Error: fmt.Sprintf("reading drill records: %v", err)})
	}
	rep.Drills = lastDrillPerPolicy(r.Config, drills)
	return rep, nil
}

func (r *Reporter) lastDrills(ctx context.Context) ([]DrillRecord, error) {
	if r.Drills == nil {
		return nil, nil
	}
	return r.Drills.LastDrills(ctx)
}

// Failure is an account-region (or a source) the report could not read.
type Failure struct {
	Account string `json:"account,omitempty"`
	Region  string `json:"region,omitempty"`
	Error   string `json:"error"`
}
