package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/retention"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// Archived: ModifySnapshotTier moved the snapshot to the archive tier (or it was there).
const Archived Action = "archived"

// MaxArchivedPerVolume is AWS's limit of archived snapshots per volume.
const MaxArchivedPerVolume = 25

// archiveAPI is what an archive calls besides EC2: *ec2.Client is one.
type archiveAPI interface {
	EC2
	ModifySnapshotTier(ctx context.Context, in *ec2.ModifySnapshotTierInput, optFns ...func(*ec2.Options)) (*ec2.ModifySnapshotTierOutput, error)
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
}

// archive moves the snapshot of a snapshot.archive job to the archive tier after
// re-checking live state: the job's account's, managed by its policy (which archives),
// not a copy nor AWS Backup's or DLM's; kept by retention now and 90 days on with the
// worker's own config and clock; not the newest of its volume; fewer than 25 archived on
// the volume; not shared, locked or used by an AMI.
func (s *snapshots) archive(ctx context.Context, j job.Job) (Result, error) {
	p, err := policyOf(s.cfg, j.Policy)
	if err != nil {
		return Result{}, err
	}
	if p.Archive == nil {
		return Result{}, Permanent(reason.RefusedPolicyMismatch, fmt.Errorf("policy %s does not archive", j.Policy))
	}
	api, ok := s.ec2(j.Account, j.Region).(archiveAPI)
	if !ok {
		return Result{}, Permanent(reason.InvalidRequest, errors.New("the EC2 client cannot archive snapshots"))
	}
	t, err := s.readTarget(ctx, api, j, p)
	if errors.Is(err, errGone) {
		return Result{Action: Gone, Snapshot: j.Snapshot}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if err := checkManaged(s.cfg, j, t); err != nil {
		return Result{}, err
	}
	if err := checkTags(j, t.tags); err != nil {
		return Result{}, err
	}
	switch {
	case t.tags[tag.Source] != "" || !t.managed:
		return Result{}, Permanent(reason.RefusedUnmanaged, fmt.Errorf("snapshot %s is a copy or adopted: not archived", j.Snapshot))
	case t.snap.StorageTier == types.StorageTierArchive:
		return Result{Action: Archived, Snapshot: j.Snapshot}, nil
	case t.snap.State != types.SnapshotStateCompleted:
		return Result{}, skipErr(reason.NotCompleted, fmt.Errorf("snapshot %s is %s", j.Snapshot, t.snap.State))
	}
	if err := s.checkArchivable(ctx, api, j, p, t); err != nil {
		return Result{}, err
	}
	if err := s.checkShares(ctx, api, j); err != nil {
		if errors.Is(err, errGone) {
			return Result{Action: Gone, Snapshot: j.Snapshot}, nil
		}
		return Result{}, err
	}
	if err := s.checkImages(ctx, api, j); err != nil {
		return Result{}, err
	}
	err = s.call(ctx, func(ctx context.Context) error {
		_, err := api.ModifySnapshotTier(ctx, &ec2.ModifySnapshotTierInput{SnapshotId: aws.String(j.Snapshot), StorageTier: types.TargetStorageTierArchive})
		return err
	})
	if err != nil {
		return Result{}, fail(fmt.Errorf("archiving snapshot %s: %w", j.Snapshot, err))
	}
	return Result{Action: Archived, Snapshot: j.Snapshot}, nil
}

// checkArchivable re-computes, over the volume's snapshots of the policy listed now, that
// retention keeps the snapshot now and ArchiveMin later, that it is not the newest, and
// that the volume has fewer than MaxArchivedPerVolume archived.
func (s *snapshots) checkArchivable(ctx context.Context, api EC2, j job.Job, p config.Policy, t target) error {
	volume, group, err := s.retentionGroup(ctx, api, j, p, t)
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.checkClock(j, now); err != nil {
		return err
	}
	var newest retention.Snapshot
	for _, g := range group {
		if g.Start.After(newest.Start) || (g.Start.Equal(newest.Start) && g.ID > newest.ID) {
			newest = g
		}
	}
	if newest.ID == j.Snapshot {
		return skipErr(reason.Newest, fmt.Errorf("snapshot %s is the newest of volume %s", j.Snapshot, volume))
	}
	if now.Sub(aws.ToTime(t.snap.StartTime)) < time.Duration(p.Archive.After) {
		return skipErr(reason.NotKept, fmt.Errorf("snapshot %s is younger than archive.after %s", j.Snapshot, p.Archive.After))
	}
	exists, err := s.volumeExists(ctx, api, volume)
	if err != nil {
		return fail(fmt.Errorf("checking whether volume %s still exists: %w", volume, err))
	}
	pr := retention.ArchiveKeeps(group, p, now, !exists)[j.Snapshot]
	switch {
	case !pr.Now:
		return skipErr(reason.NotKept, fmt.Errorf("snapshot %s is no longer kept by policy %s", j.Snapshot, p.Name))
	case !pr.Later:
		return skipErr(reason.ArchiveCostsMore, fmt.Errorf("retention deletes snapshot %s within %d days: archiving it would cost more", j.Snapshot, config.ArchiveMinDays))
	}
	listed := t.listed
	if listed == nil {
		if listed, err = s.managedSnapshots(ctx, api, j, volume); err != nil {
			return fail(fmt.Errorf("listing snapshots of volume %s: %w", volume, err))
		}
	}
	archived := 0
	for _, sn := range listed {
		if sn.StorageTier == types.StorageTierArchive && tagMap(sn.Tags)[tag.Volume] == volume {
			archived++
		}
	}
	if archived >= MaxArchivedPerVolume {
		return skipErr(reason.ArchiveLimit, fmt.Errorf("volume %s has %d archived snapshots", volume, archived))
	}
	return nil
}

// checkImages skips a snapshot an AMI of the account uses.
func (s *snapshots) checkImages(ctx context.Context, api archiveAPI, j job.Job) error {
	var out *ec2.DescribeImagesOutput
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = api.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"},
			Filters: []types.Filter{filter("block-device-mapping.snapshot-id", j.Snapshot)}})
		return err
	})
	if err != nil {
		return fail(fmt.Errorf("looking for AMIs using snapshot %s: %w", j.Snapshot, err))
	}
	for _, im := range out.Images {
		for _, m := range im.BlockDeviceMappings {
			if m.Ebs != nil && aws.ToString(m.Ebs.SnapshotId) == j.Snapshot {
				return skipErr(reason.InUse, fmt.Errorf("snapshot %s is used by %s", j.Snapshot, aws.ToString(im.ImageId)))
			}
		}
	}
	return nil
}
