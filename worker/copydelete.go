package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/retention"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// checkCopyRetention is checkRetention for a copy (it carries snapfleet:source): the
// rules are those of the policy's destination here, recomputed over the destination's
// copies of the same source volume, each dated by its source; the live floor holds (a
// copy has no orphans' floor: its volume never exists here). A copy of a policy that
// does not copy here is refused.
func (s *snapshots) checkCopyRetention(ctx context.Context, api EC2, j job.Job, p config.Policy, t target) error {
	dest, ok := p.CopyTo(t.tags[tag.SourceAccount], t.tags[tag.SourceRegion], j.Account, j.Region)
	if !ok {
		return Permanent(reason.RefusedPolicyMismatch, fmt.Errorf("copy %s: policy %s does not copy snapshots of %s/%s to %s/%s",
			j.Snapshot, j.Policy, t.tags[tag.SourceAccount], t.tags[tag.SourceRegion], j.Account, j.Region))
	}
	volume := t.tags[tag.Volume]
	if volume == "" {
		return Permanent(reason.RefusedRetention, fmt.Errorf("copy %s names no volume", j.Snapshot))
	}
	listed := t.listed
	if listed == nil {
		var err error
		if listed, err = s.managedSnapshots(ctx, api, j, volume); err != nil {
			return fail(fmt.Errorf("listing copies of volume %s: %w", volume, err))
		}
	}
	group, seen, err := copyGroup(listed, j, volume)
	if err != nil {
		return err
	}
	if !seen {
		return fmt.Errorf("listing copies of volume %s: copy %s is not in it; not deleting on a partial listing", volume, j.Snapshot)
	}
	now := s.now()
	if err := s.checkClock(j, now); err != nil {
		return err
	}
	rules := retention.FromPolicy(config.Policy{Retain: dest.Retain})
	if kept, d := keptBy(group, rules, now, j.Snapshot); kept {
		return Permanent(reason.RefusedRetention, fmt.Errorf("copy %s of volume %s is kept: %s", j.Snapshot, volume, rules.Explain(d)))
	}
	return nil
}

// copyGroup keeps, of a listing, the copies of the job's policy and volume in the job's
// account that count (completed, not AWS Backup's or DLM's), dated by their source, and
// says whether the job's copy is among them. An unreadable source time fails closed.
func copyGroup(listed []types.Snapshot, j job.Job, volume string) ([]retention.Snapshot, bool, error) {
	var group []retention.Snapshot
	seen := false
	for _, sn := range listed {
		t := tagMap(sn.Tags)
		id := aws.ToString(sn.SnapshotId)
		if aws.ToString(sn.OwnerId) != j.Account || t[tag.Policy] != j.Policy || t[tag.Volume] != volume || t[tag.Source] == "" {
			continue
		}
		if id != j.Snapshot && !counts(sn, t) {
			continue
		}
		start := aws.ToTime(sn.StartTime)
		if v, ok := t[tag.SourceTime]; ok {
			st, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return nil, false, Permanent(reason.RefusedRetention, fmt.Errorf("copy %s has an unreadable %s %q", id, tag.SourceTime, v))
			}
			start = st
		}
		seen = seen || id == j.Snapshot
		group = append(group, retention.Snapshot{ID: id, Start: start})
	}
	return group, seen, nil
}
