package cloud

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TierAPI is what RestoreFromArchive calls: *ec2.Client is one.
type TierAPI interface {
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DescribeSnapshotTierStatus(ctx context.Context, in *ec2.DescribeSnapshotTierStatusInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotTierStatusOutput, error)
	RestoreSnapshotTier(ctx context.Context, in *ec2.RestoreSnapshotTierInput, optFns ...func(*ec2.Options)) (*ec2.RestoreSnapshotTierOutput, error)
}

// MaxRestoreTime is how long AWS may take to restore an archived snapshot.
const MaxRestoreTime = 72 * time.Hour

// TierState is where a snapshot stands for a restore: ready to make a volume from, or
// being restored from the archive tier.
type TierState struct {
	Snapshot string `json:"snapshot"`
	// Tier is standard or archive.
	Tier string `json:"tier"`
	// Ready: a volume can be made from it now (standard tier, or restored).
	Ready bool `json:"ready"`
	// Restoring: a restore from the archive is in progress; StartedAt is when it began
	// and ReadyBy when it will be ready at the latest (AWS: up to 72 hours).
	Restoring bool      `json:"restoring,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	ReadyBy   time.Time `json:"ready_by,omitzero"`
	// Started: this call started the restore (RestoreSnapshotTier).
	Started bool `json:"started,omitempty"`
	// ExpiresAt: a temporary restore goes back to the archive then.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// RestoreFromArchive makes an archived snapshot usable: a snapshot in the standard tier is
// ready (ExpiresAt says when a temporary restore ends); an archived one being restored
// says when it will be ready; any other archived one gets a temporary restore of days
// days (RestoreSnapshotTier), started now. Run again, it reports the same restore until
// the snapshot is ready — `snapfleet restore` continues then.
func RestoreFromArchive(ctx context.Context, api TierAPI, snapshot string, days int32) (TierState, error) {
	st := TierState{Snapshot: snapshot}
	out, err := api.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapshot}})
	if err != nil {
		return st, fmt.Errorf("reading snapshot %s: %w", snapshot, err)
	}
	if len(out.Snapshots) != 1 {
		return st, fmt.Errorf("reading snapshot %s: %d snapshots answered", snapshot, len(out.Snapshots))
	}
	sn := out.Snapshots[0]
	st.Tier, st.ExpiresAt = string(sn.StorageTier), aws.ToTime(sn.RestoreExpiryTime)
	if sn.StorageTier != types.StorageTierArchive {
		st.Tier, st.Ready = string(types.StorageTierStandard), true
		return st, nil
	}
	status, err := api.DescribeSnapshotTierStatus(ctx, &ec2.DescribeSnapshotTierStatusInput{
		Filters: []types.Filter{{Name: aws.String("snapshot-id"), Values: []string{snapshot}}}})
	if err != nil {
		return st, fmt.Errorf("reading the tier status of snapshot %s: %w", snapshot, err)
	}
	for _, s := range status.SnapshotTierStatuses {
		op := string(s.LastTieringOperationStatus)
		if aws.ToString(s.SnapshotId) == snapshot && strings.HasSuffix(op, "-restore-in-progress") {
			st.Restoring, st.StartedAt = true, aws.ToTime(s.LastTieringStartTime)
			st.ReadyBy = st.StartedAt.Add(MaxRestoreTime)
			return st, nil
		}
	}
	if days < 1 {
		return st, fmt.Errorf("restoring snapshot %s: %d days is not a temporary restore", snapshot, days)
	}
	r, err := api.RestoreSnapshotTier(ctx, &ec2.RestoreSnapshotTierInput{SnapshotId: aws.String(snapshot), TemporaryRestoreDays: aws.Int32(days)})
	if err != nil {
		return st, fmt.Errorf("restoring snapshot %s from the archive tier: %w", snapshot, err)
	}
	st.Started, st.Restoring, st.StartedAt = true, true, aws.ToTime(r.RestoreStartTime)
	st.ReadyBy = st.StartedAt.Add(MaxRestoreTime)
	return st, nil
}
