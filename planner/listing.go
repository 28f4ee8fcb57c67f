package planner

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
)

// The planner's listings and selection, for the coverage report (package report), which
// reads the fleet the way the planner does.

// DescribeInstances pages through DescribeInstances with in and reads each instance as
// the planner does.
func DescribeInstances(ctx context.Context, client ec2.DescribeInstancesAPIClient, in *ec2.DescribeInstancesInput) ([]Instance, error) {
	return describeInstances(ctx, client, in)
}

// DescribeSnapshots pages through the caller's own snapshots (OwnerIds self) matching
// filters, calling each for every one listed; the owner must still be checked.
func DescribeSnapshots(ctx context.Context, client ec2.DescribeSnapshotsAPIClient, filters []types.Filter, each func(types.Snapshot)) error {
	return describeSnapshots(ctx, client, filters, each)
}

// SnapshotFrom reads a listed snapshot as the planner does: its policy, volume (the
// snapfleet:volume tag, else VolumeId), job, start time, state, protection.
func SnapshotFrom(s types.Snapshot) Snapshot { return snapshotFrom(s) }

// Selects reports whether policy p selects the instance: its state is one of the
// policy's and every instance tag matches (exclusions are not checked).
func Selects(p *config.Policy, in *Instance) bool { return selects(p, in) }

// VolumeSkip says why p leaves the attached volume a out of its snapshots: an exclude
// tag on the volume (reason excluded), or exclude_boot on the root volume of an instance
// policy (exclude_boot); "" when it is in. The instance's own exclude tags are not checked.
func VolumeSkip(p *config.Policy, in *Instance, a Attachment, volumeTags map[string]map[string]string) string {
	return volumeSkip(p, in, a, volumeTags)
}
