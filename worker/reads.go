package worker

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
)

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

// managedSnapshots lists the snapshots of j's policy tagged with volume, coalesced with
// the other listings of the policy's volumes in j's account-region (lookups): the result
// may hold other volumes' snapshots too.
func (s *snapshots) managedSnapshots(ctx context.Context, api EC2, j job.Job, volume string) ([]types.Snapshot, error) {
	return s.lookup(ctx, api, j.Account, j.Region, []types.Filter{filter("tag:"+tag.Policy, j.Policy)}, "tag:"+tag.Volume, volume)
}

// adoptedSnapshots lists the snapshots on volume that carry p's adopt tags.
func (s *snapshots) adoptedSnapshots(ctx context.Context, api EC2, account string, p config.Policy, volume string) ([]types.Snapshot, error) {
	q := []types.Filter{filter("volume-id", volume)}
	for _, k := range slices.Sorted(maps.Keys(p.Adopt.Tags)) {
		q = append(q, filter("tag:"+k, p.Adopt.Tags[k]))
	}
	return s.listSnapshots(ctx, api, account, &ec2.DescribeSnapshotsInput{Filters: q})
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
	return cloud.SharedWith(out.CreateVolumePermissions), nil
}

// lockTTL is how long the worker trusts its listing of an account-region's locked
// snapshots. A lock taken since is still enforced by EC2, which refuses the delete (the
// job is retried and then finds the lock); the planner checked the locks as well.
const lockTTL = 10 * time.Second

// lockCache holds, per account-region, the locked snapshots listed within lockTTL: one
// DescribeLockedSnapshots per account-region every lockTTL instead of one per delete.
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
