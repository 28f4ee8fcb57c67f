package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/retention"
	"github.com/snapfleet/snapfleet/internal/tag"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// copiedVolume is the VolumeId AWS gives a copied snapshot: no volume at all.
const copiedVolume = "vol-ffffffff"

// delete deletes the snapshot of a delete job only when live state, re-read now, says
// snapfleet may: the message is a hint, never an order (DESIGN.md §6.1–6.4, 6.7). Its
// steps, in order: re-read the snapshot (readTarget); it must be owned by the job's
// account and managed by the job's policy — or be a legacy snapshot that policy adopts in
// the worker's own config — (checkManaged); carry no AWS Backup or DLM tag (checkTags);
// be expired by retention, recomputed over the volume's snapshots with the worker's
// config and clock (checkRetention); and be neither shared nor locked (checkShares); EC2
// refuses one used by an AMI (deleteNow).
func (s *snapshots) delete(ctx context.Context, j job.Job) (Result, error) {
	p, err := policyOf(s.cfg, j.Policy)
	if err != nil {
		return Result{}, err
	}
	api := s.ec2(j.Account, j.Region)
	t, err := s.readTarget(ctx, api, j, p)
	if err != nil {
		return deleteResult(j, err)
	}
	if err := checkManaged(s.cfg, j, t); err != nil {
		return deleteResult(j, err)
	}
	if err := checkTags(j, t.tags); err != nil {
		return deleteResult(j, err)
	}
	var dup bool
	if t.tags[tag.Source] != "" {
		err = s.checkCopyRetention(ctx, api, j, p, t) // a copy: its destination's rules (copydelete.go)
	} else {
		dup, err = s.checkRetention(ctx, api, j, p, t)
	}
	if err != nil {
		return deleteResult(j, err)
	}
	if err := s.checkShares(ctx, api, j); err != nil {
		return deleteResult(j, err)
	}
	res, err := deleteResult(j, s.deleteNow(ctx, api, j))
	if dup && res.Action == Deleted {
		res.Reason = reason.Duplicate
	}
	return res, err
}

// errGone says that the snapshot of a delete job no longer exists.
var errGone = errors.New("snapshot gone")

// deleteResult is what the delete handler returns after its steps: Deleted when they
// all passed, Gone on errGone, else their error.
func deleteResult(j job.Job, err error) (Result, error) {
	switch {
	case err == nil:
		return Result{Action: Deleted, Snapshot: j.Snapshot, Reason: retention.Expired}, nil
	case errors.Is(err, errGone):
		return Result{Action: Gone, Snapshot: j.Snapshot}, nil
	}
	return Result{}, err
}

// target is the snapshot of a delete job as re-read now.
type target struct {
	snap *types.Snapshot
	// listed is the listing of the job's volume that holds snap; nil when snap was read
	// by id.
	listed []types.Snapshot
	tags   map[string]string
	// managed: it carries a policy tag; adopted: it does not, and the job's policy adopts
	// it.
	managed, adopted bool
}

// readTarget re-reads the snapshot of a delete job; errGone when it no longer exists. The
// common case costs no call of its own: the listing of the volume the job names (which
// retention needs anyway, coalesced with other deletes' listings of the policy's
// volumes: lookups) holds the snapshot when it is this account's, managed by this policy
// and tagged with that volume; it is then the same record a read by id returns.
// Otherwise it is read by id (readSnapshot).
func (s *snapshots) readTarget(ctx context.Context, api EC2, j job.Job, p config.Policy) (target, error) {
	var t target
	if j.Volume != "" {
		listed, err := s.managedSnapshots(ctx, api, j, j.Volume)
		if err != nil {
			return target{}, fail(fmt.Errorf("listing snapshots of volume %s: %w", j.Volume, err))
		}
		for i := range listed {
			if tags := tagMap(listed[i].Tags); aws.ToString(listed[i].SnapshotId) == j.Snapshot && tags[tag.Policy] == j.Policy && tags[tag.Volume] == j.Volume {
				t.snap = &listed[i]
			}
		}
		if t.snap != nil {
			t.listed = listed
		}
	}
	if t.snap == nil {
		var err error
		if t.snap, err = s.readSnapshot(ctx, api, j.Snapshot); err != nil {
			return target{}, err
		}
	}
	t.tags = tagMap(t.snap.Tags)
	_, t.managed = t.tags[tag.Policy]
	t.adopted = !t.managed && p.Adopts(t.tags)
	return t, nil
}

// readSnapshot reads a snapshot by id, without OwnerIds: a foreign snapshot must be seen
// to be refused. errGone when it does not exist.
func (s *snapshots) readSnapshot(ctx context.Context, api EC2, id string) (*types.Snapshot, error) {
	var out *ec2.DescribeSnapshotsOutput
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = api.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		return err
	})
	if err != nil {
		if class, _ := cloud.Classify(err); class == cloud.NotFound {
			return nil, errGone
		}
		return nil, fail(fmt.Errorf("reading snapshot %s: %w", id, err))
	}
	var snap *types.Snapshot
	for i := range out.Snapshots {
		if aws.ToString(out.Snapshots[i].SnapshotId) == id {
			snap = &out.Snapshots[i]
		}
	}
	if snap == nil {
		return nil, errGone
	}
	return snap, nil
}

// checkManaged refuses a snapshot that is not the job's account's, or neither managed by
// the job's policy nor adopted by it.
func checkManaged(cfg *config.Config, j job.Job, t target) error {
	if owner := aws.ToString(t.snap.OwnerId); owner != j.Account {
		return Permanent(reason.RefusedForeign, fmt.Errorf("snapshot %s is owned by %q, not %s", j.Snapshot, owner, j.Account))
	}
	policy := t.tags[tag.Policy]
	switch {
	case t.adopted:
	case !t.managed:
		return Permanent(reason.RefusedUnmanaged, fmt.Errorf("snapshot %s has no %s tag and policy %s does not adopt it", j.Snapshot, tag.Policy, j.Policy))
	case policy != j.Policy:
		if _, known := cfg.Policy(policy); !known {
			return Permanent(reason.UnknownPolicy, fmt.Errorf("snapshot %s belongs to policy %q, not in the worker's config", j.Snapshot, policy))
		}
		return Permanent(reason.RefusedPolicyMismatch, fmt.Errorf("snapshot %s belongs to policy %q, the job names %q", j.Snapshot, policy, j.Policy))
	}
	return nil
}

// checkTags skips a snapshot that AWS Backup or DLM manages (a protected tag).
func checkTags(j job.Job, tags map[string]string) error {
	for k := range tags {
		if tag.Protected(k) {
			return skipErr(reason.Protected, fmt.Errorf("snapshot %s carries %s", j.Snapshot, k))
		}
	}
	return nil
}

// checkRetention refuses the snapshot unless retention, recomputed now over its volume's
// snapshots (retentionGroup), expires it — with the orphans' floor when the volume is
// gone (checkKept) — or it is a duplicate creation of its job key, which goes whatever
// retention says (DESIGN.md §6.5; only the delete jobs marked duplicate ask). Nothing is
// decided on a clock that disagrees with AWS's (checkClock). dup says the snapshot goes as
// a duplicate.
func (s *snapshots) checkRetention(ctx context.Context, api EC2, j job.Job, p config.Policy, t target) (dup bool, err error) {
	if t.snap.StartTime == nil || t.snap.StartTime.IsZero() {
		return false, Permanent(reason.RefusedRetention, fmt.Errorf("snapshot %s has no start time", j.Snapshot))
	}
	volume, group, err := s.retentionGroup(ctx, api, j, p, t)
	if err != nil {
		return false, err
	}
	if j.Duplicate {
		if dup, err = s.duplicate(ctx, api, j, t.snap); err != nil {
			return false, fail(fmt.Errorf("looking for the keeper of snapshot %s: %w", j.Snapshot, err))
		}
	}
	now := s.now()
	if err := s.checkClock(j, now); err != nil {
		return false, err
	}
	if dup {
		return true, nil
	}
	return false, s.checkKept(ctx, api, j, p, volume, group, now)
}

// retentionGroup names the volume the snapshot counts under and lists that volume's
// snapshots of this policy, grouped as the planner groups them: managed ones by the
// snapfleet:volume tag, else by VolumeId; adopted ones by VolumeId. It fails closed: no
// delete on a failed or partial listing.
func (s *snapshots) retentionGroup(ctx context.Context, api EC2, j job.Job, p config.Policy, t target) (string, []retention.Snapshot, error) {
	volume := t.tags[tag.Volume]
	if volume == "" || t.adopted {
		volume = aws.ToString(t.snap.VolumeId)
	}
	if volume == "" || volume == copiedVolume {
		return "", nil, Permanent(reason.RefusedRetention, fmt.Errorf("snapshot %s names no volume", j.Snapshot))
	}
	group, seen, err := s.volumeGroup(ctx, api, j, p, volume, t.managed && t.tags[tag.Volume] == "", t.listed)
	if err != nil {
		return "", nil, fail(fmt.Errorf("listing snapshots of volume %s: %w", volume, err))
	}
	if !seen {
		return "", nil, fmt.Errorf("listing snapshots of volume %s: snapshot %s is not in it; not deleting on a partial listing", volume, j.Snapshot)
	}
	return volume, group, nil
}

// checkKept refuses the snapshot when p's retention keeps it in group, unless the
// orphans' floor, lower, expires it and DescribeVolumes says the volume is really gone.
func (s *snapshots) checkKept(ctx context.Context, api EC2, j job.Job, p config.Policy, volume string, group []retention.Snapshot, now time.Time) error {
	rules := retention.FromPolicy(p)
	kept, d := keptBy(group, rules, now, j.Snapshot)
	if !kept {
		return nil
	}
	if keptAsOrphan, _ := keptBy(group, rules.Orphaned(), now, j.Snapshot); keptAsOrphan {
		return Permanent(reason.RefusedRetention, fmt.Errorf("snapshot %s of volume %s is kept: %s", j.Snapshot, volume, rules.Explain(d)))
	}
	exists, err := s.volumeExists(ctx, api, volume)
	if err != nil {
		return fail(fmt.Errorf("checking whether volume %s still exists: %w", volume, err))
	}
	if exists {
		return Permanent(reason.RefusedRetention, fmt.Errorf("snapshot %s of volume %s is kept: %s (the volume exists, so the orphans' floor does not apply)", j.Snapshot, volume, rules.Explain(d)))
	}
	return nil
}

// checkShares skips a snapshot that is shared or locked: protections its tags do not
// show. errGone when it went meanwhile.
func (s *snapshots) checkShares(ctx context.Context, api EC2, j job.Job) error {
	who, err := s.sharedWith(ctx, api, j.Snapshot)
	if err != nil {
		if class, _ := cloud.Classify(err); class == cloud.NotFound {
			return errGone
		}
		return fail(fmt.Errorf("reading the shares of snapshot %s: %w", j.Snapshot, err))
	}
	if who != "" {
		return skipErr(reason.Shared, fmt.Errorf("snapshot %s is shared with %s", j.Snapshot, who))
	}
	state, err := s.lockState(ctx, api, j.Account, j.Region, j.Snapshot)
	if err != nil {
		return fail(fmt.Errorf("reading the lock of snapshot %s: %w", j.Snapshot, err))
	}
	if state != "" {
		return skipErr(reason.Locked, fmt.Errorf("snapshot %s is locked (%s)", j.Snapshot, state))
	}
	return nil
}

// deleteNow deletes the snapshot; errGone when it went meanwhile, the skip in_use when an
// AMI uses it.
func (s *snapshots) deleteNow(ctx context.Context, api EC2, j job.Job) error {
	err := s.call(ctx, func(ctx context.Context) error {
		_, err := api.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(j.Snapshot)})
		return err
	})
	if err == nil {
		return nil
	}
	err = fmt.Errorf("deleting snapshot %s: %w", j.Snapshot, err)
	switch class, _ := cloud.Classify(err); class {
	case cloud.NotFound:
		return errGone
	case cloud.InUse:
		return skipErr(reason.InUse, err)
	}
	return fail(err)
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
		adopted, err := s.adoptedSnapshots(ctx, api, j.Account, p, volume)
		if err != nil {
			return nil, false, err
		}
		listings = append(listings, adopted)
	}
	group, seen := groupOf(listings, p, volume, j.Snapshot)
	return group, seen, nil
}

// groupOf keeps, of listings, the snapshots of policy p on volume that count for
// retention (counts), each once, and says whether snapshot is among them (it is in the
// group whether it counts or not).
func groupOf(listings [][]types.Snapshot, p config.Policy, volume, snapshot string) ([]retention.Snapshot, bool) {
	var group []retention.Snapshot
	seen := false
	ids := map[string]bool{}
	dup := duplicateCreations(listings)
	for _, listed := range listings {
		for _, sn := range listed {
			id := aws.ToString(sn.SnapshotId)
			if ids[id] {
				continue
			}
			t := tagMap(sn.Tags)
			if t[tag.Source] != "" {
				continue // a copy never counts as a snapshot of its volume here
			}
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
			if id == snapshot {
				seen = true
			} else if !counts(sn, t) || dup[id] {
				continue
			}
			group = append(group, retention.Snapshot{ID: id, Start: aws.ToTime(sn.StartTime)})
		}
	}
	return group, seen
}

// duplicateCreations are the listed snapshots that are creations of a job key but not its
// keeper's set (job.Keeper). Like the planner, retention does not count them: leaving
// them out keeps more of the volume's other snapshots, never fewer, so the worker needs no
// more than its listing (the planner also waits for the keeper to complete before it
// removes a duplicate; that wait is not needed to count less).
func duplicateCreations(listings [][]types.Snapshot) map[string]bool {
	byKey := map[string][]job.Made{}
	for _, listed := range listings {
		for _, sn := range listed {
			key, id := tagMap(sn.Tags)[tag.Job], aws.ToString(sn.SnapshotId)
			if set, ok := job.SetOf(key, id, aws.ToString(sn.VolumeId), aws.ToString(sn.Description)); ok {
				byKey[key] = append(byKey[key], job.Made{ID: id, Set: set, Failed: sn.State == types.SnapshotStateError})
			}
		}
	}
	dup := map[string]bool{}
	for _, made := range byKey {
		keep, ok := job.Keeper(made)
		for _, m := range made {
			if ok && m.Set != keep {
				dup[m.ID] = true
			}
		}
	}
	return dup
}

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
