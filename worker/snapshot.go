package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/sethvargo/go-retry"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/internal/retention"
	"github.com/snapfleet/snapfleet/internal/tag"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// EC2 is the part of the EC2 API the worker uses, with the SDK's exact signatures so that
// *ec2.Client and the SDK's paginators fit it.
type EC2 interface {
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	CreateSnapshot(ctx context.Context, in *ec2.CreateSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error)
	// Instance jobs: read the instance, snapshot its volumes at once, tag each snapshot
	// with its volume and device.
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateSnapshots(ctx context.Context, in *ec2.CreateSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.CreateSnapshotsOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	// The delete's re-checks: is the volume gone (orphans), is the snapshot shared or locked.
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DescribeSnapshotAttribute(ctx context.Context, in *ec2.DescribeSnapshotAttributeInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error)
	DescribeLockedSnapshots(ctx context.Context, in *ec2.DescribeLockedSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLockedSnapshotsOutput, error)
}

// backoff tunes how throttled AWS calls are retried: a few short in-process tries with
// go-retry, then the message is snoozed on the queue.
type backoff struct {
	// Base is the first in-process wait; it doubles each try, with ±50% jitter.
	Base time.Duration
	// Tries is how many in-process retries follow the first call.
	Tries uint64
	// Cap bounds one wait, Budget all of them.
	Cap, Budget time.Duration
	// SnoozeMin is the least time a throttled message is hidden on the queue.
	SnoozeMin time.Duration
}

var defaultBackoff = backoff{
	Base:      250 * time.Millisecond,
	Tries:     3,
	Cap:       2 * time.Second,
	Budget:    4 * time.Second,
	SnoozeMin: 5 * time.Second,
}

// snapshots holds the snapshot handlers.
type snapshots struct {
	cfg *config.Config
	ec2 func(account, region string) EC2
	now func() time.Time
	// awsNow, when set, is AWS's clock per account-region: deletes wait while now is
	// skewed from it (checkClock).
	awsNow  func(account, region string) (time.Time, bool)
	backoff backoff
	// inFlight serialises jobs of one key in this process: a duplicate delivered in the
	// same batch waits and then finds the snapshot instead of making another.
	inFlight keyLock
	// locks caches each account-region's locked snapshots for lockTTL.
	locks lockCache
	// lim, when set, is the EC2 clients' rate limiter: coalesced lookups wait on it.
	lim *limit.Limiter
	// lookups coalesces the job-tag lookups and volume listings of an account-region.
	lookups lookups
}

// keyLock is a set of per-key mutexes that exist only while someone holds or waits.
type keyLock struct {
	mu   sync.Mutex
	keys map[string]*keyEntry
}

type keyEntry struct {
	sync.Mutex
	users int
}

// lock takes key's mutex and returns its release.
func (l *keyLock) lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.keys == nil {
		l.keys = map[string]*keyEntry{}
	}
	e := l.keys[key]
	if e == nil {
		e = &keyEntry{}
		l.keys[key] = e
	}
	e.users++
	l.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		l.mu.Lock()
		if e.users--; e.users == 0 {
			delete(l.keys, key)
		}
		l.mu.Unlock()
	}
}

// mux returns a Mux with the snapshot handlers registered by kind.
func (s *snapshots) mux() *Mux {
	m := NewMux()
	m.RegisterFunc(job.KindCreate, s.create)
	m.RegisterFunc(job.KindCreateInstance, s.createInstance)
	m.RegisterFunc(job.KindDelete, s.delete)
	return m
}

// call runs one AWS call. A throttled call is retried in-process a few times with
// exponential backoff and jitter; if it is still throttled — or its error code asks for
// a wait longer than in-process retries allow — the result is a Snooze that hides the
// message for at least the code's minimum wait.
func (s *snapshots) call(ctx context.Context, fn func(context.Context) error) error {
	b := s.backoff
	bo := retry.NewExponential(b.Base)
	bo = retry.WithJitterPercent(50, bo)
	bo = retry.WithCappedDuration(b.Cap, bo)
	bo = retry.WithMaxRetries(b.Tries, bo)
	bo = retry.WithMaxDuration(b.Budget, bo)
	err := retry.Do(ctx, bo, func(ctx context.Context) error {
		err := fn(ctx)
		if class, minWait := cloud.Classify(err); class == cloud.Throttled && minWait <= b.Cap {
			return retry.RetryableError(err)
		}
		return err
	})
	// The client's rate limit (cloud.Clients) would have held this job's slot longer than
	// the runner allows: hand the job back until the account-region's bucket refills, so
	// a busy account-region does not starve the others of concurrency.
	// It comes back a little before its token would be due (¾ to 1 of the wait), so that
	// the bucket has jobs waiting for it rather than idling while they are away.
	var wait *limit.WaitError
	if errors.As(err, &wait) {
		return Snooze(wait.Delay*3/4+rand.N(wait.Delay/4+1), err)
	}
	if class, minWait := cloud.Classify(err); class == cloud.Throttled {
		d := max(minWait, b.SnoozeMin)
		d += rand.N(d/2 + 1)
		return Snooze(d, err)
	}
	return err
}

// fail turns an AWS error that the handler did not handle itself into an outcome:
// snoozes pass through, denied and invalid requests are permanent, anything else is
// retried through the queue.
func fail(err error) error {
	var snooze *SnoozeError
	if errors.As(err, &snooze) {
		return err
	}
	switch class, _ := cloud.Classify(err); class {
	case cloud.Denied:
		return Permanent(reason.AccessDenied, err)
	case cloud.Invalid:
		return Permanent(reason.InvalidRequest, err)
	}
	return err
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// listSnapshots pages through DescribeSnapshots and keeps the snapshots owned by account:
// the owner is checked again here because an emulator, or a call without OwnerIds,
// returns snapshots of other owners.
func (s *snapshots) listSnapshots(ctx context.Context, api EC2, account string, in *ec2.DescribeSnapshotsInput) ([]types.Snapshot, error) {
	in.OwnerIds = []string{account}
	var out []types.Snapshot
	p := ec2.NewDescribeSnapshotsPaginator(api, in)
	for p.HasMorePages() {
		var page *ec2.DescribeSnapshotsOutput
		err := s.call(ctx, func(ctx context.Context) error {
			var err error
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, sn := range page.Snapshots {
			if aws.ToString(sn.OwnerId) == account {
				out = append(out, sn)
			}
		}
	}
	return out, nil
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

// create makes the snapshot of a create job unless one carrying its key exists.
func (s *snapshots) create(ctx context.Context, j job.Job) (Result, error) {
	p, ok := s.cfg.Policy(j.Policy)
	if !ok {
		return Result{}, Permanent(reason.UnknownPolicy, fmt.Errorf("policy %q is not in the worker's config", j.Policy))
	}
	api := s.ec2(j.Account, j.Region)
	defer s.inFlight.lock(j.Key)()

	found, err := s.jobSnapshots(ctx, api, j)
	if err != nil {
		return Result{}, fail(fmt.Errorf("looking for the snapshot of job %s: %w", j.Key, err))
	}
	if found.exists() {
		s.removeDuplicates(ctx, api, j, found.dups, nil)
		return Result{Action: Existed, Snapshot: found.first()}, nil
	}

	in := &ec2.CreateSnapshotInput{
		VolumeId:          aws.String(j.Volume),
		Description:       aws.String(job.CreateDescription(j.Policy, j.Key, "")),
		TagSpecifications: tagSpec(j, p, s.now()),
	}
	var out *ec2.CreateSnapshotOutput
	err = s.createOnce(ctx, "snapshot of "+j.Volume, reason.VolumeGone, func(ctx context.Context) error {
		var err error
		out, err = api.CreateSnapshot(ctx, in, noSDKRetry)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return s.settle(ctx, api, j, aws.ToString(out.SnapshotId))
}

// createOnce runs a CreateSnapshot(s) call through s.call; fn must pass noSDKRetry. The
// SDK must not resend these calls on its own: they have no client token, so after a lost
// response (a 5xx or a reset connection once the call took effect) a resend makes second
// snapshots. Throttled calls took no effect and are retried by s.call; any other failure
// goes back to the queue, and the retry looks for the job's snapshots before it creates.
// NotFound (the volume or instance is gone) is the skip gone.
func (s *snapshots) createOnce(ctx context.Context, what, gone string, fn func(context.Context) error) error {
	err := s.call(ctx, fn)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("creating %s: %w", what, err)
	if class, _ := cloud.Classify(err); class == cloud.NotFound {
		return skipErr(gone, err)
	}
	return fail(err)
}

// tagSpec holds the tags of DESIGN.md §4 that a create call writes (createTags).
func tagSpec(j job.Job, p config.Policy, now time.Time) []types.TagSpecification {
	return []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: createTags(j, p, now.UTC())}}
}

// createInstance snapshots every volume of an instance job's instance at one point in time
// (CreateSnapshots) unless snapshots carrying its key exist. The tags of DESIGN.md §4
// common to all of them — the managed marker and the job key first — are written in the
// call itself; each snapshot's volume, device and Name follow with CreateTags, and are
// completed by a redelivery when that step was interrupted. The policy of the worker's
// own config decides which volumes are left out (exclude tags, exclude_boot).
func (s *snapshots) createInstance(ctx context.Context, j job.Job) (Result, error) {
	p, ok := s.cfg.Policy(j.Policy)
	if !ok {
		return Result{}, Permanent(reason.UnknownPolicy, fmt.Errorf("policy %q is not in the worker's config", j.Policy))
	}
	api := s.ec2(j.Account, j.Region)
	defer s.inFlight.lock(j.Key)()

	found, err := s.jobSnapshots(ctx, api, j)
	if err != nil {
		return Result{}, fail(fmt.Errorf("looking for the snapshots of job %s: %w", j.Key, err))
	}
	inst, err := s.readInstance(ctx, api, j.Instance)
	s.removeDuplicates(ctx, api, j, found.dups, nil)
	if class, _ := cloud.Classify(err); class == cloud.NotFound {
		if found.exists() {
			return Result{Action: Existed, Snapshot: found.first()}, nil
		}
		return Result{}, skipErr(reason.InstanceGone, err)
	}
	if err != nil {
		return Result{}, fail(fmt.Errorf("reading instance %s: %w", j.Instance, err))
	}
	// The snapshots are named after the instance as it is named now.
	j.Name = tagMap(inst.Tags)[tag.Name]
	if found.exists() {
		return Result{Action: Existed, Snapshot: found.first()}, s.tagVolumes(ctx, api, j, inst, found.found())
	}
	spec, err := s.instanceSpec(ctx, api, p, inst)
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
		TagSpecifications: tagSpec(j, p, s.now()),
	}
	var out *ec2.CreateSnapshotsOutput
	err = s.createOnce(ctx, "snapshots of instance "+j.Instance, reason.InstanceGone, func(ctx context.Context) error {
		var err error
		out, err = api.CreateSnapshots(ctx, in, noSDKRetry)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	var made []string
	var snaps []types.Snapshot
	for _, si := range out.Snapshots {
		made = append(made, aws.ToString(si.SnapshotId))
		snaps = append(snaps, types.Snapshot{SnapshotId: si.SnapshotId, VolumeId: si.VolumeId, StartTime: si.StartTime})
	}
	if len(made) == 0 {
		return Result{}, fmt.Errorf("creating snapshots of instance %s: CreateSnapshots returned no snapshot", j.Instance)
	}
	res, _ := s.settle(ctx, api, j, made...)
	if res.Action == Existed {
		return res, nil
	}
	return res, s.tagVolumes(ctx, api, j, inst, snaps)
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
		var out *ec2.DescribeVolumesOutput
		err := s.call(ctx, func(ctx context.Context) error {
			var err error
			out, err = api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: ids})
			return err
		})
		if err != nil {
			return nil, err
		}
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
				left--
			case !isRoot:
				spec.ExcludeDataVolumeIds = append(spec.ExcludeDataVolumeIds, aws.ToString(v.VolumeId))
				left--
			}
		}
	}
	if left <= 0 {
		return nil, nil
	}
	return spec, nil
}

// tagVolumes writes the per-volume tags of DESIGN.md §4 — snapfleet:volume,
// snapfleet:device and Name — on the snapshots of an instance job that lack them. The
// snapshots are already managed (their marker came with CreateSnapshots): a failure here
// is retried through the queue, and the redelivery finds them and tags them.
func (s *snapshots) tagVolumes(ctx context.Context, api EC2, j job.Job, inst types.Instance, snaps []types.Snapshot) error {
	devices := map[string]string{}
	for _, m := range inst.BlockDeviceMappings {
		if m.Ebs != nil {
			devices[aws.ToString(m.Ebs.VolumeId)] = aws.ToString(m.DeviceName)
		}
	}
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
		err := s.call(ctx, func(ctx context.Context) error {
			_, err := api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(sn.SnapshotId)}, Tags: tags})
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("tagging snapshot %s of volume %s: %w", aws.ToString(sn.SnapshotId), vol, err))
		}
	}
	return nil
}

// noSDKRetry turns off the SDK's own retries for one call.
func noSDKRetry(o *ec2.Options) { o.RetryMaxAttempts = 1 }

// counts reports whether a snapshot other than the one being deleted counts toward the
// volume's retention, as the planner counts it: only completed snapshots do (a pending one
// may still fail), and not those AWS Backup or DLM manage.
func counts(sn types.Snapshot, tags map[string]string) bool {
	if sn.State != types.SnapshotStateCompleted {
		return false
	}
	for k := range tags {
		if tag.Protected(k) {
			return false
		}
	}
	return true
}

// keyed is what carries a create job's key in its account-region, usable snapshots only,
// split by the keeper rule (job.Keeper) over the creations of the key (job.SetOf).
type keyed struct {
	// keep is the keeper set, smallest id first; dups the usable snapshots of the other
	// creations, which may go; other the usable snapshots carrying the key that no create
	// of it made (job.SetOf), found but never removed as duplicates.
	keep, dups, other []types.Snapshot
}

// exists reports whether the job's key has a usable snapshot.
func (k keyed) exists() bool { return len(k.keep)+len(k.other) > 0 }

// first is the snapshot a job that found its key reports: the keeper's smallest id.
func (k keyed) first() string {
	if len(k.keep) > 0 {
		return aws.ToString(k.keep[0].SnapshotId)
	}
	return aws.ToString(k.other[0].SnapshotId)
}

// found is the job's snapshots that stay: the keeper set and the others.
func (k keyed) found() []types.Snapshot { return append(slices.Clone(k.keep), k.other...) }

// jobSnapshots lists the snapshots that carry j's key and splits them by the keeper rule
// (keyed). A snapshot that failed is no backup and is not listed; it makes its set no
// keeper. The lookup is coalesced with other jobs' of the account-region (lookups).
func (s *snapshots) jobSnapshots(ctx context.Context, api EC2, j job.Job) (keyed, error) {
	listed, err := s.lookup(ctx, api, j.Account, j.Region, nil, "tag:"+tag.Job, j.Key)
	if err != nil {
		return keyed{}, err
	}
	var made []job.Made
	sets := map[string]string{}
	var usable []types.Snapshot
	for _, sn := range listed {
		if tagMap(sn.Tags)[tag.Job] != j.Key {
			continue
		}
		id := aws.ToString(sn.SnapshotId)
		failed := sn.State == types.SnapshotStateError
		if set, ok := job.SetOf(j.Key, id, aws.ToString(sn.VolumeId), aws.ToString(sn.Description)); ok {
			made = append(made, job.Made{ID: id, Set: set, Failed: failed})
			sets[id] = set
		}
		if !failed {
			usable = append(usable, sn)
		}
	}
	slices.SortFunc(usable, func(a, b types.Snapshot) int {
		return strings.Compare(aws.ToString(a.SnapshotId), aws.ToString(b.SnapshotId))
	})
	keep, ok := job.Keeper(made)
	var k keyed
	for _, sn := range usable {
		set, isMade := sets[aws.ToString(sn.SnapshotId)]
		switch {
		case isMade && ok && set == keep:
			k.keep = append(k.keep, sn)
		case isMade && ok:
			k.dups = append(k.dups, sn)
		default:
			k.other = append(k.other, sn)
		}
	}
	return k, nil
}

// settle converges after a create: CreateSnapshot(s) has no client token, so two workers
// that took duplicates of one job at the same moment can both have created. Each looks
// again and applies the keeper rule (job.Keeper), which every observer agrees on whatever
// it saw: it removes every duplicate it sees (removeDuplicates), its own or another's, and
// reports the job as existing when its own creation was one of them. A failed look is not
// an error: the job took effect, and the planner removes a duplicate left over.
func (s *snapshots) settle(ctx context.Context, api EC2, j job.Job, made ...string) (Result, error) {
	created := Result{Action: Created, Snapshot: made[0]}
	k, err := s.jobSnapshots(ctx, api, j)
	if err != nil {
		return created, nil
	}
	s.removeDuplicates(ctx, api, j, k.dups, made)
	mine := func(ss []types.Snapshot) bool {
		return slices.ContainsFunc(ss, func(sn types.Snapshot) bool { return slices.Contains(made, aws.ToString(sn.SnapshotId)) })
	}
	if len(k.keep) == 0 || mine(k.keep) || !mine(k.dups) {
		return created, nil
	}
	return Result{Action: Existed, Snapshot: k.first()}, nil
}

// removeDuplicates deletes the duplicate creations of j's key that a listing found
// (keyed.dups; the keeper set exists and is usable): those of this job's own creation
// (made) at once, another's after the checks any delete makes — no AWS Backup or DLM tag,
// not shared, not locked; EC2 refuses one in use by an AMI. A failure is not the job's:
// the planner removes what is left (a delete job marked duplicate).
func (s *snapshots) removeDuplicates(ctx context.Context, api EC2, j job.Job, dups []types.Snapshot, made []string) {
	for _, sn := range dups {
		id := aws.ToString(sn.SnapshotId)
		if !slices.Contains(made, id) && !s.unprotected(ctx, api, j, sn) {
			continue
		}
		_ = s.call(ctx, func(ctx context.Context) error {
			_, err := api.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
			return err
		})
	}
}

// unprotected reports whether nothing outside snapfleet protects the snapshot: no AWS
// Backup or DLM tag, no share, no lock. A check that fails says protected (fail closed).
func (s *snapshots) unprotected(ctx context.Context, api EC2, j job.Job, sn types.Snapshot) bool {
	for k := range tagMap(sn.Tags) {
		if tag.Protected(k) {
			return false
		}
	}
	id := aws.ToString(sn.SnapshotId)
	if who, err := s.sharedWith(ctx, api, id); err != nil || who != "" {
		return false
	}
	state, err := s.lockState(ctx, api, j.Account, j.Region, id)
	return err == nil && state == ""
}

// duplicate reports whether snap is a duplicate creation of the create key it carries
// (snapfleet:job) in j's account-region, from a listing of that key made now: a usable
// keeper set of the key exists (job.Keeper) and snap is not in it. A delete job marked
// duplicate is a hint; this decides.
func (s *snapshots) duplicate(ctx context.Context, api EC2, j job.Job, snap *types.Snapshot) (bool, error) {
	key := tagMap(snap.Tags)[tag.Job]
	if !strings.HasPrefix(key, j.Account+"/"+j.Region+"/") {
		return false, nil
	}
	k, err := s.jobSnapshots(ctx, api, job.Job{Account: j.Account, Region: j.Region, Key: key})
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(k.dups, func(sn types.Snapshot) bool { return aws.ToString(sn.SnapshotId) == j.Snapshot }), nil
}

// createTags are the tags of DESIGN.md §4, sorted by key. snapfleet's own keys win over a
// policy tag of the same key (config validation already rejects snapfleet: keys).
func createTags(j job.Job, p config.Policy, start time.Time) []types.Tag {
	m := map[string]string{}
	for k, v := range p.Tags {
		m[k] = v
	}
	m[tag.Policy] = j.Policy
	m[tag.Job] = j.Key
	if j.Volume != "" {
		m[tag.Volume] = j.Volume
	}
	if j.Instance != "" {
		m[tag.Instance] = j.Instance
	}
	if j.Device != "" {
		m[tag.Device] = j.Device
	}
	if age := time.Duration(p.Retain.MaxAge); age > 0 {
		m[tag.Expires] = start.Add(age).UTC().Format(time.RFC3339)
	}
	m[tag.AutoBackup] = "true"
	m[tag.Name] = snapshotName(source(j), j.Device, start)

	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tags := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return tags
}

// maxTagValue is the most characters AWS takes in a tag value.
const maxTagValue = 256

// source names what a job's snapshots come from: the instance's Name tag, else the
// instance id (every create job names its instance).
func source(j job.Job) string {
	if j.Name != "" {
		return j.Name
	}
	return j.Instance
}

// snapshotName is the Name tag of DESIGN.md §4, "<instance Name tag or id> <device> <UTC
// timestamp>" (no device when there is none), the source shortened so the value fits
// in a tag.
func snapshotName(source, device string, at time.Time) string {
	rest := " " + at.UTC().Format(time.RFC3339)
	if device != "" {
		rest = " " + device + rest
	}
	if r, room := []rune(source), max(0, maxTagValue-utf8.RuneCountInString(rest)); len(r) > room {
		source = string(r[:room])
	}
	return source + rest
}

// copiedVolume is the VolumeId AWS gives a copied snapshot: no volume at all.
const copiedVolume = "vol-ffffffff"

// delete deletes the snapshot of a delete job only when live state, re-read now, says
// snapfleet may: the message is a hint, never an order (DESIGN.md §6.1–6.4, 6.7). The
// snapshot must be owned by the job's account and managed by the job's policy — or be a
// legacy snapshot that policy adopts in the worker's own config —; retention, recomputed
// over the volume's snapshots with the worker's config and clock (once that clock agrees
// with AWS's: checkClock), must expire it (with
// the orphans' floor only when DescribeVolumes says the volume is gone); and it must not
// be protected (AWS Backup or DLM tags, shared, locked, used by an AMI).
func (s *snapshots) delete(ctx context.Context, j job.Job) (Result, error) {
	p, ok := s.cfg.Policy(j.Policy)
	if !ok {
		return Result{}, Permanent(reason.UnknownPolicy, fmt.Errorf("policy %q is not in the worker's config", j.Policy))
	}
	api := s.ec2(j.Account, j.Region)
	gone := Result{Action: Gone, Snapshot: j.Snapshot}

	// Re-read the snapshot. The common case costs no call of its own: the listing of the
	// volume the job names (which retention needs anyway, coalesced with other deletes'
	// listings of the policy's volumes: lookups) holds the snapshot when it is this
	// account's, managed by this policy and tagged with that volume; it is then the same
	// record a read by id returns. Otherwise read it by id, without OwnerIds: a foreign
	// snapshot must be seen to be refused.
	var snap *types.Snapshot
	var listed []types.Snapshot
	if j.Volume != "" {
		var err error
		listed, err = s.managedSnapshots(ctx, api, j, j.Volume)
		if err != nil {
			return Result{}, fail(fmt.Errorf("listing snapshots of volume %s: %w", j.Volume, err))
		}
		for i := range listed {
			if t := tagMap(listed[i].Tags); aws.ToString(listed[i].SnapshotId) == j.Snapshot && t[tag.Policy] == j.Policy && t[tag.Volume] == j.Volume {
				snap = &listed[i]
			}
		}
		if snap == nil {
			listed = nil // not the listing this snapshot's checks use
		}
	}
	if snap == nil {
		var out *ec2.DescribeSnapshotsOutput
		err := s.call(ctx, func(ctx context.Context) error {
			var err error
			out, err = api.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{j.Snapshot}})
			return err
		})
		if err != nil {
			if class, _ := cloud.Classify(err); class == cloud.NotFound {
				return gone, nil
			}
			return Result{}, fail(fmt.Errorf("reading snapshot %s: %w", j.Snapshot, err))
		}
		for i := range out.Snapshots {
			if aws.ToString(out.Snapshots[i].SnapshotId) == j.Snapshot {
				snap = &out.Snapshots[i]
			}
		}
		if snap == nil {
			return gone, nil
		}
	}

	if owner := aws.ToString(snap.OwnerId); owner != j.Account {
		return Result{}, Permanent(reason.RefusedForeign, fmt.Errorf("snapshot %s is owned by %q, not %s", j.Snapshot, owner, j.Account))
	}
	tags := tagMap(snap.Tags)
	policy, managed := tags[tag.Policy]
	adopted := !managed && p.Adopts(tags)
	switch {
	case adopted:
		policy = p.Name
	case !managed:
		return Result{}, Permanent(reason.RefusedUnmanaged, fmt.Errorf("snapshot %s has no %s tag and policy %s does not adopt it", j.Snapshot, tag.Policy, j.Policy))
	case policy != j.Policy:
		if _, known := s.cfg.Policy(policy); !known {
			return Result{}, Permanent(reason.UnknownPolicy, fmt.Errorf("snapshot %s belongs to policy %q, not in the worker's config", j.Snapshot, policy))
		}
		return Result{}, Permanent(reason.RefusedPolicyMismatch, fmt.Errorf("snapshot %s belongs to policy %q, the job names %q", j.Snapshot, policy, j.Policy))
	}
	for k := range tags {
		if tag.Protected(k) {
			return Result{}, skipErr(reason.Protected, fmt.Errorf("snapshot %s carries %s", j.Snapshot, k))
		}
	}
	if snap.StartTime == nil || snap.StartTime.IsZero() {
		return Result{}, Permanent(reason.RefusedRetention, fmt.Errorf("snapshot %s has no start time", j.Snapshot))
	}

	// The volume's snapshots of this policy, grouped as the planner groups them: managed
	// ones by the snapfleet:volume tag, else by VolumeId; adopted ones by VolumeId.
	volume := tags[tag.Volume]
	if volume == "" || adopted {
		volume = aws.ToString(snap.VolumeId)
	}
	if volume == "" || volume == copiedVolume {
		return Result{}, Permanent(reason.RefusedRetention, fmt.Errorf("snapshot %s names no volume", j.Snapshot))
	}
	group, seen, err := s.volumeGroup(ctx, api, j, p, volume, managed && tags[tag.Volume] == "", listed)
	if err != nil {
		// Fail closed: never delete on a failed listing.
		return Result{}, fail(fmt.Errorf("listing snapshots of volume %s: %w", volume, err))
	}
	if !seen {
		return Result{}, fmt.Errorf("listing snapshots of volume %s: snapshot %s is not in it; not deleting on a partial listing", volume, j.Snapshot)
	}
	// A duplicate creation of its job key goes whatever retention says (DESIGN.md §6.5): a
	// keeper of the same key stays. Only the delete jobs marked duplicate ask.
	dup := false
	if j.Duplicate {
		if dup, err = s.duplicate(ctx, api, j, snap); err != nil {
			return Result{}, fail(fmt.Errorf("looking for the keeper of snapshot %s: %w", j.Snapshot, err))
		}
	}
	now := s.now()
	if err := s.checkClock(j, now); err != nil {
		return Result{}, err
	}
	rules := retention.FromPolicy(p)
	if kept, d := keptBy(group, rules, now, j.Snapshot); kept && !dup {
		// The orphans' floor is lower: it applies only when the volume is really gone.
		orphan := rules.Orphaned()
		if keptAsOrphan, _ := keptBy(group, orphan, now, j.Snapshot); keptAsOrphan {
			return Result{}, Permanent(reason.RefusedRetention, fmt.Errorf("snapshot %s of volume %s is kept: %s", j.Snapshot, volume, rules.Explain(d)))
		}
		exists, err := s.volumeExists(ctx, api, volume)
		if err != nil {
			return Result{}, fail(fmt.Errorf("checking whether volume %s still exists: %w", volume, err))
		}
		if exists {
			return Result{}, Permanent(reason.RefusedRetention, fmt.Errorf("snapshot %s of volume %s is kept: %s (the volume exists, so the orphans' floor does not apply)", j.Snapshot, volume, rules.Explain(d)))
		}
	}

	// External protections the tags do not show.
	if who, err := s.sharedWith(ctx, api, j.Snapshot); err != nil {
		if class, _ := cloud.Classify(err); class == cloud.NotFound {
			return gone, nil
		}
		return Result{}, fail(fmt.Errorf("reading the shares of snapshot %s: %w", j.Snapshot, err))
	} else if who != "" {
		return Result{}, skipErr(reason.Shared, fmt.Errorf("snapshot %s is shared with %s", j.Snapshot, who))
	}
	if state, err := s.lockState(ctx, api, j.Account, j.Region, j.Snapshot); err != nil {
		return Result{}, fail(fmt.Errorf("reading the lock of snapshot %s: %w", j.Snapshot, err))
	} else if state != "" {
		return Result{}, skipErr(reason.Locked, fmt.Errorf("snapshot %s is locked (%s)", j.Snapshot, state))
	}

	err = s.call(ctx, func(ctx context.Context) error {
		_, err := api.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(j.Snapshot)})
		return err
	})
	if err != nil {
		err = fmt.Errorf("deleting snapshot %s: %w", j.Snapshot, err)
		switch class, _ := cloud.Classify(err); class {
		case cloud.NotFound:
			return gone, nil
		case cloud.InUse:
			return Result{}, skipErr(reason.InUse, err)
		}
		return Result{}, fail(err)
	}
	return Result{Action: Deleted, Snapshot: j.Snapshot}, nil
}

// MaxClockSkew is how far the worker's clock may be from AWS's for a delete to go on:
// retention measured on a clock off by more could expire a young snapshot.
const MaxClockSkew = 5 * time.Minute

// clockSkewDelay is how long a delete waits on the queue when the clocks disagree.
const clockSkewDelay = 5 * time.Minute

// checkClock snoozes a delete (clock_skew) when AWS's clock in the job's account-region
// — the Date of its latest EC2 response, which the delete's own listing has just fetched —
// is unknown or more than MaxClockSkew from now, the worker's clock. Not the job's fault:
// it is not dead-lettered, and a worker with a good clock will do it.
func (s *snapshots) checkClock(j job.Job, now time.Time) error {
	if s.awsNow == nil {
		return nil
	}
	at, ok := s.awsNow(j.Account, j.Region)
	if !ok {
		return snoozeFor(reason.ClockSkew, clockSkewDelay, fmt.Errorf("not deleting snapshot %s: AWS's clock in %s/%s is unknown (its responses carry no Date)", j.Snapshot, j.Account, j.Region))
	}
	if skew := now.Sub(at); skew > MaxClockSkew || skew < -MaxClockSkew {
		return snoozeFor(reason.ClockSkew, clockSkewDelay, fmt.Errorf("not deleting snapshot %s: the worker's clock %s is %s from AWS's %s, more than %s (fix the clock; --allow-clock-skew if --now is meant)",
			j.Snapshot, now.UTC().Format(time.RFC3339), skew.Round(time.Second), at.UTC().Format(time.RFC3339), MaxClockSkew))
	}
	return nil
}

// keptBy reports whether retention keeps snapshot id of group, and its decision.
func keptBy(group []retention.Snapshot, r retention.Rules, now time.Time, id string) (bool, retention.Decision) {
	for _, d := range retention.Decide(group, r, now) {
		if d.ID == id {
			return d.Keep, d
		}
	}
	return true, retention.Decision{ID: id, Keep: true}
}

// volumeGroup lists the snapshots of policy p on volume that count for retention, as the
// planner counts them, and whether the job's snapshot is among them. Managed snapshots
// are found by their volume tag (by VolumeId when the job's snapshot has no volume tag:
// byVolumeID); adopted ones by VolumeId and p's adopt tags. Every listing must succeed. A
// listing can only miss snapshots the planner counted, which makes the check keep more,
// never less: one listing per kind keeps the Describe calls of a delete few (the first
// listing also re-reads the snapshot). managed, when not nil, is a listing of the managed
// snapshots of volume already made; it may hold other volumes' too (a coalesced listing),
// which are left out as any listing's are.
func (s *snapshots) volumeGroup(ctx context.Context, api EC2, j job.Job, p config.Policy, volume string, byVolumeID bool, managed []types.Snapshot) ([]retention.Snapshot, bool, error) {
	if managed == nil {
		var err error
		if byVolumeID {
			managed, err = s.listSnapshots(ctx, api, j.Account, &ec2.DescribeSnapshotsInput{
				Filters: []types.Filter{filter("tag:"+tag.Policy, p.Name), filter("volume-id", volume)}})
		} else {
			managed, err = s.managedSnapshots(ctx, api, j, volume)
		}
		if err != nil {
			return nil, false, err
		}
	}
	listings := [][]types.Snapshot{managed}
	if p.Adopt != nil {
		q := []types.Filter{filter("volume-id", volume)}
		keys := make([]string, 0, len(p.Adopt.Tags))
		for k := range p.Adopt.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			q = append(q, filter("tag:"+k, p.Adopt.Tags[k]))
		}
		adopted, err := s.listSnapshots(ctx, api, j.Account, &ec2.DescribeSnapshotsInput{Filters: q})
		if err != nil {
			return nil, false, err
		}
		listings = append(listings, adopted)
	}
	var group []retention.Snapshot
	seen := false
	ids := map[string]bool{}
	for _, listed := range listings {
		for _, sn := range listed {
			id := aws.ToString(sn.SnapshotId)
			if ids[id] {
				continue
			}
			t := tagMap(sn.Tags)
			if pol, managed := t[tag.Policy]; managed {
				v := t[tag.Volume]
				if v == "" {
					v = aws.ToString(sn.VolumeId)
				}
				if pol != p.Name || v != volume {
					continue
				}
			} else if !p.Adopts(t) || aws.ToString(sn.VolumeId) != volume {
				continue
			}
			ids[id] = true
			if id == j.Snapshot {
				seen = true
			} else if !counts(sn, t) {
				continue
			}
			group = append(group, retention.Snapshot{ID: id, Start: aws.ToTime(sn.StartTime)})
		}
	}
	return group, seen, nil
}

// managedSnapshots lists the snapshots of j's policy tagged with volume, coalesced with
// the other listings of the policy's volumes in j's account-region (lookups): the result
// may hold other volumes' snapshots too.
func (s *snapshots) managedSnapshots(ctx context.Context, api EC2, j job.Job, volume string) ([]types.Snapshot, error) {
	return s.lookup(ctx, api, j.Account, j.Region, []types.Filter{filter("tag:"+tag.Policy, j.Policy)}, "tag:"+tag.Volume, volume)
}

// volumeExists asks DescribeVolumes whether the volume still exists.
func (s *snapshots) volumeExists(ctx context.Context, api EC2, volume string) (bool, error) {
	var out *ec2.DescribeVolumesOutput
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{volume}})
		return err
	})
	if class, _ := cloud.Classify(err); class == cloud.NotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, v := range out.Volumes {
		if aws.ToString(v.VolumeId) == volume {
			return true, nil
		}
	}
	return false, nil
}

// sharedWith names the accounts or groups a snapshot is shared with, "" when none.
func (s *snapshots) sharedWith(ctx context.Context, api EC2, id string) (string, error) {
	var out *ec2.DescribeSnapshotAttributeOutput
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = api.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{
			SnapshotId: aws.String(id), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		})
		return err
	})
	if err != nil {
		return "", err
	}
	var who []string
	for _, p := range out.CreateVolumePermissions {
		switch {
		case p.UserId != nil:
			who = append(who, aws.ToString(p.UserId))
		case p.Group != "":
			who = append(who, "group "+string(p.Group))
		}
	}
	sort.Strings(who)
	return strings.Join(who, ", "), nil
}

// lockTTL is how long the worker trusts its listing of an account-region's locked
// snapshots. A lock taken since is still enforced by EC2, which refuses the delete (the
// job is retried and then finds the lock); the planner checked the locks as well.
const lockTTL = 10 * time.Second

// lockCache holds, per account-region, the locked snapshots listed within lockTTL: one
// DescribeLockedSnapshots per account-region every lockTTL instead of one per delete, the
// Describe bucket being shared with every other check.
type lockCache struct {
	mu      sync.Mutex
	ttl     time.Duration // lockTTL when 0 (tests set it)
	byScope map[[2]string]*lockList
}

type lockList struct {
	mu     sync.Mutex // held while listing: one listing at a time per account-region
	at     time.Time
	states map[string]string // snapshot id → lock state, expired locks left out
}

// lockState returns the snapshot's lock state when it is locked, "" when it is not, from
// the account-region's listing of locked snapshots, made again when older than lockTTL.
// An endpoint that says DescribeLockedSnapshots does not exist (cloud.Unsupported) has no
// locks; any other error fails closed.
func (s *snapshots) lockState(ctx context.Context, api EC2, account, region, id string) (string, error) {
	c := &s.locks
	c.mu.Lock()
	if c.byScope == nil {
		c.byScope = map[[2]string]*lockList{}
	}
	l := c.byScope[[2]string{account, region}]
	if l == nil {
		l = &lockList{}
		c.byScope[[2]string{account, region}] = l
	}
	ttl := c.ttl
	c.mu.Unlock()
	if ttl <= 0 {
		ttl = lockTTL
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.states == nil || time.Since(l.at) >= ttl {
		at := time.Now()
		states, err := s.listLocks(ctx, api)
		if err != nil {
			return "", err
		}
		l.states, l.at = states, at
	}
	return l.states[id], nil
}

// listLocks lists the account-region's locked snapshots (every page), expired locks left
// out.
func (s *snapshots) listLocks(ctx context.Context, api EC2) (map[string]string, error) {
	states := map[string]string{}
	in := &ec2.DescribeLockedSnapshotsInput{}
	for {
		var out *ec2.DescribeLockedSnapshotsOutput
		err := s.call(ctx, func(ctx context.Context) error {
			var err error
			out, err = api.DescribeLockedSnapshots(ctx, in)
			return err
		})
		if class, _ := cloud.Classify(err); class == cloud.Unsupported {
			return states, nil
		}
		if err != nil {
			return nil, err
		}
		for _, l := range out.Snapshots {
			if l.LockState != types.LockStateExpired {
				states[aws.ToString(l.SnapshotId)] = string(l.LockState)
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return states, nil
		}
		in.NextToken = out.NextToken
	}
}
