// Package fleet builds EC2 estates in moto for the end-to-end tests of every package:
// instances with a root and data volumes, tags, stopped instances, detached volumes,
// snapshot histories on moto's movable clock, and other accounts reached through
// AssumeRole (moto keeps one estate per account).
package fleet

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// RootDevice is the root device name moto gives every instance; DataDevice is where an
// instance's first data volume is attached, the next ones follow (/dev/sdg, ...).
const (
	RootDevice = "/dev/sda1"
	DataDevice = "/dev/sdf"
)

// Fleet is one account-region of a moto server, with the test that builds in it.
type Fleet struct {
	t    testing.TB
	moto *mototest.Server
	EC2  *ec2.Client
	// Account and Region are where the fleet is built.
	Account, Region string
}

// New is moto's own account in mototest.Region.
func New(t testing.TB, s *mototest.Server) *Fleet {
	t.Helper()
	return &Fleet{t: t, moto: s, EC2: ec2.NewFromConfig(s.AWSConfig(t), transport), Account: mototest.Account, Region: mototest.Region}
}

func transport(o *ec2.Options) { o.Retryer = mototest.TransportRetryer() }

// Role is the role the tests assume in account (moto lets anyone assume any role).
func Role(account string) string { return "arn:aws:iam::" + account + ":role/x" }

// In is the same moto in account (through AssumeRole of Role(account)) and region.
func (f *Fleet) In(account, region string) *Fleet {
	f.t.Helper()
	cfg := f.moto.AWSConfig(f.t)
	cfg.Region = region
	if account != mototest.Account {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), Role(account)))
	}
	return &Fleet{t: f.t, moto: f.moto, EC2: ec2.NewFromConfig(cfg, transport), Account: account, Region: region}
}

// Through is the fleet built through c (a client under test, with its middleware), in
// c's region.
func (f *Fleet) Through(c *ec2.Client) *Fleet {
	return &Fleet{t: f.t, moto: f.moto, EC2: c, Account: f.Account, Region: c.Options().Region}
}

// Instance is one running instance and its volumes.
type Instance struct {
	ID   string
	Root string   // attached at RootDevice
	Data []string // attached at DataDevice, /dev/sdg, ...
}

// Volumes is the root volume, then the data volumes.
func (in Instance) Volumes() []string { return append([]string{in.Root}, in.Data...) }

// Instances runs n instances, each with a root volume and data data volumes, tagged with
// tags, in one RunInstances call (moto makes the volumes of the block device mappings).
func (f *Fleet) Instances(ctx context.Context, n, data int, tags map[string]string) []Instance {
	f.t.Helper()
	in := &ec2.RunInstancesInput{
		ImageId: aws.String("ami-0123456789abcdef0"), MinCount: aws.Int32(int32(n)), MaxCount: aws.Int32(int32(n)),
		InstanceType: types.InstanceTypeT3Micro, Placement: &types.Placement{AvailabilityZone: aws.String(f.Region + "a")},
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String(RootDevice), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(8)}}},
	}
	for i := range data {
		in.BlockDeviceMappings = append(in.BlockDeviceMappings, types.BlockDeviceMapping{
			DeviceName: aws.String(device(i)), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(8)}})
	}
	if len(tags) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: Tags(tags)}}
	}
	run, err := f.EC2.RunInstances(ctx, in)
	if err != nil {
		f.t.Fatalf("running %d instances in %s/%s: %v", n, f.Account, f.Region, err)
	}
	out := make([]Instance, 0, n)
	for _, ri := range run.Instances {
		got := Instance{ID: aws.ToString(ri.InstanceId)}
		for _, m := range ri.BlockDeviceMappings {
			if aws.ToString(m.DeviceName) == aws.ToString(ri.RootDeviceName) {
				got.Root = aws.ToString(m.Ebs.VolumeId)
			} else {
				got.Data = append(got.Data, aws.ToString(m.Ebs.VolumeId))
			}
		}
		if got.Root == "" || len(got.Data) != data {
			f.t.Fatalf("instance %s came with volumes %+v, want a root and %d data volumes", got.ID, ri.BlockDeviceMappings, data)
		}
		out = append(out, got)
	}
	return out
}

func device(i int) string { return DataDevice[:len(DataDevice)-1] + string(rune('f'+i)) }

// Volume creates a detached volume.
func (f *Fleet) Volume(ctx context.Context) string {
	f.t.Helper()
	v, err := f.EC2.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(f.Region + "a"), Size: aws.Int32(1)})
	if err != nil {
		f.t.Fatalf("creating a volume: %v", err)
	}
	return aws.ToString(v.VolumeId)
}

// Tag sets tags on resource id.
func (f *Fleet) Tag(ctx context.Context, id string, tags map[string]string) {
	f.t.Helper()
	if _, err := f.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: Tags(tags)}); err != nil {
		f.t.Fatalf("tagging %s: %v", id, err)
	}
}

// Stop stops instances.
func (f *Fleet) Stop(ctx context.Context, ids ...string) {
	f.t.Helper()
	if _, err := f.EC2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids}); err != nil {
		f.t.Fatalf("stopping %v: %v", ids, err)
	}
}

// SnapshotAt makes a snapshot of vol, tagged with tags, whose StartTime is at: moto's
// clock is moved there, and stays there.
func (f *Fleet) SnapshotAt(ctx context.Context, vol string, at time.Time, tags map[string]string) string {
	f.t.Helper()
	f.moto.ShiftClock(f.t, time.Until(at))
	in := &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)}
	if len(tags) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: Tags(tags)}}
	}
	out, err := f.EC2.CreateSnapshot(ctx, in)
	if err != nil {
		f.t.Fatalf("snapshotting %s: %v", vol, err)
	}
	return aws.ToString(out.SnapshotId)
}

// Snapshot makes a snapshot of vol, tagged with tags, that started age ago, and sets
// moto's clock back to real time, for the snapshots the code under test makes next.
func (f *Fleet) Snapshot(ctx context.Context, vol string, age time.Duration, tags map[string]string) string {
	f.t.Helper()
	defer f.moto.ShiftClock(f.t, 0)
	return f.SnapshotAt(ctx, vol, time.Now().Add(-age), tags)
}

// Share lets account create volumes from snapshot snap.
func (f *Fleet) Share(ctx context.Context, snap, account string) {
	f.t.Helper()
	if _, err := f.EC2.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snap),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd, UserIds: []string{account}}); err != nil {
		f.t.Fatalf("sharing %s with %s: %v", snap, account, err)
	}
}

// Tags is m as EC2 tags.
func Tags(m map[string]string) []types.Tag {
	out := make([]types.Tag, 0, len(m))
	for k, v := range m {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out
}

// Foreign returns the snapshots moto holds of owners other than the fleet's account (the
// public snapshots of its default images): the ones snapfleet must never touch.
func (f *Fleet) Foreign(ctx context.Context) []string {
	f.t.Helper()
	all, err := f.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if err != nil {
		f.t.Fatalf("describing snapshots: %v", err)
	}
	var ids []string
	for _, s := range all.Snapshots {
		if aws.ToString(s.OwnerId) != f.Account {
			ids = append(ids, aws.ToString(s.SnapshotId))
		}
	}
	return ids
}

// DropDefaultImages deregisters moto's ~1,200 default AMIs and deletes their snapshots.
// moto scans every snapshot for each filtered DescribeSnapshots (the worker's look by job
// tag), so they cost ~0.15 s of moto's one core per call; without them a 200-job drain
// takes seconds, not minutes. A test that needs other owners' snapshots keeps them.
func (f *Fleet) DropDefaultImages(ctx context.Context) {
	f.t.Helper()
	imgs, err := f.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	if err != nil {
		f.t.Fatalf("describing moto's images: %v", err)
	}
	if err := parallel(len(imgs.Images), func(i int) error {
		_, err := f.EC2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: imgs.Images[i].ImageId})
		return err
	}); err != nil {
		f.t.Fatalf("deregistering moto's images: %v", err)
	}
	snaps, err := f.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if err != nil {
		f.t.Fatalf("describing moto's snapshots: %v", err)
	}
	if err := parallel(len(snaps.Snapshots), func(i int) error {
		_, err := f.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: snaps.Snapshots[i].SnapshotId})
		return err
	}); err != nil {
		f.t.Fatalf("deleting moto's default snapshots: %v", err)
	}
}

// parallel runs fn(0..n-1) on four goroutines and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
