package sim_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/testbed/sim"
)

// TestPagesByID: a paginated listing resumes after the last snapshot it returned, so a
// snapshot deleted between pages makes none of the others skipped (a token that counted
// positions skipped one), and a filter selects across pages; a token that is no id is
// refused.
func TestPagesByID(t *testing.T) {
	t.Parallel()
	s, cfg := start(t)
	ctx := context.Background()
	vol := s.AddInstances(sim.DefaultAccount, region, 1, 1, "", nil)[0].Devices[0].Volume
	var made []string
	for i := range 6 {
		made = append(made, s.AddSnapshot(sim.DefaultAccount, region, vol, t0, map[string]string{"n": fmt.Sprint(i % 2)}))
	}
	cl := ec2.NewFromConfig(cfg)
	in := &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(2)}
	first, err := cl.DescribeSnapshots(ctx, in)
	if err != nil || len(first.Snapshots) != 2 {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	if _, err := cl.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: first.Snapshots[0].SnapshotId}); err != nil {
		t.Fatal(err)
	}
	in.NextToken = first.NextToken
	var rest []string
	for {
		p, err := cl.DescribeSnapshots(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, sn := range p.Snapshots {
			rest = append(rest, aws.ToString(sn.SnapshotId))
		}
		if p.NextToken == nil {
			break
		}
		in.NextToken = p.NextToken
	}
	if want := made[2:]; fmt.Sprint(rest) != fmt.Sprint(want) {
		t.Errorf("after a delete between pages: %v, want %v", rest, want)
	}
	odd, err := cl.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(1), NextToken: aws.String(made[1]),
		Filters: []types.Filter{{Name: aws.String("tag:n"), Values: []string{"1"}}}})
	if err != nil || len(odd.Snapshots) != 1 || aws.ToString(odd.Snapshots[0].SnapshotId) != made[3] || aws.ToString(odd.NextToken) != made[3] {
		t.Errorf("filtered page after %s: %+v, %v; want %s and a token", made[1], odd, err, made[3])
	}
	if _, err := cl.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{NextToken: aws.String("7")}); code(t, err) != "InvalidNextToken" {
		t.Errorf("token 7: %v, want InvalidNextToken", err)
	}

}
