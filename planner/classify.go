package planner

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"github.com/snapfleet/snapfleet/internal/cloud"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// classify is the deletion classifier, asked only about the delete candidates of one
// account-region: a snapshot named by one of the account's AMIs, or locked, is protected.
// It costs listings, not a call per candidate: one DescribeImages listing, and
// DescribeLockedSnapshots for up to 1000 candidates a call. Shares are the worker's to
// check, right before each DeleteSnapshot (markShared shows them in a review). Whatever
// cannot be told is fail_closed (and a failure), with one exception: an endpoint that
// answers that DescribeLockedSnapshots does not exist (InvalidAction,
// UnsupportedOperation: an emulator, an older partition) has no locks.
func (p *Planner) classify(ctx context.Context, client EC2, account string, ds []Decision, fail func(error)) map[string]Protection {
	var cands []string
	for _, d := range ds {
		if d.Action == ActionDelete {
			cands = append(cands, d.Snapshot)
		}
	}
	prot := make(map[string]Protection, len(cands))
	closeAll := func(why string) map[string]Protection {
		for _, id := range cands {
			if _, ok := prot[id]; !ok {
				prot[id] = Protection{Reason: reason.FailClosed, Detail: why}
			}
		}
		return prot
	}

	images, err := amiSnapshots(ctx, client)
	if err != nil {
		fail(fmt.Errorf("listing the AMIs of %s (no deletes planned there): %w", account, err))
		return closeAll("the account's AMIs could not be listed")
	}
	for _, id := range cands {
		if ami, ok := images[id]; ok {
			prot[id] = Protection{Reason: reason.InUse, Detail: "used by " + ami}
		}
	}

	locks, err := lockedSnapshots(ctx, client, cands)
	switch class, _ := cloud.Classify(err); {
	case err == nil:
		for id, state := range locks {
			if _, done := prot[id]; !done {
				prot[id] = Protection{Reason: reason.Locked, Detail: "lock state " + state}
			}
		}
	case class == cloud.Unsupported:
		p.Log.Warn().Str("account", account).Err(err).Msg("DescribeLockedSnapshots does not exist at this endpoint: no snapshot is taken as locked")
	default:
		if status, ok := cloud.Unanswered(err); ok {
			// The decoder's complaint about the body says nothing to an operator.
			p.Log.Debug().Str("account", account).Err(err).Msg("DescribeLockedSnapshots answer")
			err = fmt.Errorf("the endpoint could not answer DescribeLockedSnapshots (HTTP %d with a body that is not EC2's)", status)
		}
		fail(fmt.Errorf("reading snapshot locks in %s (no deletes planned in this account-region): %w", account, err))
		return closeAll("snapshot locks could not be read")
	}
	return prot
}

// MaxShareChecks bounds the share checks of a CheckShares plan: at most this many planned
// deletes of one account-region are asked about, one DescribeSnapshotAttribute each (paced
// by the client's limiter); the rest are counted in Result.SharesUnchecked.
const MaxShareChecks = 1000

// markShared is the review of CheckShares: it asks which of the scope's planned deletes
// are shared with other accounts (createVolumePermission) and shows those as protected
// shared instead. A plan without it enqueues them, and the worker skips each (shared)
// right before DeleteSnapshot; so the circuit breaker, which counts what is planned, has
// counted them before this runs. A share that cannot be read leaves the delete as planned
// and is a failure; the deletes are asked about in snapshot id order, so the bound picks
// the same ones from one plan to the next.
func markShared(ctx context.Context, client EC2, sc *scopeRun, res *Result) {
	var idx []int
	for i := range res.Decisions {
		if res.Decisions[i].Action == ActionDelete {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return res.Decisions[idx[a]].Snapshot < res.Decisions[idx[b]].Snapshot })
	if len(idx) > MaxShareChecks {
		res.SharesUnchecked = len(idx) - MaxShareChecks
		idx = idx[:MaxShareChecks]
	}
	failed := 0
	var firstErr error
	for _, i := range idx {
		d := &res.Decisions[i]
		out, err := client.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{
			SnapshotId: aws.String(d.Snapshot), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		})
		if err != nil {
			if class, _ := cloud.Classify(err); class != cloud.NotFound { // gone: the worker will find it gone
				failed++
				firstErr = cmp.Or(firstErr, err)
			}
			continue
		}
		if who := cloud.SharedWith(out.CreateVolumePermissions); who != "" {
			d.Action, d.Reason, d.Detail, d.Key = ActionProtected, reason.Shared, "shared with "+who, ""
			res.Deletes--
			res.Protected++
		}
	}
	if failed > 0 {
		sc.fail(fmt.Errorf("reading the shares of %d snapshots in %s/%s (shown as deletes; the worker checks each before deleting): %w",
			failed, sc.account, sc.region, firstErr))
	}
}

// amiSnapshots maps the snapshots named by the account's own AMIs to an AMI id.
func amiSnapshots(ctx context.Context, client EC2) (map[string]string, error) {
	out := map[string]string{}
	pages := ec2.NewDescribeImagesPaginator(client, &ec2.DescribeImagesInput{Owners: []string{"self"}, MaxResults: aws.Int32(1000)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing images: %w", err)
		}
		for _, img := range page.Images {
			for _, m := range img.BlockDeviceMappings {
				if m.Ebs != nil && aws.ToString(m.Ebs.SnapshotId) != "" {
					out[aws.ToString(m.Ebs.SnapshotId)] = aws.ToString(img.ImageId)
				}
			}
		}
	}
	return out, nil
}

// lockedSnapshots returns the lock state of the snapshots among ids that are locked (any
// state but expired), asking about at most 1000 at a time, lockCalls at once (a plan of
// 30,000 deletes asks 30 times: one after another, their latencies added up).
func lockedSnapshots(ctx context.Context, client EC2, ids []string) (map[string]string, error) {
	var mu sync.Mutex
	out := map[string]string{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lockCalls)
	for chunk := range slices.Chunk(ids, 1000) {
		g.Go(func() error {
			in := &ec2.DescribeLockedSnapshotsInput{SnapshotIds: chunk}
			for {
				page, err := client.DescribeLockedSnapshots(gctx, in)
				if err != nil {
					return fmt.Errorf("describing locked snapshots: %w", err)
				}
				mu.Lock()
				for _, s := range page.Snapshots {
					if s.LockState != types.LockStateExpired {
						out[aws.ToString(s.SnapshotId)] = string(s.LockState)
					}
				}
				mu.Unlock()
				if aws.ToString(page.NextToken) == "" {
					return nil
				}
				in.NextToken = page.NextToken
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// lockCalls is how many DescribeLockedSnapshots calls lockedSnapshots makes at once.
const lockCalls = 4

// SortDecisions orders decisions by account, region, policy, volume, snapshot, action and
// instance: the order of the dry-run plan, stable from one day to the next.
func SortDecisions(ds []Decision) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := &ds[i], &ds[j]
		for _, c := range [][2]string{{a.Account, b.Account}, {a.Region, b.Region}, {a.Policy, b.Policy},
			{a.Volume, b.Volume}, {a.Snapshot, b.Snapshot}, {a.Action, b.Action}, {a.Instance, b.Instance}} {
			if c[0] != c[1] {
				return c[0] < c[1]
			}
		}
		return false
	})
}
