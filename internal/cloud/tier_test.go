package cloud

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

var _ TierAPI = (*ec2.Client)(nil)

// TestRestoreFromArchive: through the moto wrapper's tier calls, a standard snapshot is
// ready; an archived one gets a temporary restore and says when it will be ready; once
// restored (moto restores at once) it is ready until its expiry.
func TestRestoreFromArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mototest.Start(t)
	f := testfleet.New(t, s)
	snap := f.Snapshot(ctx, f.Volume(ctx), time.Hour, nil)
	st, err := RestoreFromArchive(ctx, f.EC2, snap, 3)
	if err != nil || !st.Ready || st.Started || st.Tier != "standard" {
		t.Fatalf("standard: %+v, %v", st, err)
	}
	if _, err := f.EC2.ModifySnapshotTier(ctx, &ec2.ModifySnapshotTierInput{SnapshotId: aws.String(snap), StorageTier: types.TargetStorageTierArchive}); err != nil {
		t.Fatal(err)
	}
	st, err = RestoreFromArchive(ctx, f.EC2, snap, 3)
	if err != nil || st.Ready || !st.Started || !st.Restoring || st.Tier != "archive" || st.ReadyBy.Sub(st.StartedAt) != MaxRestoreTime {
		t.Fatalf("archived: %+v, %v; want a restore started, ready within 72h", st, err)
	}
	st, err = RestoreFromArchive(ctx, f.EC2, snap, 3)
	if err != nil || !st.Ready || st.Started || time.Until(st.ExpiresAt) < 71*time.Hour {
		t.Fatalf("restored: %+v, %v; want ready until about 3 days from now", st, err)
	}
}

// inProgress is an archived snapshot whose restore is in progress.
type inProgress struct{ restores int }

func (p *inProgress) DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{{SnapshotId: aws.String("snap-00000001"), StorageTier: types.StorageTierArchive}}}, nil
}

func (p *inProgress) DescribeSnapshotTierStatus(context.Context, *ec2.DescribeSnapshotTierStatusInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotTierStatusOutput, error) {
	return &ec2.DescribeSnapshotTierStatusOutput{SnapshotTierStatuses: []types.SnapshotTierStatus{{SnapshotId: aws.String("snap-00000001"),
		LastTieringOperationStatus: types.TieringOperationStatusTemporaryRestoreInProgress, LastTieringStartTime: aws.Time(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))}}}, nil
}

func (p *inProgress) RestoreSnapshotTier(context.Context, *ec2.RestoreSnapshotTierInput, ...func(*ec2.Options)) (*ec2.RestoreSnapshotTierOutput, error) {
	p.restores++
	return &ec2.RestoreSnapshotTierOutput{}, nil
}

// TestRestoreInProgress: a second run during a restore starts no other one and says when
// the first will be ready.
func TestRestoreInProgress(t *testing.T) {
	t.Parallel()
	p := &inProgress{}
	st, err := RestoreFromArchive(context.Background(), p, "snap-00000001", 3)
	if err != nil || !st.Restoring || st.Started || p.restores != 0 || !st.ReadyBy.Equal(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("%+v, %v, %d restores; want the restore in progress, ready by 2026-11-25", st, err, p.restores)
	}
}
