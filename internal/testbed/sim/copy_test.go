package sim_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/testbed/sim"
)

// TestCopies: copies complete after the configured time; a 21st copy in progress in one
// region is refused with ResourceLimitExceeded; the tier calls show in DescribeSnapshots.
func TestCopies(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	clock := t0
	s := sim.New(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	url, stop, err := s.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	s.SetCopyTime(time.Minute)
	ctx := context.Background()
	ins := s.AddInstances(sim.DefaultAccount, region, 1, 1, "", nil)
	src := s.AddSnapshot(sim.DefaultAccount, region, ins[0].Devices[0].Volume, t0.Add(-time.Hour), map[string]string{"snapfleet:policy": "daily"})
	cfg := config(url)
	cfg.Region = "us-west-2"
	dst := ec2.NewFromConfig(cfg)
	for i := range sim.MaxCopiesInProgress {
		if _, err := dst.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceRegion: aws.String(region), SourceSnapshotId: aws.String(src),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("snapfleet:source"), Value: aws.String(src)}}}}}); err != nil {
			t.Fatalf("copy %d: %v", i+1, err)
		}
	}
	_, err = dst.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceRegion: aws.String(region), SourceSnapshotId: aws.String(src)})
	if c := code(t, err); c != "ResourceLimitExceeded" {
		t.Fatalf("21st copy: %s, want ResourceLimitExceeded", c)
	}
	if n := s.CopiesInProgress(sim.DefaultAccount, "us-west-2"); n != 20 {
		t.Errorf("%d copies in progress, want 20", n)
	}
	out, err := dst.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []types.Filter{{Name: aws.String("status"), Values: []string{"pending"}}}})
	if err != nil || len(out.Snapshots) != 20 || out.Snapshots[0].Tags == nil {
		t.Fatalf("pending copies: %d, %v", len(out.Snapshots), err)
	}
	mu.Lock()
	clock = clock.Add(time.Minute)
	mu.Unlock()
	if n := s.CopiesInProgress(sim.DefaultAccount, "us-west-2"); n != 0 {
		t.Errorf("%d copies in progress a minute later, want 0", n)
	}
	id := out.Snapshots[0].SnapshotId
	if _, err := dst.ModifySnapshotTier(ctx, &ec2.ModifySnapshotTierInput{SnapshotId: id, StorageTier: types.TargetStorageTierArchive}); err != nil {
		t.Fatal(err)
	}
	got, err := dst.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(id)}})
	if err != nil || got.Snapshots[0].StorageTier != types.StorageTierArchive || got.Snapshots[0].State != types.SnapshotStateCompleted {
		t.Fatalf("after ModifySnapshotTier: %+v, %v", got.Snapshots, err)
	}
	if s.PeakCopies(sim.DefaultAccount, "us-west-2") != 20 || s.CopiesStarted() != 20 {
		t.Errorf("peak %d, started %d; want 20, 20", s.PeakCopies(sim.DefaultAccount, "us-west-2"), s.CopiesStarted())
	}
}
