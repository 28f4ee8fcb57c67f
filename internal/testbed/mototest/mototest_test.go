package mototest

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestShiftClockMovesSnapshotStartTime(t *testing.T) {
	t.Parallel()
	s, c, vol := withVolume(t)
	ctx := context.Background()
	s.ShiftClock(t, -10*24*time.Hour)
	snap, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{*snap.SnapshotId}})
	if err != nil {
		t.Fatal(err)
	}
	got := aws.ToTime(out.Snapshots[0].StartTime)
	if d := time.Since(got); d < 10*24*time.Hour-time.Minute || d > 10*24*time.Hour+time.Minute {
		t.Fatalf("snapshot StartTime %v is %v ago, want 10 days", got, d)
	}
	if out.Snapshots[0].State != types.SnapshotStateCompleted {
		t.Fatalf("state %s", out.Snapshots[0].State)
	}
}

// TestStopClock: snapshots made while the clock is stopped all get its time.
func TestStopClock(t *testing.T) {
	t.Parallel()
	s, c, vol := withVolume(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	s.StopClock(t, at)
	for range 2 {
		snap, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{*snap.SnapshotId}})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToTime(out.Snapshots[0].StartTime); !got.Equal(at) {
			t.Fatalf("snapshot StartTime %v, want %v", got, at)
		}
	}
}

// withVolume starts moto and makes one volume in it (the fleet builder imports this
// package, so these tests cannot use it).
func withVolume(t *testing.T) (*Server, *ec2.Client, *ec2.CreateVolumeOutput) {
	t.Helper()
	s := Start(t)
	c := ec2.NewFromConfig(s.AWSConfig(t))
	vol, err := c.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String(Region + "a"), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, vol
}
