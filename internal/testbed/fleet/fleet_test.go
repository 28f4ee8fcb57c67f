package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// TestFleet: instances come with their root and data volumes attached where the tests
// expect them, tagged; a snapshot is stamped at the clock's time; another account's
// estate is its own and holds the snapshots made through its role.
func TestFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mototest.Start(t)
	f := New(t, s)
	ins := f.Instances(ctx, 2, 2, map[string]string{"Tier": "db"})
	if len(ins) != 2 {
		t.Fatalf("%d instances, want 2", len(ins))
	}
	d, err := f.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{ins[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	in := d.Reservations[0].Instances[0]
	for _, m := range in.BlockDeviceMappings {
		got[aws.ToString(m.DeviceName)] = aws.ToString(m.Ebs.VolumeId)
	}
	want := map[string]string{RootDevice: ins[0].Root, "/dev/sdf": ins[0].Data[0], "/dev/sdg": ins[0].Data[1]}
	for dev, v := range want {
		if got[dev] != v {
			t.Errorf("%s holds %q, want %q (all: %v)", dev, got[dev], v, got)
		}
	}
	if aws.ToString(in.RootDeviceName) != RootDevice {
		t.Errorf("root device %q, want %q", aws.ToString(in.RootDeviceName), RootDevice)
	}
	if len(in.Tags) != 1 || aws.ToString(in.Tags[0].Key) != "Tier" {
		t.Errorf("instance tags %v, want Tier", in.Tags)
	}

	at := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Second)
	id := f.SnapshotAt(ctx, ins[0].Root, at, map[string]string{"k": "v"})
	snaps, err := f.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if st := aws.ToTime(snaps.Snapshots[0].StartTime); st.Sub(at).Abs() > time.Minute {
		t.Errorf("snapshot started %v, want about %v", st, at)
	}
	f.Share(ctx, id, "111122223333")
	attr, err := f.EC2.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(id), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil || len(attr.CreateVolumePermissions) != 1 || aws.ToString(attr.CreateVolumePermissions[0].UserId) != "111122223333" {
		t.Errorf("snapshot %s shared with %v (%v), want 111122223333", id, attr, err)
	}
	if len(f.Foreign(ctx)) == 0 {
		t.Error("no snapshot of another owner in moto")
	}

	other := f.In("111111111111", "eu-west-1")
	v := other.Volume(ctx)
	mine := other.SnapshotAt(ctx, v, time.Now(), nil)
	found, err := other.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{mine}})
	if err != nil || len(found.Snapshots) != 1 || aws.ToString(found.Snapshots[0].OwnerId) != "111111111111" {
		t.Errorf("snapshot %s in account 111111111111: %v %v, want it owned there", mine, err, found)
	}
	if _, err := f.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{mine}}); err == nil {
		t.Errorf("snapshot %s of account 111111111111 is seen from %s", mine, f.Account)
	}
}
