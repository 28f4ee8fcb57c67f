package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/tag"
)

// volumesEC2 answers DescribeVolumes with its volumes and counts DeleteVolume calls.
type volumesEC2 struct {
	DrillAPI
	vols    []types.Volume
	deleted []string
}

func (f *volumesEC2) DescribeVolumes(_ context.Context, in *ec2.DescribeVolumesInput, _ ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	return &ec2.DescribeVolumesOutput{Volumes: f.vols}, nil
}

func (f *volumesEC2) DeleteVolume(_ context.Context, in *ec2.DeleteVolumeInput, _ ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error) {
	f.deleted = append(f.deleted, aws.ToString(in.VolumeId))
	return &ec2.DeleteVolumeOutput{}, nil
}

func vol(id string, created time.Time, state types.VolumeState, tags map[string]string) types.Volume {
	v := types.Volume{VolumeId: aws.String(id), CreateTime: aws.Time(created), State: state}
	for k, val := range tags {
		v.Tags = append(v.Tags, types.Tag{Key: aws.String(k), Value: aws.String(val)})
	}
	return v
}

// TestDeleteDrillVolumeChecksTag: a volume whose tag, read right before, is not the
// drill's (or absent) is not deleted: ErrNotDrillVolume and no DeleteVolume call.
func TestDeleteDrillVolumeChecksTag(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for name, tags := range map[string]map[string]string{
		"no tag":      {"Name": "drill"},
		"other drill": {tag.Drill: "d2"},
	} {
		f := &volumesEC2{vols: []types.Volume{vol("vol-00000001", now, types.VolumeStateAvailable, tags)}}
		if err := DeleteDrillVolume(context.Background(), f, "vol-00000001", "d1"); !errors.Is(err, ErrNotDrillVolume) || len(f.deleted) != 0 {
			t.Errorf("%s: %v, deleted %v; want ErrNotDrillVolume and nothing deleted", name, err, f.deleted)
		}
	}
	f := &volumesEC2{vols: []types.Volume{vol("vol-00000001", now, types.VolumeStateAvailable, map[string]string{tag.Drill: "d1"})}}
	if err := DeleteDrillVolume(context.Background(), f, "vol-00000001", "d1"); err != nil || !slices.Equal(f.deleted, []string{"vol-00000001"}) {
		t.Fatalf("own volume: %v, deleted %v", err, f.deleted)
	}
}

// TestCleanup: only volumes carrying snapfleet:drill, older than the bound, available or
// in error, are deleted (the listing's filter is not trusted: an untagged one is kept).
func TestCleanup(t *testing.T) {
	t.Parallel()
	now := time.Now()
	old := now.Add(-2 * time.Hour)
	f := &volumesEC2{vols: []types.Volume{
		vol("vol-00000001", old, types.VolumeStateAvailable, map[string]string{tag.Drill: "d0"}),
		vol("vol-00000002", old, types.VolumeStateError, map[string]string{tag.Drill: "d0"}),
		vol("vol-00000003", now, types.VolumeStateAvailable, map[string]string{tag.Drill: "d1"}),
		vol("vol-00000004", old, types.VolumeStateInUse, map[string]string{tag.Drill: "d0"}),
		vol("vol-00000005", old, types.VolumeStateAvailable, map[string]string{"Name": "snapfleet-drill"}),
	}}
	gone, err := Cleanup(context.Background(), f, now.Add(-time.Hour))
	if err != nil || !slices.Equal(gone, []string{"vol-00000001", "vol-00000002"}) || !slices.Equal(f.deleted, gone) {
		t.Fatalf("Cleanup: %v, %v, deleted %v", gone, err, f.deleted)
	}
}

// TestSample: one point of each policy first, then at random; the same seed gives the same
// sample, copies and points that are not completed are never drilled.
func TestSample(t *testing.T) {
	t.Parallel()
	var ps []Point
	for i := range 20 {
		policy := "daily"
		if i == 7 {
			policy = "weekly"
		}
		ps = append(ps, Point{Snapshot: fmt.Sprintf("snap-%08d", i), Policy: policy, State: "completed", Tier: "standard"})
	}
	ps = append(ps, Point{Snapshot: "snap-pending", Policy: "monthly", State: "pending", Tier: "standard"},
		Point{Snapshot: "snap-archived", Policy: "yearly", State: "completed", Tier: "archive"},
		Point{Snapshot: "snap-copy", Policy: "copies", State: "completed", Tier: "standard", Source: "snap-00000001"})
	ids := func(ps []Point) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Snapshot)
		}
		return out
	}
	a, b := Sample(ps, 3, 42, "111111111111", "us-east-1"), Sample(ps, 3, 42, "111111111111", "us-east-1")
	if !slices.Equal(ids(a), ids(b)) || len(a) != 3 || !slices.Contains(ids(a), "snap-00000007") {
		t.Fatalf("samples %v and %v: want the same 3, with the one weekly point", ids(a), ids(b))
	}
	all := Sample(ps, 100, 1, "111111111111", "us-east-1")
	if len(all) != 20 || slices.ContainsFunc(ids(all), func(s string) bool { return s == "snap-pending" || s == "snap-archived" || s == "snap-copy" }) {
		t.Fatalf("Sample of 100: %v, want the 20 completed standard points", ids(all))
	}
}

// TestSummarize: per policy tried, succeeded, the last time, p50 and p99 of the successes.
func TestSummarize(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var recs []Record
	for i := range 10 {
		recs = append(recs, Record{Policy: "daily", At: t0.Add(time.Duration(i) * time.Minute), OK: i != 9, Seconds: float64(i + 1)})
	}
	got := Summarize(recs)
	if len(got) != 1 || got[0].Tried != 10 || got[0].Succeeded != 9 || got[0].P50 != 5 || got[0].P99 != 9 || !got[0].LastDrill.Equal(t0.Add(9*time.Minute)) {
		t.Fatalf("Summarize: %+v", got)
	}
}
