package planner

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// volumeMadeLate is an EC2 whose snapshot listing starts only once the (unfiltered)
// volume listing has ended and make has run: make creates a volume and its snapshot,
// which the snapshot listing then sees and the volume listing did not.
type volumeMadeLate struct {
	EC2
	make   func()
	once   sync.Once
	listed chan struct{}
}

func (m *volumeMadeLate) DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, opts ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	out, err := m.EC2.DescribeVolumes(ctx, in, opts...)
	if err == nil && len(in.Filters) == 0 && out.NextToken == nil {
		m.once.Do(func() { m.make(); close(m.listed) })
	}
	return out, err
}

func (m *volumeMadeLate) DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	select {
	case <-m.listed:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return m.EC2.DescribeSnapshots(ctx, in, opts...)
}

// TestVolumeMadeDuringListing: the volumes are listed alongside the snapshots. A volume
// made after its listing passed, whose snapshot the snapshot listing then sees, is asked
// for again once the snapshots are listed: it is no orphan, and its only snapshot keeps
// the live floor (min_keep 1) instead of the orphans' (0), which would delete it.
func TestVolumeMadeDuringListing(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	cfg := mustConfig(t, "policies: [{name: daily, retain: {max_age: 2d, min_keep: 1}, orphans: {min_keep: 0}}]\n")
	var vol, snap string
	late := &volumeMadeLate{EC2: listingsChecked{f.client(mototest.Region), t}, listed: make(chan struct{}), make: func() {
		vol = f.Volume(f.ctx)
		snap = f.snapshot(vol, 10*24*time.Hour, map[string]string{tag.Policy: "daily", tag.Volume: vol})
	}}
	p := f.planner(cfg, []string{mototest.Region}, nil, nil, time.Now())
	p.EC2 = func(string, string) EC2 { return late }
	p.DryRun = true
	sum, err := p.Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Orphans != 0 || sum.DeleteJobs != 0 || sum.Errors != 0 {
		t.Fatalf("plan: %d orphans, %d deletes, %d errors; want %s of %s (made during the listing) kept as a live volume's: %+v",
			sum.Orphans, sum.DeleteJobs, sum.Errors, snap, vol, sum.Decisions)
	}
	if got := detailed(sum.Decisions); got[snap] == "" {
		t.Fatalf("decisions %v: %s not listed", got, snap)
	}
}
