package report

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// fakeEC2 is one account-region: one running instance with one volume and its snapshots,
// or a listing error.
type fakeEC2 struct {
	account string
	fail    error
	snaps   []types.Snapshot
}

func (f *fakeEC2) DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: []types.Instance{{
		InstanceId: aws.String("i-0123456789abcdef0"), State: &types.InstanceState{Name: types.InstanceStateNameRunning},
		Tags: []types.Tag{{Key: aws.String("Backup"), Value: aws.String("true")}},
		BlockDeviceMappings: []types.InstanceBlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"),
			Ebs: &types.EbsInstanceBlockDevice{VolumeId: aws.String("vol-0123456789abcdef0")}}}}}}}}, nil
}

func (f *fakeEC2) DescribeVolumes(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	return &ec2.DescribeVolumesOutput{Volumes: []types.Volume{{VolumeId: aws.String("vol-0123456789abcdef0"), State: types.VolumeStateInUse}}}, nil
}

func (f *fakeEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	// Two pages: the report must follow NextToken.
	if in.NextToken == nil && len(f.snaps) > 1 {
		return &ec2.DescribeSnapshotsOutput{Snapshots: f.snaps[:1], NextToken: aws.String("2")}, nil
	}
	if in.NextToken != nil {
		return &ec2.DescribeSnapshotsOutput{Snapshots: f.snaps[1:]}, nil
	}
	return &ec2.DescribeSnapshotsOutput{Snapshots: f.snaps}, nil
}

func snapOf(id, owner string, start time.Time) types.Snapshot {
	return types.Snapshot{SnapshotId: aws.String(id), OwnerId: aws.String(owner), VolumeId: aws.String("vol-0123456789abcdef0"),
		StartTime: aws.Time(start), State: types.SnapshotStateCompleted, VolumeSize: aws.Int32(1),
		Tags: []types.Tag{{Key: aws.String("snapfleet:policy"), Value: aws.String("daily")}}}
}

// TestBuild: every account-region is listed (snapshots across pages, other owners'
// ignored) and counted under its account; one whose listing fails is left out and named
// in Errors, without failing the others.
func TestBuild(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "")
	fakes := map[string]*fakeEC2{
		"111111111111": {account: "111111111111", snaps: []types.Snapshot{
			snapOf("snap-0000000000000000a", "111111111111", now.Add(-40*time.Hour)),
			snapOf("snap-0000000000000000b", "111111111111", now.Add(-time.Hour))}},
		"222222222222": {account: "222222222222", snaps: []types.Snapshot{
			snapOf("snap-0000000000000000c", "999999999999", now.Add(-time.Hour))}}, // another owner's: missing
		"333333333333": {account: "333333333333", fail: errors.New("AccessDenied")},
	}
	r := &Reporter{Config: cfg, Accounts: []string{"111111111111", "222222222222", "333333333333"}, Regions: []string{"us-east-1"}, Now: now,
		EC2: func(account, _ string) EC2 { return fakes[account] }}
	rep, err := r.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ByAccount) != 2 || rep.ByAccount[0] != (StatusCount{Key: "111111111111", OK: 1}) ||
		rep.ByAccount[1] != (StatusCount{Key: "222222222222", Missing: 1}) {
		t.Errorf("by account %+v", rep.ByAccount)
	}
	if rep.RecoveryPoints.Total != 2 || rep.Headline.VolumesOK != 1 || rep.Headline.VolumesMissing != 1 {
		t.Errorf("recovery points %+v, headline %+v", rep.RecoveryPoints, rep.Headline)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].Account != "333333333333" || !strings.Contains(rep.Errors[0].Error, "AccessDenied") {
		t.Errorf("errors %+v, want 333333333333's listing", rep.Errors)
	}
	if rep.Accounts != 3 || rep.Cost.Measured != nil {
		t.Errorf("accounts %d, measured %+v", rep.Accounts, rep.Cost.Measured)
	}
}
