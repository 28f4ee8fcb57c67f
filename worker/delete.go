package worker

import (
	"context"
	"fmt"
	"slices"
	"sort"
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
