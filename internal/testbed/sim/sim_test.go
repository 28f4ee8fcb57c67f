package sim_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
	"github.com/snapfleet/snapfleet/internal/testbed/sim"
)

const region = "eu-west-1"

var t0 = time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)

func start(t *testing.T) (*sim.Sim, aws.Config) {
	t.Helper()
	s := sim.New(func() time.Time { return t0 })
	url, stop, err := s.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s, config(url)
}

func config(url string) aws.Config {
	return aws.Config{Region: region, BaseEndpoint: aws.String(url), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")}
}

func code(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error, got %v", err)
	}
	return ae.ErrorCode()
}

func TestInstancesAndVolumes(t *testing.T) {
	t.Parallel()
	s, cfg := start(t)
	ctx := context.Background()
	backed := s.AddInstances(sim.DefaultAccount, region, 3, 2, "", map[string]string{"AutoBackup": "true", "Name": "web"})
	s.AddInstances(sim.DefaultAccount, region, 2, 1, "stopped", map[string]string{"AutoBackup": "true"})
	s.AddInstances(sim.DefaultAccount, region, 1, 1, "running", nil)
	cl := ec2.NewFromConfig(cfg)

	pages := ec2.NewDescribeInstancesPaginator(cl, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(2), Filters: []types.Filter{
		{Name: aws.String("instance-state-name"), Values: []string{"running"}},
		{Name: aws.String("tag:AutoBackup"), Values: []string{"true"}}}})
	var got []types.Instance
	n := 0
	for pages.HasMorePages() {
		p, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, r := range p.Reservations {
			got = append(got, r.Instances...)
		}
	}
	if n != 2 || len(got) != 3 {
		t.Fatalf("running AutoBackup instances: %d in %d pages, want 3 in 2", len(got), n)
	}
	for i, in := range got {
		if aws.ToString(in.InstanceId) != backed[i].ID || in.State.Name != types.InstanceStateNameRunning ||
			aws.ToString(in.RootDeviceName) != "/dev/xvda" || len(in.BlockDeviceMappings) != 2 {
			t.Errorf("instance %d: %+v, want %+v", i, in, backed[i])
		}
		for d, m := range in.BlockDeviceMappings {
			if aws.ToString(m.DeviceName) != backed[i].Devices[d].Name || aws.ToString(m.Ebs.VolumeId) != backed[i].Devices[d].Volume {
				t.Errorf("instance %d device %d: %s %s, want %+v", i, d, aws.ToString(m.DeviceName), aws.ToString(m.Ebs.VolumeId), backed[i].Devices[d])
			}
		}
	}
	vol := backed[0].Devices[1].Volume
	vs, err := cl.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{vol}})
	if err != nil || len(vs.Volumes) != 1 || aws.ToString(vs.Volumes[0].Attachments[0].InstanceId) != backed[0].ID ||
		aws.ToString(vs.Volumes[0].Attachments[0].Device) != "/dev/sdf" {
		t.Fatalf("DescribeVolumes %s: %+v, %v", vol, vs, err)
	}
	all, err := cl.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
	if err != nil || len(all.Volumes) != 3*2+2+1 {
		t.Fatalf("DescribeVolumes: %d volumes, %v; want 9", len(all.Volumes), err)
	}
	if _, err := cl.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{"vol-0123456789abcdef0"}}); code(t, err) != "InvalidVolume.NotFound" {
		t.Errorf("unknown volume: %v", err)
	}
	if _, err := cl.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}}); code(t, err) != "InvalidInstanceID.NotFound" {
		t.Errorf("unknown instance: %v", err)
	}
	if _, err := cl.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("no-such-filter"), Values: []string{"x"}}}}); code(t, err) != "InvalidParameterValue" {
		t.Errorf("unknown filter: %v", err)
	}
}

func TestSnapshots(t *testing.T) {
	t.Parallel()
	s, cfg := start(t)
	ctx := context.Background()
	in := s.AddInstances(sim.DefaultAccount, region, 1, 3, "", nil)[0]
	cl := ec2.NewFromConfig(cfg)
	vol := in.Devices[0].Volume

	out, err := cl.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol), Description: aws.String("d"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{
			{Key: aws.String("snapfleet:job"), Value: aws.String("k1")}, {Key: aws.String("snapfleet:policy"), Value: aws.String("daily")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.SnapshotId)
	if id == "" || aws.ToString(out.VolumeId) != vol || !aws.ToTime(out.StartTime).Equal(t0) || len(out.Tags) != 2 {
		t.Fatalf("CreateSnapshot answered %+v", out)
	}
	byTag, err := cl.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
		Filters: []types.Filter{{Name: aws.String("tag:snapfleet:job"), Values: []string{"k1"}}}})
	if err != nil || len(byTag.Snapshots) != 1 || aws.ToString(byTag.Snapshots[0].SnapshotId) != id ||
		byTag.Snapshots[0].State != types.SnapshotStateCompleted || aws.ToString(byTag.Snapshots[0].OwnerId) != sim.DefaultAccount {
		t.Fatalf("DescribeSnapshots by job tag: %+v, %v", byTag, err)
	}
	if none, err := cl.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []types.Filter{
		{Name: aws.String("tag-key"), Values: []string{"snapfleet:policy"}}, {Name: aws.String("volume-id"), Values: []string{in.Devices[1].Volume}}}}); err != nil || len(none.Snapshots) != 0 {
		t.Fatalf("another volume's snapshots: %+v, %v", none, err)
	}
	if _, err := cl.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("n")}}}); err != nil {
		t.Fatal(err)
	}

	// CreateSnapshots without the boot volume and one excluded data volume: one snapshot.
	multi, err := cl.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{
		InstanceSpecification: &types.InstanceSpecification{InstanceId: aws.String(in.ID), ExcludeBootVolume: aws.Bool(true),
			ExcludeDataVolumeIds: []string{in.Devices[2].Volume}},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("snapfleet:policy"), Value: aws.String("daily")}}}}})
	if err != nil || len(multi.Snapshots) != 1 || aws.ToString(multi.Snapshots[0].VolumeId) != in.Devices[1].Volume {
		t.Fatalf("CreateSnapshots: %+v, %v", multi, err)
	}

	// Pages of one snapshot each, in creation order.
	var ids []string
	pages := ec2.NewDescribeSnapshotsPaginator(cl, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(1),
		Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"snapfleet:policy"}}}})
	for pages.HasMorePages() {
		p, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, sn := range p.Snapshots {
			ids = append(ids, aws.ToString(sn.SnapshotId))
		}
	}
	if want := []string{id, aws.ToString(multi.Snapshots[0].SnapshotId)}; !slices.Equal(ids, want) {
		t.Errorf("paginated listing: %v, want %v", ids, want)
	}
	held := s.Snapshots(sim.DefaultAccount, region)
	if len(held) != 2 || held[0].Tags["Name"] != "n" || held[0].Description != "d" {
		t.Errorf("held snapshots: %+v", held)
	}

	// An AMI holds the second; the first goes, then is gone.
	s.AddImage(sim.DefaultAccount, region, ids[1])
	if _, err := cl.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(ids[1])}); code(t, err) != "InvalidSnapshot.InUse" {
		t.Errorf("deleting a snapshot an AMI uses: %v", err)
	}
	if _, err := cl.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); code(t, err) != "InvalidSnapshot.NotFound" {
		t.Errorf("deleting again: %v", err)
	}
	if _, err := cl.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}}); code(t, err) != "InvalidSnapshot.NotFound" {
		t.Errorf("reading a deleted snapshot: %v", err)
	}
	if _, err := cl.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String("vol-0123456789abcdef0")}); code(t, err) != "InvalidVolume.NotFound" {
		t.Errorf("snapshot of an unknown volume: %v", err)
	}
	imgs, err := cl.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil || len(imgs.Images) != 1 || aws.ToString(imgs.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId) != ids[1] {
		t.Errorf("DescribeImages: %+v, %v", imgs, err)
	}
	if _, err := cl.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(ids[1]),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission}); err != nil {
		t.Errorf("DescribeSnapshotAttribute: %v", err)
	}
	if l, err := cl.DescribeLockedSnapshots(ctx, &ec2.DescribeLockedSnapshotsInput{SnapshotIds: ids}); err != nil || len(l.Snapshots) != 0 {
		t.Errorf("DescribeLockedSnapshots: %+v, %v", l, err)
	}
	if _, err := cl.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: imgs.Images[0].ImageId}); code(t, err) != "InvalidAction" {
		t.Errorf("an action the simulator does not model: %v", err)
	}
}

// AssumeRole issues keys of the role's account; accounts see only their own resources,
// also behind the limits-faithful endpoint, which learns the keys from the answers.
func TestAccounts(t *testing.T) {
	t.Parallel()
	s, cfg := start(t)
	ep, err := awslimits.New(aws.ToString(cfg.BaseEndpoint), "127.0.0.1:0", awslimits.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ep.Close)
	cfg = config(ep.URL)
	ctx := context.Background()
	s.AddInstances("222222222222", region, 2, 1, "", nil)
	s.AddInstances(sim.DefaultAccount, region, 1, 1, "", nil)

	own, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(own.Account) != sim.DefaultAccount {
		t.Fatalf("GetCallerIdentity: %+v, %v", own, err)
	}
	member := cfg.Copy()
	member.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), "arn:aws:iam::222222222222:role/snapfleet-member"))
	who, err := sts.NewFromConfig(member).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Account) != "222222222222" {
		t.Fatalf("GetCallerIdentity as the member role: %+v, %v", who, err)
	}
	count := func(c aws.Config) int {
		out, err := ec2.NewFromConfig(c).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Reservations)
	}
	if n, m := count(cfg), count(member); n != 1 || m != 2 {
		t.Errorf("instances seen: own %d, member %d; want 1 and 2", n, m)
	}
	if got := ep.AssumeRoles()["222222222222"]; got != 1 {
		t.Errorf("AssumeRole calls seen by the endpoint: %d, want 1", got)
	}
	if got := ep.Done()[awslimits.Done{Account: "222222222222", Region: region, Action: "DescribeInstances"}]; got != 1 {
		t.Errorf("the endpoint counted %d DescribeInstances for the member account, want 1", got)
	}
	if _, err := sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("not-an-arn"), RoleSessionName: aws.String("x")}); code(t, err) != "ValidationError" {
		t.Errorf("AssumeRole of a malformed ARN: %v", err)
	}
	if s.Calls()["sts:AssumeRole"] != 2 {
		t.Errorf("calls: %v", s.Calls())
	}
}

// TestPerActionBuckets: behind the limits-faithful endpoint, with the SDK's own
// serialization, each action has its own bucket (emptying DescribeSnapshots's leaves
// DescribeSnapshotAttribute's and DescribeVolumes's full), and a DescribeVolumes or
// DescribeSnapshots that names no filter, no ids and no page takes its action's
// unfiltered bucket of 50 instead, while the filtered, paginated and by-id calls of the
// same action go on.
func TestPerActionBuckets(t *testing.T) {
	t.Parallel()
	s, cfg := start(t)
	ep, err := awslimits.New(aws.ToString(cfg.BaseEndpoint), "127.0.0.1:0", awslimits.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ep.Close)
	cl := ec2.NewFromConfig(config(ep.URL))
	ctx := context.Background()
	s.AddInstances(sim.DefaultAccount, region, 1, 1, "", nil)
	vols, err := cl.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5)})
	if err != nil || len(vols.Volumes) != 1 {
		t.Fatalf("DescribeVolumes: %+v, %v", vols, err)
	}
	vol := aws.ToString(vols.Volumes[0].VolumeId)
	snap, err := cl.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
	if err != nil {
		t.Fatal(err)
	}
	throttled := func(err error) bool {
		t.Helper()
		if err == nil {
			return false
		}
		if c := code(t, err); c != "RequestLimitExceeded" {
			t.Fatalf("want RequestLimitExceeded or success, got %v", err)
		}
		return true
	}
	calls := func(n int, call func() error) (ok int) {
		for range n {
			if !throttled(call()) {
				ok++
			}
		}
		return ok
	}
	// The clock stands still: no refill. 100 filtered DescribeSnapshots, then throttled.
	byVolume := &ec2.DescribeSnapshotsInput{Filters: []types.Filter{{Name: aws.String("volume-id"), Values: []string{vol}}}}
	if got := calls(101, func() error { _, err := cl.DescribeSnapshots(ctx, byVolume); return err }); got != 100 {
		t.Fatalf("filtered DescribeSnapshots: %d of 101 allowed, want 100", got)
	}
	attr := &ec2.DescribeSnapshotAttributeInput{SnapshotId: snap.SnapshotId, Attribute: types.SnapshotAttributeNameCreateVolumePermission}
	if got := calls(100, func() error { _, err := cl.DescribeSnapshotAttribute(ctx, attr); return err }); got != 100 {
		t.Errorf("DescribeSnapshotAttribute with the DescribeSnapshots bucket empty: %d of 100 allowed", got)
	}
	// Unfiltered DescribeVolumes: 50, then throttled; the paginated, by-id and filtered
	// calls are not.
	if got := calls(51, func() error { _, err := cl.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{}); return err }); got != 50 {
		t.Errorf("unfiltered, unpaginated DescribeVolumes: %d of 51 allowed, want 50", got)
	}
	for name, in := range map[string]*ec2.DescribeVolumesInput{
		"paginated": {MaxResults: aws.Int32(5)},
		"by id":     {VolumeIds: []string{vol}},
		"filtered":  {Filters: []types.Filter{{Name: aws.String("volume-id"), Values: []string{vol}}}},
	} {
		if _, err := cl.DescribeVolumes(ctx, in); err != nil {
			t.Errorf("%s DescribeVolumes with the unfiltered bucket empty: %v", name, err)
		}
	}
	// DescribeSnapshots's unfiltered bucket is its own: still full.
	if got := calls(50, func() error {
		_, err := cl.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
		return err
	}); got != 50 {
		t.Errorf("unfiltered DescribeSnapshots: %d of 50 allowed", got)
	}
	stats := map[string]int{}
	for _, st := range ep.Limiter.Stats() {
		stats[st.Bucket] = st.Throttled
	}
	if stats["DescribeSnapshots"] != 1 || stats["DescribeVolumes.unfiltered"] != 1 || stats["DescribeSnapshotAttribute"] != 0 || stats["DescribeVolumes"] != 0 {
		t.Errorf("throttles per bucket %v", stats)
	}
}

// TestLongPollIsOneCall: a ReceiveMessage that waits on an empty queue is one call in
// Calls, as SQS bills it, not one per check of the queue (the bench reports SQS requests
// per job from these counts).
func TestLongPollIsOneCall(t *testing.T) {
	t.Parallel()
	s, cfg := start(t)
	ctx := context.Background()
	cl := sqs.NewFromConfig(cfg)
	q, err := cl.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("poll")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cl.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 0 {
		t.Fatalf("receive from an empty queue: %v, %d messages", err, len(out.Messages))
	}
	if got := s.Calls()["sqs:ReceiveMessage"]; got != 1 {
		t.Errorf("a 1 s long poll counted as %d ReceiveMessage calls, want 1", got)
	}
}
