package planner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"github.com/snapfleet/snapfleet/internal/cloud"
)

// A listing of more than one page is fetched in segments side by side, split by the
// last hex digit of the snapshot id (EC2's filter values take * wildcards): one chain of
// pages waits for each page before it asks for the next (the next token is in it), so
// that alone it runs at one page per round trip, below what the DescribeSnapshots bucket
// allows. Segments keep the bucket busy; the call count grows by one page per segment.
var idSegments = [][]string{
	{"snap-*0", "snap-*1", "snap-*2", "snap-*3"},
	{"snap-*4", "snap-*5", "snap-*6", "snap-*7"},
	{"snap-*8", "snap-*9", "snap-*a", "snap-*b"},
	{"snap-*c", "snap-*d", "snap-*e", "snap-*f"},
}

// errIgnoredFilter: a segment listed a snapshot outside it — the endpoint does not take
// the id wildcards.
var errIgnoredFilter = errors.New("the snapshot-id filter was ignored")

// describeSnapshots lists the caller's own snapshots (OwnerIds self) matching filters and
// calls each for every one, never two at once. Pages are decoded by cloud.FastSnapshotList
// (1,000 snapshots with their tags: the SDK's XML decoder would be most of a large plan's
// CPU). A listing of more than one page goes again in segments (idSegments); where the
// endpoint ignores their filter, in one chain as the first page began.
func describeSnapshots(ctx context.Context, client ec2.DescribeSnapshotsAPIClient, filters []types.Filter, each func(types.Snapshot)) error {
	first, err := client.DescribeSnapshots(ctx, snapshotsInput(filters, nil, nil), cloud.FastSnapshotList)
	if err != nil {
		return fmt.Errorf("describing snapshots: %w", err)
	}
	page := func(ss []types.Snapshot) {
		for _, s := range ss {
			each(s)
		}
	}
	if aws.ToString(first.NextToken) == "" || slices.ContainsFunc(filters, func(f types.Filter) bool { return aws.ToString(f.Name) == "snapshot-id" }) {
		page(first.Snapshots)
		return snapshotPages(ctx, client, snapshotsInput(filters, nil, first.NextToken), nil, page)
	}
	err = segmented(ctx, client, filters, page)
	if errors.Is(err, errIgnoredFilter) {
		page(first.Snapshots)
		return snapshotPages(ctx, client, snapshotsInput(filters, nil, first.NextToken), nil, page)
	}
	return err
}

// segmented lists every segment at once, a page at a time to page. Nothing reaches page
// before the first page of every segment has shown that the endpoint honours the
// segments' filter.
func segmented(ctx context.Context, client ec2.DescribeSnapshotsAPIClient, filters []types.Filter, page func([]types.Snapshot)) error {
	var (
		mu      sync.Mutex
		probed  sync.WaitGroup // the first page of every segment
		bad     bool
		g, gctx = errgroup.WithContext(ctx)
	)
	emit := func(ss []types.Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		page(ss)
	}
	probed.Add(len(idSegments))
	for _, seg := range idSegments {
		g.Go(func() error {
			first, err := client.DescribeSnapshots(gctx, snapshotsInput(filters, seg, nil), cloud.FastSnapshotList)
			mu.Lock()
			bad = bad || (err == nil && !inSegment(first.Snapshots, seg))
			mu.Unlock()
			probed.Done()
			if err != nil {
				return fmt.Errorf("describing snapshots: %w", err)
			}
			probed.Wait()
			if bad {
				return errIgnoredFilter
			}
			emit(first.Snapshots)
			return snapshotPages(gctx, client, snapshotsInput(filters, seg, first.NextToken), seg, emit)
		})
	}
	return g.Wait()
}

// snapshotPages lists from in's next token on (none: done), calling each with every page; a snapshot
// outside seg (when given) fails the listing: its segment's first page was in it, and
// what it emitted cannot be taken back.
func snapshotPages(ctx context.Context, client ec2.DescribeSnapshotsAPIClient, in *ec2.DescribeSnapshotsInput, seg []string, each func([]types.Snapshot)) error {
	for aws.ToString(in.NextToken) != "" {
		page, err := client.DescribeSnapshots(ctx, in, cloud.FastSnapshotList)
		if err != nil {
			return fmt.Errorf("describing snapshots: %w", err)
		}
		if seg != nil && !inSegment(page.Snapshots, seg) {
			// Its first page was in it: snapshots were emitted, no fallback now.
			return errors.New("describing snapshots: a later page of a segment listed a snapshot outside it")
		}
		each(page.Snapshots)
		in.NextToken = page.NextToken
	}
	return nil
}

func snapshotsInput(filters []types.Filter, seg []string, token *string) *ec2.DescribeSnapshotsInput {
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: filters, MaxResults: aws.Int32(1000), NextToken: token}
	if seg != nil {
		in.Filters = append(slices.Clip(filters), types.Filter{Name: aws.String("snapshot-id"), Values: seg})
	}
	return in
}

// inSegment reports whether every snapshot's id is in seg (a list of "snap-*X").
func inSegment(ss []types.Snapshot, seg []string) bool {
	for _, s := range ss {
		id := aws.ToString(s.SnapshotId)
		if !slices.ContainsFunc(seg, func(p string) bool { return strings.HasPrefix(id, "snap-") && strings.HasSuffix(id, p[len("snap-*"):]) }) {
			return false
		}
	}
	return true
}
