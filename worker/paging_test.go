package worker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/tag"
)

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
		f := &fakeEC2{pages: pages()}
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
		f := &fakeEC2{pages: pages(), failPage: 1}
		got, err := handler(f).listSnapshots(context.Background(), f, testAccount, &ec2.DescribeSnapshotsInput{})
		if err == nil || got != nil {
			t.Errorf("listing = %v, %v; want no snapshots and the error", got, err)
		}
	})
	t.Run("delete fails closed", func(t *testing.T) {
		t.Parallel()
		f := &fakeEC2{pages: pages(), failPage: 1}
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
		f = &fakeEC2{pages: pages()}
		if res, err := handler(f).delete(context.Background(), j); err != nil || res.Action != Deleted || f.deletes != 1 {
			t.Errorf("delete on the whole listing = %+v, %v, %d calls; want deleted", res, err, f.deletes)
		}
	})
}
