package worker

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// createInstance snapshots every volume of an instance job's instance at one point in time
// (CreateSnapshots) unless snapshots carrying its key exist. The tags of DESIGN.md §4
// common to all of them — the managed marker and the job key first — are written in the
// call itself; each snapshot's volume, device and Name follow with CreateTags, and are
// completed by a redelivery when that step was interrupted. The policy of the worker's
// own config decides which volumes are left out (exclude tags, exclude_boot).
func (s *snapshots) createInstance(ctx context.Context, j job.Job) (Result, error) {
	c, unlock, err := s.startCreate(ctx, j, "snapshots")
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	inst, err := s.readInstance(ctx, c.api, j.Instance)
	s.removeDuplicates(ctx, c.api, j, c.found.dups, nil)
	if class, _ := cloud.Classify(err); class == cloud.NotFound {
		if c.found.exists() {
			return Result{Action: Existed, Snapshot: c.found.first()}, nil
		}
		return Result{}, skipErr(reason.InstanceGone, err)
	}
	if err != nil {
		return Result{}, fail(fmt.Errorf("reading instance %s: %w", j.Instance, err))
	}
	// The snapshots are named after the instance as it is named now.
	j.Name = tagMap(inst.Tags)[tag.Name]
	if c.policy.Application() && c.policy.HookSet().StopInstance {
		return s.coldBackup(ctx, c, j, inst)
	}
	if c.found.exists() {
		return Result{Action: Existed, Snapshot: c.found.first()}, s.tagVolumes(ctx, c.api, j, inst, c.found.found())
	}
	return s.snapshotInstance(ctx, c, j, inst)
}

// snapshotInstance is createInstance's act: CreateSnapshots over the volumes the policy
// keeps, then settle and tagVolumes.
func (s *snapshots) snapshotInstance(ctx context.Context, c createStart, j job.Job, inst types.Instance) (Result, error) {
	spec, err := s.instanceSpec(ctx, c.api, c.policy, inst)
	if err != nil {
		return Result{}, fail(fmt.Errorf("reading the volumes of instance %s: %w", j.Instance, err))
	}
	if spec == nil {
		return Result{}, skipErr(reason.Excluded, fmt.Errorf("policy %s excludes instance %s or every one of its volumes", j.Policy, j.Instance))
	}
	in := &ec2.CreateSnapshotsInput{
		InstanceSpecification: spec,
		// The set's id tells this call's snapshots from another worker's (job.Keeper).
		Description:       aws.String(job.CreateDescription(j.Policy, j.Key, fmt.Sprintf("%016x", rand.Uint64()))),
		TagSpecifications: tagSpec(j, c.policy, s.now()),
	}
	var out *ec2.CreateSnapshotsOutput
	create := func(ctx context.Context) error {
		return s.createOnce(ctx, "snapshots of instance "+j.Instance, reason.InstanceGone, func(ctx context.Context) error {
			var err error
			out, err = c.api.CreateSnapshots(ctx, in, noSDKRetry)
			return err
		})
	}
	// consistency: application runs create between its hooks (hooks.go).
	run, err := s.consistent(ctx, c, j, inst, in, create)
	if err != nil {
		return Result{Fallback: run.fallback != "", PostFailed: run.postErr != nil}, err
	}
	if run.vss != nil {
		out = run.vss
	}
	var startErr error
	if c.started != nil {
		startErr = c.started() // a cold backup's instance runs again before the tags
	}
	var made []string
	var snaps []types.Snapshot
	for _, si := range out.Snapshots {
		made = append(made, aws.ToString(si.SnapshotId))
		snaps = append(snaps, types.Snapshot{SnapshotId: si.SnapshotId, VolumeId: si.VolumeId, StartTime: si.StartTime})
	}
	if len(made) == 0 {
		return Result{}, joinErr(startErr, fmt.Errorf("creating snapshots of instance %s: CreateSnapshots returned no snapshot", j.Instance))
	}
	res, _ := s.settle(ctx, c.api, j, made...)
	res.Fallback = run.fallback != ""
	if res.Action != Existed {
		err = s.tagVolumes(ctx, c.api, j, inst, snaps)
	}
	res.PostFailed = s.finishPost(ctx, j, run)
	return res, joinErr(startErr, err)
}

// readInstance reads one instance; a missing one is a NotFound error.
func (s *snapshots) readInstance(ctx context.Context, api EC2, id string) (types.Instance, error) {
	var out *ec2.DescribeInstancesOutput
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		return err
	})
	if err != nil {
		return types.Instance{}, err
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if aws.ToString(in.InstanceId) == id && (in.State == nil || in.State.Name != types.InstanceStateNameTerminated) {
				return in, nil
			}
		}
	}
	return types.Instance{}, &smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound", Message: "instance " + id + " is not listed"}
}

// instanceSpec says which volumes of the instance CreateSnapshots takes: all but those
// carrying an exclude tag of the policy and, with exclude_boot, the root volume. Nil when
// the instance carries an exclude tag or no volume is left.
func (s *snapshots) instanceSpec(ctx context.Context, api EC2, p config.Policy, inst types.Instance) (*types.InstanceSpecification, error) {
	if p.Select.Excludes(tagMap(inst.Tags)) {
		return nil, nil
	}
	spec := &types.InstanceSpecification{InstanceId: inst.InstanceId, ExcludeBootVolume: aws.Bool(p.ExcludeBoot)}
	root := aws.ToString(inst.RootDeviceName)
	var ids []string
	for _, m := range inst.BlockDeviceMappings {
		if m.Ebs != nil && aws.ToString(m.Ebs.VolumeId) != "" {
			ids = append(ids, aws.ToString(m.Ebs.VolumeId))
		}
	}
	left := len(ids)
	if p.ExcludeBoot {
		left = 0
		for _, m := range inst.BlockDeviceMappings {
			if m.Ebs != nil && aws.ToString(m.DeviceName) != root {
				left++
			}
		}
	}
	if len(p.Select.ExcludeTags) > 0 && len(ids) > 0 {
		n, err := s.excludeTagged(ctx, api, p, inst, ids, spec)
		if err != nil {
			return nil, err
		}
		left -= n
	}
	if left <= 0 {
		return nil, nil
	}
	return spec, nil
}

// excludeTagged leaves out of spec the volumes among ids that carry an exclude tag of p,
// and says how many it left out.
func (s *snapshots) excludeTagged(ctx context.Context, api EC2, p config.Policy, inst types.Instance, ids []string, spec *types.InstanceSpecification) (int, error) {
	var out *ec2.DescribeVolumesOutput
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: ids})
		return err
	})
	if err != nil {
		return 0, err
	}
	root := aws.ToString(inst.RootDeviceName)
	n := 0
	for _, v := range out.Volumes {
		if !p.Select.Excludes(tagMap(v.Tags)) {
			continue
		}
		isRoot := false
		for _, a := range v.Attachments {
			isRoot = isRoot || (aws.ToString(a.InstanceId) == aws.ToString(inst.InstanceId) && aws.ToString(a.Device) == root)
		}
		switch {
		case isRoot && !p.ExcludeBoot:
			spec.ExcludeBootVolume = aws.Bool(true)
			n++
		case !isRoot:
			spec.ExcludeDataVolumeIds = append(spec.ExcludeDataVolumeIds, aws.ToString(v.VolumeId))
			n++
		}
	}
	return n, nil
}

// tagVolumes writes the per-volume tags of DESIGN.md §4 — snapfleet:volume,
// snapfleet:device and Name — on the snapshots of an instance job that lack them, at the
// CreateTags bucket's pace without holding the job's slot meanwhile (tagPace). The
// snapshots are already managed (their marker came with CreateSnapshots): a failure here
// is retried through the queue, and the redelivery finds them and tags them.
func (s *snapshots) tagVolumes(ctx context.Context, api EC2, j job.Job, inst types.Instance, snaps []types.Snapshot) error {
	devices := map[string]string{}
	for _, m := range inst.BlockDeviceMappings {
		if m.Ebs != nil {
			devices[aws.ToString(m.Ebs.VolumeId)] = aws.ToString(m.DeviceName)
		}
	}
	var todo []*ec2.CreateTagsInput
	for _, sn := range snaps {
		vol := aws.ToString(sn.VolumeId)
		if tagMap(sn.Tags)[tag.Volume] != "" || vol == "" {
			continue
		}
		tags := []types.Tag{{Key: aws.String(tag.Volume), Value: aws.String(vol)}}
		dev := devices[vol]
		if dev != "" {
			tags = append(tags, types.Tag{Key: aws.String(tag.Device), Value: aws.String(dev)})
		}
		name := snapshotName(source(j), dev, aws.ToTime(sn.StartTime))
		tags = append(tags, types.Tag{Key: aws.String(tag.Name), Value: aws.String(name)})
		todo = append(todo, &ec2.CreateTagsInput{Resources: []string{aws.ToString(sn.SnapshotId)}, Tags: tags})
	}
	return s.writeTags(ctx, api, j, todo)
}
