package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// copyAPI is what a copy calls besides EC2: *ec2.Client is one.
type copyAPI interface {
	EC2
	CopySnapshot(ctx context.Context, in *ec2.CopySnapshotInput, optFns ...func(*ec2.Options)) (*ec2.CopySnapshotOutput, error)
	ModifySnapshotAttribute(ctx context.Context, in *ec2.ModifySnapshotAttributeInput, optFns ...func(*ec2.Options)) (*ec2.ModifySnapshotAttributeOutput, error)
}

// KMS is what a cross-account copy asks KMS: who manages the source's key.
type KMS interface {
	DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
}

// Waits of a copy job on the queue.
const (
	// copyPendingDelay: a cross-account copy in progress comes back this much later to
	// remove the share once the copy has completed.
	copyPendingDelay = time.Minute
	// copyLimitDelay: a copy beyond the destination's 20 in progress waits this much
	// (plus up to half again, jittered): copies complete all the time at fleet scale,
	// and a slot left idle is throughput lost (copyPaceFullTTL).
	copyLimitDelay = 5 * time.Second
)

// copy makes the copy of a snapshot.copy job in its destination, unless one carrying the
// job's key is there already (a retried or duplicated job). Cross-account, the source
// account shares the snapshot with the destination first, and the share is removed once
// the copy has completed — the job comes back until then (copy_pending).
func (s *snapshots) copy(ctx context.Context, j job.Job) (Result, error) {
	p, err := policyOf(s.cfg, j.Policy)
	if err != nil {
		return Result{}, err
	}
	dest, ok := p.CopyTo(j.SourceAccount, j.SourceRegion, j.Account, j.Region)
	if !ok {
		return Result{}, Permanent(reason.RefusedPolicyMismatch, fmt.Errorf("policy %s does not copy snapshots of %s/%s to %s/%s", j.Policy, j.SourceAccount, j.SourceRegion, j.Account, j.Region))
	}
	if err := s.checkSourceAccount(ctx, j); err != nil {
		return Result{}, err
	}
	dst, okDst := s.ec2(j.Account, j.Region).(copyAPI)
	src, okSrc := s.ec2(j.SourceAccount, j.SourceRegion).(copyAPI)
	if !okDst || !okSrc {
		return Result{}, Permanent(reason.InvalidRequest, errors.New("the EC2 client cannot copy snapshots"))
	}
	unlock := s.inFlight.lock(j.Key)
	defer unlock()
	made, err := s.findCopy(ctx, dst, j)
	if err != nil {
		return Result{}, fail(fmt.Errorf("looking for the copy of job %s: %w", j.Key, err))
	}
	if made != nil {
		return s.settleCopy(ctx, src, j, made, Existed)
	}
	source, err := s.readSnapshot(ctx, src, j.SourceSnapshot)
	if errors.Is(err, errGone) {
		return Result{}, skipErr(reason.SourceGone, fmt.Errorf("snapshot %s is gone from %s/%s", j.SourceSnapshot, j.SourceAccount, j.SourceRegion))
	}
	if err != nil {
		return Result{}, err
	}
	if err := checkSource(j, source); err != nil {
		return Result{}, err
	}
	cross := j.SourceAccount != j.Account
	if cross {
		if err := s.checkShareable(ctx, j, source); err != nil {
			return Result{}, err
		}
	}
	if err := s.pace.acquire(ctx, s, dst, j.Account, j.Region); err != nil {
		return Result{}, err
	}
	if cross {
		if err := s.share(ctx, src, j, types.OperationTypeAdd); err != nil {
			s.pace.release(j.Account, j.Region)
			return Result{}, err
		}
	}
	id, err := s.copyNow(ctx, dst, j, source, dest.KMSKey)
	if err != nil {
		s.pace.release(j.Account, j.Region)
		return Result{}, err
	}
	made, err = s.readSnapshot(ctx, dst, id)
	if err != nil {
		made = &types.Snapshot{SnapshotId: aws.String(id), State: types.SnapshotStatePending}
	}
	return s.settleCopy(ctx, src, j, made, Created)
}

// checkSourceAccount refuses a copy from an account the worker may not act in, as the
// runner refuses a job's own account.
func (s *snapshots) checkSourceAccount(ctx context.Context, j job.Job) error {
	if s.known == nil || j.SourceAccount == j.Account {
		return nil
	}
	known, err := s.known(ctx, j.SourceAccount)
	var foreign *cloud.ForeignAccountError
	switch {
	case errors.As(err, &foreign):
		return Permanent(reason.RefusedForeignAccount, err)
	case err != nil:
		return fail(fmt.Errorf("checking account %s: %w", j.SourceAccount, err))
	case !known:
		return Permanent(reason.UnknownAccount, fmt.Errorf("source account %s is neither the caller's nor in the config", j.SourceAccount))
	}
	return nil
}

// checkSource refuses to copy a snapshot that is not the job's account's, not managed by
// the job's policy, or a copy itself, and waits for one still in progress.
func checkSource(j job.Job, sn *types.Snapshot) error {
	tags := tagMap(sn.Tags)
	switch {
	case aws.ToString(sn.OwnerId) != j.SourceAccount:
		return Permanent(reason.RefusedForeign, fmt.Errorf("snapshot %s is owned by %q, not %s", j.SourceSnapshot, aws.ToString(sn.OwnerId), j.SourceAccount))
	case tags[tag.Policy] != j.Policy:
		return Permanent(reason.RefusedPolicyMismatch, fmt.Errorf("snapshot %s belongs to policy %q, the job names %q", j.SourceSnapshot, tags[tag.Policy], j.Policy))
	case tags[tag.Source] != "":
		return Permanent(reason.RefusedUnmanaged, fmt.Errorf("snapshot %s is itself a copy of %s", j.SourceSnapshot, tags[tag.Source]))
	case sn.State != types.SnapshotStateCompleted:
		return Snooze(copyPendingDelay, fmt.Errorf("snapshot %s is %s, not completed", j.SourceSnapshot, sn.State))
	}
	return nil
}

// checkShareable refuses, before any call that would fail, a cross-account copy of a
// snapshot encrypted with the AWS-managed EBS key: that key cannot be shared.
func (s *snapshots) checkShareable(ctx context.Context, j job.Job, sn *types.Snapshot) error {
	if !aws.ToBool(sn.Encrypted) {
		return nil
	}
	key := aws.ToString(sn.KmsKeyId)
	managed := key == "" // encrypted with the account's default: aws/ebs unless changed
	if !managed && s.kms != nil {
		var out *kms.DescribeKeyOutput
		err := s.call(ctx, func(ctx context.Context) error {
			var err error
			out, err = s.kms(j.SourceAccount, j.SourceRegion).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("reading KMS key %s of snapshot %s: %w", key, j.SourceSnapshot, err))
		}
		managed = out.KeyMetadata != nil && out.KeyMetadata.KeyManager == kmstypes.KeyManagerTypeAws
	}
	if managed {
		return Permanent(reason.ManagedKey, fmt.Errorf("snapshot %s is encrypted with the AWS-managed EBS key (alias/aws/ebs), which cannot be shared with account %s: "+
			"encrypt the volume with a customer managed key to copy it to another account", j.SourceSnapshot, j.Account))
	}
	return nil
}

// findCopy returns the copy carrying the job's key in the destination, nil when there is
// none; a failed copy does not count (the job makes another).
func (s *snapshots) findCopy(ctx context.Context, dst EC2, j job.Job) (*types.Snapshot, error) {
	listed, err := s.listSnapshots(ctx, dst, j.Account, &ec2.DescribeSnapshotsInput{Filters: []types.Filter{filter("tag:"+tag.Job, j.Key)}})
	if err != nil {
		return nil, err
	}
	for i := range listed {
		if listed[i].State != types.SnapshotStateError && tagMap(listed[i].Tags)[tag.Job] == j.Key {
			return &listed[i], nil
		}
	}
	return nil, nil
}

// share adds or removes the destination account's createVolumePermission on the source.
func (s *snapshots) share(ctx context.Context, src copyAPI, j job.Job, op types.OperationType) error {
	err := s.call(ctx, func(ctx context.Context) error {
		_, err := src.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{
			SnapshotId: aws.String(j.SourceSnapshot), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
			OperationType: op, UserIds: []string{j.Account}})
		return err
	})
	if err == nil {
		return nil
	}
	if class, _ := cloud.Classify(err); class == cloud.NotFound && op == types.OperationTypeRemove {
		return nil // the source went: nothing is shared any more
	}
	return fail(fmt.Errorf("%s the share of snapshot %s with %s: %w", map[types.OperationType]string{types.OperationTypeAdd: "adding", types.OperationTypeRemove: "removing"}[op], j.SourceSnapshot, j.Account, err))
}

// copyNow calls CopySnapshot in the destination with the copy's tags in the call.
func (s *snapshots) copyNow(ctx context.Context, dst copyAPI, j job.Job, src *types.Snapshot, kmsKey string) (string, error) {
	in := &ec2.CopySnapshotInput{
		SourceRegion:      aws.String(j.SourceRegion),
		SourceSnapshotId:  aws.String(j.SourceSnapshot),
		Description:       aws.String(fmt.Sprintf("snapfleet copy of %s from %s/%s", j.SourceSnapshot, j.SourceAccount, j.SourceRegion)),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: copyTags(j, src)}},
	}
	if kmsKey != "" {
		in.Encrypted, in.KmsKeyId = aws.Bool(true), aws.String(kmsKey)
	}
	var out *ec2.CopySnapshotOutput
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = dst.CopySnapshot(ctx, in, noSDKRetry)
		return err
	})
	if err != nil {
		// ResourceLimitExceeded (20 copies in progress) is a wait: call snoozes it.
		return "", fail(fmt.Errorf("copying snapshot %s to %s/%s: %w", j.SourceSnapshot, j.Account, j.Region, err))
	}
	return aws.ToString(out.SnapshotId), nil
}

// copyTags are the copy's tags: the source's own (but AWS's and its expiry), then
// snapfleet's: the policy, the job, the source and its volume.
func copyTags(j job.Job, src *types.Snapshot) []types.Tag {
	m := map[string]string{}
	for k, v := range tagMap(src.Tags) {
		if !strings.HasPrefix(strings.ToLower(k), "aws:") && k != tag.Expires {
			m[k] = v
		}
	}
	m[tag.Policy], m[tag.Job] = j.Policy, j.Key
	m[tag.Source], m[tag.SourceRegion], m[tag.SourceAccount] = j.SourceSnapshot, j.SourceRegion, j.SourceAccount
	m[tag.SourceTime] = aws.ToTime(src.StartTime).UTC().Format(time.RFC3339)
	if m[tag.Volume] == "" && j.Volume != "" {
		m[tag.Volume] = j.Volume
	}
	out := make([]types.Tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

// settleCopy ends a copy job once its copy exists: at once within the account; across
// accounts, once the copy has completed and the share is removed (never while pending).
func (s *snapshots) settleCopy(ctx context.Context, src copyAPI, j job.Job, made *types.Snapshot, action Action) (Result, error) {
	id := aws.ToString(made.SnapshotId)
	if j.SourceAccount == j.Account {
		return Result{Action: action, Snapshot: id}, nil
	}
	if made.State != types.SnapshotStateCompleted {
		return Result{}, snoozeFor(reason.CopyPending, copyPendingDelay, fmt.Errorf("copy %s of snapshot %s is %s", id, j.SourceSnapshot, made.State))
	}
	if err := s.share(ctx, src, j, types.OperationTypeRemove); err != nil {
		return Result{}, err
	}
	return Result{Action: action, Snapshot: id}, nil
}

// jitter returns d plus up to half of d.
func jitter(d time.Duration) time.Duration { return d + rand.N(d/2+1) }
