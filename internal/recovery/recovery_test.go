package recovery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/tag"
)

var (
	_ Lister = (*ec2.Client)(nil)
	_ API    = (*ec2.Client)(nil)
)

// fakeEC2 answers DescribeSnapshots with its snapshots that carry the tag filters' values
// (the one filter copies are found by, and a tag-key filter), and fails every volume call:
// a test that reaches CreateVolume fails.
type fakeEC2 struct {
	API
	snaps []types.Snapshot
}

func (f *fakeEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	out := &ec2.DescribeSnapshotsOutput{}
	for _, s := range f.snaps {
		tags := map[string]string{}
		for _, t := range s.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		ok := true
		for _, fl := range in.Filters {
			name := aws.ToString(fl.Name)
			switch {
			case name == "tag-key":
				_, ok = tags[fl.Values[0]]
			case strings.HasPrefix(name, "tag:"):
				v, has := tags[strings.TrimPrefix(name, "tag:")]
				ok = ok && has && strings.Contains(" "+strings.Join(fl.Values, " ")+" ", " "+v+" ")
			}
		}
		if ok {
			out.Snapshots = append(out.Snapshots, s)
		}
	}
	return out, nil
}

func snap(id, account string, at time.Time, tags map[string]string) types.Snapshot {
	s := types.Snapshot{SnapshotId: aws.String(id), OwnerId: aws.String(account), StartTime: aws.Time(at),
		State: types.SnapshotStateCompleted, VolumeSize: aws.Int32(8), VolumeId: aws.String("vol-ffffffff")}
	for k, v := range tags {
		s.Tags = append(s.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return s
}

// TestListCopies: a copy in another region (found by its snapfleet:source tag, without
// the volume tag) is listed under its source with the source's time; a copy whose source
// is not listed is a point of its own; another owner's snapshot is never a point.
func TestListCopies(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	const acct = "111111111111"
	east := &fakeEC2{snaps: []types.Snapshot{
		snap("snap-00000001", acct, t0, map[string]string{tag.Policy: "daily", tag.Volume: "vol-00000001"}),
		snap("snap-00000002", acct, t0.Add(24*time.Hour), map[string]string{tag.Policy: "daily", tag.Volume: "vol-00000001"}),
		snap("snap-00000009", "999999999999", t0.Add(48*time.Hour), map[string]string{tag.Policy: "daily", tag.Volume: "vol-00000001"}),
	}}
	west := &fakeEC2{snaps: []types.Snapshot{
		snap("snap-00000003", acct, t0.Add(time.Hour), map[string]string{tag.Source: "snap-00000001"}),
		snap("snap-00000004", acct, t0.Add(time.Hour), map[string]string{tag.Source: "snap-00000077", tag.Volume: "vol-00000001"}),
	}}
	ps, err := List(context.Background(), []Scope{{acct, "us-east-1", east}, {acct, "us-west-2", west}}, Selector{Volume: "vol-00000001"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Snapshot)
	}
	if strings.Join(got, " ") != "snap-00000002 snap-00000004 snap-00000001" {
		t.Fatalf("points %v", got)
	}
	old := ps[2]
	if len(old.Copies) != 1 || old.Copies[0].Snapshot != "snap-00000003" || !old.Copies[0].Time.Equal(t0) || old.Copies[0].Region != "us-west-2" || old.Copies[0].Policy != "daily" {
		t.Fatalf("copies of snap-00000001: %+v", old.Copies)
	}
	// Restoring in us-west-2 chooses among the points there, copies included.
	p, err := Choose(ps, Selector{Volume: "vol-00000001"}, "", "us-west-2", t0.Add(30*time.Minute))
	if err != nil || p.Snapshot != "snap-00000003" {
		t.Fatalf("Choose in us-west-2 at t0+30m: %v, %v; want the copy snap-00000003", p.Snapshot, err)
	}
}

// TestPrepareRefusesState: a pending or archived point is refused before anything is read
// or created, as not bad input (exit 1), with a one-line reason.
func TestPrepareRefusesState(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		state types.SnapshotState
		tier  types.StorageTier
		want  string
	}{
		{types.SnapshotStatePending, types.StorageTierStandard, "is pending, not completed"},
		{types.SnapshotStateCompleted, types.StorageTierArchive, "archived: restore it from the archive tier first"},
	} {
		p := Point{Snapshot: "snap-00000001", State: string(tt.state), Tier: string(tt.tier), SizeGiB: 8}
		_, err := Prepare(context.Background(), &fakeEC2{}, Request{Point: p})
		var r *Refusal
		if !errors.As(err, &r) || r.BadInput || !strings.Contains(r.Reason, tt.want) {
			t.Errorf("%s/%s: %v, want a refusal %q", tt.state, tt.tier, err, tt.want)
		}
	}
}
