package recovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/cloud"
)

// API is what a restore needs of EC2 in the recovery point's account-region.
type API interface {
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateVolume(ctx context.Context, in *ec2.CreateVolumeInput, optFns ...func(*ec2.Options)) (*ec2.CreateVolumeOutput, error)
	AttachVolume(ctx context.Context, in *ec2.AttachVolumeInput, optFns ...func(*ec2.Options)) (*ec2.AttachVolumeOutput, error)
}

// Refusal is a restore refused before anything was created, with its one-line reason.
// BadInput: the request named something wrong (exit 2); else the state of AWS forbids it
// for now (a pending or archived snapshot: exit 1).
type Refusal struct {
	Reason   string
	BadInput bool
}

func (r *Refusal) Error() string { return r.Reason }

func refuse(badInput bool, format string, args ...any) error {
	return &Refusal{Reason: fmt.Sprintf(format, args...), BadInput: badInput}
}

// Request is a restore of one recovery point: the overrides of the volume's settings
// (zero: as the source), where to attach it, and tags to add (a drill's).
type Request struct {
	Point            Point
	AZ, Type, KMSKey string
	Size, IOPS       int32
	Throughput       int32
	// Attach is an instance to attach the volume to, at Device (default: the point's).
	Attach, Device string
	Tags           map[string]string
}

// Plan is exactly what a restore does: the volume it creates, and where it attaches it.
type Plan struct {
	Account    string            `json:"account"`
	Region     string            `json:"region"`
	Snapshot   string            `json:"snapshot"`
	PointTime  time.Time         `json:"point_time"`
	Policy     string            `json:"policy,omitempty"`
	AZ         string            `json:"az"`
	Type       string            `json:"type"`
	SizeGiB    int32             `json:"size_gib"`
	IOPS       int32             `json:"iops,omitempty"`
	Throughput int32             `json:"throughput,omitempty"`
	Encrypted  bool              `json:"encrypted"`
	KMSKey     string            `json:"kms_key,omitempty"`
	Tags       map[string]string `json:"tags"`
	Attach     string            `json:"attach,omitempty"`
	Device     string            `json:"device,omitempty"`
}

// Prepare checks a restore and returns its plan, reading the source volume (for its AZ,
// type, IOPS and throughput, when it still exists in the point's region) and the instance
// to attach to. It refuses (a *Refusal) a point that is not completed or is archived, a
// size below the snapshot's, an unknown instance, an instance in another AZ, a device
// taken on it, and a restore whose AZ cannot be told.
func Prepare(ctx context.Context, api API, req Request) (Plan, error) {
	p := req.Point
	switch {
	case p.Tier == string(types.StorageTierArchive):
		return Plan{}, refuse(false, "snapshot %s is archived: restore it from the archive tier first", p.Snapshot)
	case p.State != string(types.SnapshotStateCompleted):
		return Plan{}, refuse(false, "snapshot %s is %s, not completed: a volume can be made only from a completed snapshot", p.Snapshot, p.State)
	case req.Size != 0 && req.Size < p.SizeGiB:
		return Plan{}, refuse(true, "--size %d: below the snapshot's %d GiB", req.Size, p.SizeGiB)
	}
	plan := Plan{Account: p.Account, Region: p.Region, Snapshot: p.Snapshot, PointTime: p.Time, Policy: p.Policy,
		AZ: req.AZ, Type: req.Type, SizeGiB: max(req.Size, p.SizeGiB), IOPS: req.IOPS, Throughput: req.Throughput,
		Encrypted: p.Encrypted || req.KMSKey != "", KMSKey: req.KMSKey, Tags: RestoredTags(p)}
	if plan.KMSKey == "" && p.Encrypted {
		plan.KMSKey = p.KMSKey
	}
	maps.Copy(plan.Tags, req.Tags)
	var src *types.Volume
	if plan.AZ == "" || plan.Type == "" {
		var err error
		if src, err = sourceVolume(ctx, api, p.Volume); err != nil {
			return Plan{}, err
		}
	}
	if src != nil {
		if plan.AZ == "" {
			plan.AZ = aws.ToString(src.AvailabilityZone)
		}
		if plan.Type == "" {
			plan.Type = string(src.VolumeType)
		}
		if plan.Type == string(src.VolumeType) {
			if plan.IOPS == 0 && (src.VolumeType == types.VolumeTypeIo1 || src.VolumeType == types.VolumeTypeIo2 || src.VolumeType == types.VolumeTypeGp3) {
				plan.IOPS = aws.ToInt32(src.Iops)
			}
			if plan.Throughput == 0 && src.VolumeType == types.VolumeTypeGp3 {
				plan.Throughput = aws.ToInt32(src.Throughput)
			}
		}
	}
	if plan.Type == "" {
		plan.Type = string(types.VolumeTypeGp3)
	}
	if req.Attach != "" {
		if err := planAttach(ctx, api, req, &plan); err != nil {
			return Plan{}, err
		}
	}
	if plan.AZ == "" {
		return Plan{}, refuse(true, "the source volume %s of %s is not in %s/%s: give --az", dashed(p.Volume), p.Snapshot, p.Account, p.Region)
	}
	return plan, nil
}

func dashed(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// sourceVolume reads the volume a point was taken of, nil when it is gone (or elsewhere).
func sourceVolume(ctx context.Context, api API, id string) (*types.Volume, error) {
	if id == "" {
		return nil, nil
	}
	out, err := api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{
		Filters: []types.Filter{{Name: aws.String("volume-id"), Values: []string{id}}}})
	if err != nil {
		return nil, fmt.Errorf("reading source volume %s: %w", id, err)
	}
	for i := range out.Volumes {
		if aws.ToString(out.Volumes[i].VolumeId) == id {
			return &out.Volumes[i], nil
		}
	}
	return nil, nil
}

// planAttach checks the instance to attach to: it exists, is in the volume's AZ (which it
// gives when the source's is unknown), and has the device free.
func planAttach(ctx context.Context, api API, req Request, plan *Plan) error {
	plan.Attach, plan.Device = req.Attach, req.Device
	if plan.Device == "" {
		plan.Device = req.Point.Device
	}
	if plan.Device == "" {
		return refuse(true, "--attach %s: give --device (snapshot %s names none)", req.Attach, req.Point.Snapshot)
	}
	out, err := api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("instance-id"), Values: []string{req.Attach}}}})
	if err != nil {
		return fmt.Errorf("reading instance %s: %w", req.Attach, err)
	}
	var inst *types.Instance
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == req.Attach {
				inst = &r.Instances[i]
			}
		}
	}
	if inst == nil || inst.State != nil && inst.State.Name == types.InstanceStateNameTerminated {
		return refuse(true, "--attach: instance %s not found in %s/%s", req.Attach, plan.Account, plan.Region)
	}
	az := ""
	if inst.Placement != nil {
		az = aws.ToString(inst.Placement.AvailabilityZone)
	}
	if plan.AZ == "" {
		plan.AZ = az
	}
	if az != plan.AZ {
		return refuse(true, "--attach: instance %s is in %s, the volume would be in %s: give --az %s", req.Attach, az, plan.AZ, az)
	}
	for _, m := range inst.BlockDeviceMappings {
		if aws.ToString(m.DeviceName) == plan.Device {
			vol := ""
			if m.Ebs != nil {
				vol = aws.ToString(m.Ebs.VolumeId)
			}
			return refuse(true, "--device %s: taken on instance %s (by %s)", plan.Device, req.Attach, dashed(vol))
		}
	}
	return nil
}

// Create makes the plan's volume, tagged in the CreateVolume call itself.
func Create(ctx context.Context, api API, plan Plan) (string, error) {
	in := &ec2.CreateVolumeInput{
		AvailabilityZone: aws.String(plan.AZ), SnapshotId: aws.String(plan.Snapshot),
		Size: aws.Int32(plan.SizeGiB), VolumeType: types.VolumeType(plan.Type),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: ec2Tags(plan.Tags)}},
	}
	if plan.IOPS > 0 {
		in.Iops = aws.Int32(plan.IOPS)
	}
	if plan.Throughput > 0 {
		in.Throughput = aws.Int32(plan.Throughput)
	}
	if plan.Encrypted {
		in.Encrypted = aws.Bool(true)
		if plan.KMSKey != "" {
			in.KmsKeyId = aws.String(plan.KMSKey)
		}
	}
	out, err := api.CreateVolume(ctx, in)
	if err != nil {
		return "", fmt.Errorf("creating a volume from %s in %s: %w", plan.Snapshot, plan.AZ, err)
	}
	return aws.ToString(out.VolumeId), nil
}

func ec2Tags(m map[string]string) []types.Tag {
	out := make([]types.Tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

// ErrVolumeFailed: the volume went to state error.
var ErrVolumeFailed = errors.New("volume went to state error")

// Wait polls the volume every interval until cond holds of it (or it is in state error,
// or ctx ends), calling progress with its state after each read; it returns the volume as
// last read.
func Wait(ctx context.Context, api API, id string, interval time.Duration, cond func(types.Volume) bool, progress func(state string)) (types.Volume, error) {
	for {
		out, err := api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		if class, _ := cloud.Classify(err); class == cloud.Throttled {
			out, err = &ec2.DescribeVolumesOutput{}, nil // read again after interval
		}
		if err != nil {
			return types.Volume{}, fmt.Errorf("reading volume %s: %w", id, err)
		}
		for _, v := range out.Volumes {
			if aws.ToString(v.VolumeId) != id {
				continue
			}
			if progress != nil {
				progress(string(v.State))
			}
			if cond(v) {
				return v, nil
			}
			if v.State == types.VolumeStateError {
				return v, fmt.Errorf("volume %s: %w", id, ErrVolumeFailed)
			}
		}
		select {
		case <-ctx.Done():
			return types.Volume{}, fmt.Errorf("waiting for volume %s: %w", id, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// Available is Wait's condition for a volume ready to attach.
func Available(v types.Volume) bool { return v.State == types.VolumeStateAvailable }

// Attached is Wait's condition for a volume attached to instance.
func Attached(instance string) func(types.Volume) bool {
	return func(v types.Volume) bool {
		for _, a := range v.Attachments {
			if aws.ToString(a.InstanceId) == instance && a.State == types.VolumeAttachmentStateAttached {
				return true
			}
		}
		return false
	}
}

// Attach attaches the plan's volume id to its instance.
func Attach(ctx context.Context, api API, plan Plan, id string) error {
	_, err := api.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: aws.String(plan.Attach), Device: aws.String(plan.Device)})
	if err != nil {
		return fmt.Errorf("attaching volume %s to %s at %s: %w", id, plan.Attach, plan.Device, err)
	}
	return nil
}
