package worker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// create makes the snapshot of a create job unless one carrying its key exists.
func (s *snapshots) create(ctx context.Context, j job.Job) (Result, error) {
	c, unlock, err := s.startCreate(ctx, j, "snapshot")
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if c.found.exists() {
		s.removeDuplicates(ctx, c.api, j, c.found.dups, nil)
		return Result{Action: Existed, Snapshot: c.found.first()}, nil
	}

	in := &ec2.CreateSnapshotInput{
		VolumeId:          aws.String(j.Volume),
		Description:       aws.String(job.CreateDescription(j.Policy, j.Key, "")),
		TagSpecifications: tagSpec(j, c.policy, s.now()),
	}
	var out *ec2.CreateSnapshotOutput
	err = s.createOnce(ctx, "snapshot of "+j.Volume, reason.VolumeGone, func(ctx context.Context) error {
		var err error
		out, err = c.api.CreateSnapshot(ctx, in, noSDKRetry)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return s.settle(ctx, c.api, j, aws.ToString(out.SnapshotId))
}

// createStart is what a create handler starts from (startCreate).
type createStart struct {
	policy config.Policy
	api    EC2
	// found is what already carries the job's key.
	found keyed
	// started, when set (a cold backup, cold.go), starts the instance again once its
	// snapshots are made, before their tags wait for the CreateTags bucket (tagPace).
	started func() error
}

// startCreate begins a create job: it reads the job's policy, takes the job key's lock
// (inFlight) and looks for the snapshots that carry the key; what names them in the
// error. The caller holds the lock until it returns (unlock); on an error it is not held.
func (s *snapshots) startCreate(ctx context.Context, j job.Job, what string) (c createStart, unlock func(), err error) {
	p, err := policyOf(s.cfg, j.Policy)
	if err != nil {
		return createStart{}, nil, err
	}
	api := s.ec2(j.Account, j.Region)
	unlock = s.inFlight.lock(j.Key)
	found, err := s.jobSnapshots(ctx, api, j)
	if err != nil {
		unlock()
		return createStart{}, nil, fail(fmt.Errorf("looking for the %s of job %s: %w", what, j.Key, err))
	}
	return createStart{policy: p, api: api, found: found}, unlock, nil
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
	created := Result{Action: Created, Snapshot: made[0], Reason: reason.Due, Snapshots: made}
	if strings.Contains(j.Key, "/"+job.EventPrefix) {
		created.Reason = reason.Event
	}
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

// createTags are the tags of DESIGN.md §4, sorted by key: the job's instance tags
// (tags_from_instance), the policy's tags over them, snapfleet's own keys over both (config
// validation and the job's decoder already reject snapfleet: keys).
func createTags(j job.Job, p config.Policy, start time.Time) []types.Tag {
	m := map[string]string{}
	for k, v := range j.InstanceTags {
		m[k] = v
	}
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

	tags := make([]types.Tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
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
