package planner

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/sim"
)

// simEC2 serves n managed snapshots from the in-memory EC2 over HTTP (moto takes
// seconds per thousand snapshots; the listing must span pages of 1,000).
func simEC2(t *testing.T, n int) (*sim.Sim, *ec2.Client) {
	t.Helper()
	s := sim.New(time.Now)
	url, stop, err := s.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	const region = "eu-west-1"
	vols := s.AddInstances(sim.DefaultAccount, region, n/10, 1, "running", nil)
	for i := range n {
		s.AddSnapshot(sim.DefaultAccount, region, vols[i/10].Devices[0].Volume, time.Now().Add(-time.Duration(i)*time.Hour), map[string]string{tag.Policy: "daily"})
	}
	return s, ec2.NewFromConfig(aws.Config{Region: region, BaseEndpoint: aws.String(url), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
}

// listAll lists the managed snapshots as the planner does and counts each id.
func listAll(t *testing.T, client ec2.DescribeSnapshotsAPIClient) map[string]int {
	t.Helper()
	seen := map[string]int{}
	err := describeSnapshots(context.Background(), client, []types.Filter{{Name: aws.String("tag-key"), Values: []string{tag.Policy}}},
		func(s types.Snapshot) { seen[aws.ToString(s.SnapshotId)]++ })
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

// listedOnce lists every snapshot through client and fails t unless there are want, each
// listed once (why is said of a snapshot listed more often).
func listedOnce(t *testing.T, client ec2.DescribeSnapshotsAPIClient, want int, why string) {
	t.Helper()
	seen := listAll(t, client)
	if len(seen) != want {
		t.Errorf("listed %d snapshots, want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s listed %d times%s", id, n, why)
		}
	}
}

// TestSegmentedListing: a listing of more than a page is fetched in the four id
// segments side by side; every snapshot is seen exactly once.
func TestSegmentedListing(t *testing.T) {
	t.Parallel()
	s, client := simEC2(t, 3500)
	listedOnce(t, client, 3500, "")
	// One unsegmented first page, then the segments: ~875 each, one page each.
	if n := s.Calls()["ec2:DescribeSnapshots"]; n != 1+len(idSegments) {
		t.Errorf("%d DescribeSnapshots calls, want %d (the first page, then one per segment)", n, 1+len(idSegments))
	}
}

// ignoringIDs is an EC2 endpoint that ignores the snapshot-id filter, as an emulator
// might: the listing must notice and fall back to one chain, each snapshot once.
type ignoringIDs struct {
	ec2.DescribeSnapshotsAPIClient
	calls atomic.Int32
}

func (c *ignoringIDs) DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	c.calls.Add(1)
	cp := *in
	cp.Filters = nil
	for _, f := range in.Filters {
		if aws.ToString(f.Name) != "snapshot-id" {
			cp.Filters = append(cp.Filters, f)
		}
	}
	return c.DescribeSnapshotsAPIClient.DescribeSnapshots(ctx, &cp, opts...)
}

func TestSegmentedListingIgnoredFilter(t *testing.T) {
	t.Parallel()
	_, client := simEC2(t, 2500)
	c := &ignoringIDs{DescribeSnapshotsAPIClient: client}
	listedOnce(t, c, 2500, ": the segments' pages were used although their filter was ignored")
	if n := c.calls.Load(); n != 1+int32(len(idSegments))+2 {
		t.Errorf("%d calls, want %d (first page, one probe per segment, the two pages after the first)", n, 1+len(idSegments)+2)
	}
}

// TestSegmentedListingSmall: a listing of one page is one call, as before.
func TestSegmentedListingSmall(t *testing.T) {
	t.Parallel()
	s, client := simEC2(t, 900)
	if seen := listAll(t, client); len(seen) != 900 {
		t.Errorf("listed %d snapshots, want 900", len(seen))
	}
	if n := s.Calls()["ec2:DescribeSnapshots"]; n != 1 {
		t.Errorf("%d DescribeSnapshots calls for 900 snapshots, want 1", n)
	}
}
