package sim_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/testbed/sim"
)

// TestCreateVolume: CreateVolume makes a tagged volume from a snapshot, available at once
// in the zone asked; DescribeVolumes shows it (by id, by tag) with its creation time;
// DeleteVolume removes it but refuses an attached volume; the region has one zone.
func TestCreateVolume(t *testing.T) {
	t.Parallel()
	s, cfg := start(t)
	ctx := context.Background()
	in := s.AddInstances(sim.DefaultAccount, region, 1, 1, "", nil)[0]
	snap := s.AddSnapshot(sim.DefaultAccount, region, in.Devices[0].Volume, t0.Add(-time.Hour), map[string]string{"snapfleet:policy": "daily"})
	cl := ec2.NewFromConfig(cfg)
	out, err := cl.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(region + "b"), SnapshotId: aws.String(snap),
		Size: aws.Int32(10), VolumeType: types.VolumeTypeGp3, TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("snapfleet:drill"), Value: aws.String("d1")}}}}})
	if err != nil || out.State != types.VolumeStateCreating || aws.ToString(out.SnapshotId) != snap {
		t.Fatalf("CreateVolume: %+v, %v", out, err)
	}
	id := aws.ToString(out.VolumeId)
	if got := s.Volumes(sim.DefaultAccount, region); !slices.Equal(got, []string{id}) {
		t.Fatalf("Volumes: %v", got)
	}
	d, err := cl.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"snapfleet:drill"}}}})
	if err != nil || len(d.Volumes) != 1 {
		t.Fatalf("DescribeVolumes by tag: %+v, %v", d, err)
	}
	v := d.Volumes[0]
	if aws.ToString(v.VolumeId) != id || v.State != types.VolumeStateAvailable || aws.ToInt32(v.Size) != 10 ||
		aws.ToString(v.AvailabilityZone) != region+"b" || !aws.ToTime(v.CreateTime).Equal(t0) || len(v.Attachments) != 0 {
		t.Fatalf("volume %+v", v)
	}
	if _, err := cl.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(in.Devices[0].Volume)}); code(t, err) != "VolumeInUse" {
		t.Fatalf("DeleteVolume of an attached volume: %v", err)
	}
	if _, err := cl.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); code(t, err) != "InvalidVolume.NotFound" {
		t.Fatalf("DeleteVolume again: %v", err)
	}
	z, err := cl.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil || len(z.AvailabilityZones) != 1 || aws.ToString(z.AvailabilityZones[0].ZoneName) != region+"a" {
		t.Fatalf("DescribeAvailabilityZones: %+v, %v", z, err)
	}
}
