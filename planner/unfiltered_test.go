package planner

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
)

// listingsChecked is the planner's EC2 in the tests through moto (fleet.planner): a
// listing that would take EC2's bucket of unfiltered and unpaginated calls (50, refilled
// at 10 per second: DESIGN.md §8) fails the test. The planner lists by filter, by id or by
// page, never the whole of an action unfiltered.
type listingsChecked struct {
	EC2
	t *testing.T
}

func (c listingsChecked) check(in any) {
	if action, unfiltered := awslimits.UnfilteredInput(in); unfiltered {
		c.t.Errorf("the planner made an unfiltered, unpaginated %s (EC2's 50/10 bucket): %+v", action, in)
	}
}

func (c listingsChecked) DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, o ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	c.check(in)
	return c.EC2.DescribeSnapshots(ctx, in, o...)
}

func (c listingsChecked) DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, o ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	c.check(in)
	return c.EC2.DescribeVolumes(ctx, in, o...)
}

func (c listingsChecked) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, o ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	c.check(in)
	return c.EC2.DescribeInstances(ctx, in, o...)
}
