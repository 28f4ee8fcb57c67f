package worker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/tag"
)

// pagedSnapshots is a fake EC2 whose listings of DescribeSnapshots come in pages (moto
// ignores pagination for snapshots): the token of page i is "page-i". A read by id
// returns that snapshot. failPage makes that page fail (0: never). Only the calls a delete
// makes up to its DeleteSnapshot are served; the rest of EC2 is nil and would panic.
type pagedSnapshots struct {
	EC2
	pages    [][]types.Snapshot
	failPage int

	mu      sync.Mutex
	listed  int // listing pages served or failed
	deletes int
}

func (f *pagedSnapshots) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.SnapshotIds) > 0 {
		for _, p := range f.pages {
			for _, s := range p {
				if slices.Contains(in.SnapshotIds, aws.ToString(s.SnapshotId)) {
					return &ec2.DescribeSnapshotsOutput{Snapshots: []types.Snapshot{s}}, nil
				}
			}
		}
		return &ec2.DescribeSnapshotsOutput{}, nil
	}
	f.listed++
	i := 0
	if in.NextToken != nil {
		i = int(aws.ToString(in.NextToken)[len("page-")] - '0')
	}
	if f.failPage > 0 && i == f.failPage {
		return nil, errors.New("connection reset in the middle of the listing")
	}
	out := &ec2.DescribeSnapshotsOutput{Snapshots: f.pages[i]}
	if i+1 < len(f.pages) {
		out.NextToken = aws.String("page-" + string(rune('0'+i+1)))
	}
	return out, nil
}

func (f *pagedSnapshots) DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	return &ec2.DeleteSnapshotOutput{}, nil
}

func (f *pagedSnapshots) DescribeSnapshotAttribute(_ context.Context, in *ec2.DescribeSnapshotAttributeInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error) {
	return &ec2.DescribeSnapshotAttributeOutput{SnapshotId: in.SnapshotId}, nil
}

func (f *pagedSnapshots) DescribeLockedSnapshots(context.Context, *ec2.DescribeLockedSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeLockedSnapshotsOutput, error) {
	return &ec2.DescribeLockedSnapshotsOutput{}, nil
}

// TestListSnapshotsPages: the worker's listing reads every page, keeps the account's own
// snapshots of each, and fails as a whole when a later page fails; a delete whose
// volume listing fails on its second page makes no DeleteSnapshot call (the first page
// alone has a newer snapshot and would expire it).
func TestListSnapshotsPages(t *testing.T) {
	t.Parallel()
	cfg := policyConfig(t, "policies:\n  - name: daily\n    retain: {max_age: 30d}\n")
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	snap := func(id, owner string, age time.Duration) types.Snapshot {
		return types.Snapshot{SnapshotId: aws.String(id), OwnerId: aws.String(owner), VolumeId: aws.String("vol-00000001"),
			State: types.SnapshotStateCompleted, StartTime: aws.Time(now.Add(-age)),
			Tags: []types.Tag{{Key: aws.String(tag.Policy), Value: aws.String("daily")}, {Key: aws.String(tag.Volume), Value: aws.String("vol-00000001")}}}
	}
	pages := func() [][]types.Snapshot {
		return [][]types.Snapshot{
			{snap("snap-000000a1", testAccount, 40*24*time.Hour), snap("snap-000000f1", "999999999999", time.Hour),
				snap("snap-000000a2", testAccount, 24*time.Hour)},
			{snap("snap-000000a3", testAccount, 2*24*time.Hour)},
		}
	}
	handler := func(api EC2) *snapshots {
		return &snapshots{cfg: cfg, ec2: func(string, string) EC2 { return api }, now: func() time.Time { return now }, backoff: defaultBackoff}
	}

	t.Run("every page", func(t *testing.T) {
		t.Parallel()
		f := &pagedSnapshots{pages: pages()}
		got, err := handler(f).listSnapshots(context.Background(), f, testAccount, &ec2.DescribeSnapshotsInput{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, aws.ToString(s.SnapshotId))
		}
		if !slices.Equal(ids, []string{"snap-000000a1", "snap-000000a2", "snap-000000a3"}) || f.listed != 2 {
			t.Errorf("listed %v in %d pages, want both own snapshots of 2 pages", ids, f.listed)
		}
	})
	t.Run("second page fails", func(t *testing.T) {
		t.Parallel()
		f := &pagedSnapshots{pages: pages(), failPage: 1}
		got, err := handler(f).listSnapshots(context.Background(), f, testAccount, &ec2.DescribeSnapshotsInput{})
		if err == nil || got != nil {
			t.Errorf("listing = %v, %v; want no snapshots and the error", got, err)
		}
	})
	t.Run("delete fails closed", func(t *testing.T) {
		t.Parallel()
		f := &pagedSnapshots{pages: pages(), failPage: 1}
		j := deleteJob("snap-000000a1", "daily")
		j.Volume = "vol-00000001"
		res, err := handler(f).delete(context.Background(), j)
		if err == nil {
			t.Errorf("delete on a partial listing = %+v, want an error", res)
		}
		if f.deletes != 0 {
			t.Errorf("DeleteSnapshot called %d times on a partial listing", f.deletes)
		}
		// The same delete on the whole listing goes through: the failure is what held it.
		f = &pagedSnapshots{pages: pages()}
		if res, err := handler(f).delete(context.Background(), j); err != nil || res.Action != Deleted || f.deletes != 1 {
			t.Errorf("delete on the whole listing = %+v, %v, %d calls; want deleted", res, err, f.deletes)
		}
	})
}
