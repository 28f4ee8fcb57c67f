package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
)

// copyFleetConfig: policy daily in account 111111111111 keeps its newest snapshot and
// copies every one to us-west-2 in its own account and to eu-west-1 in the vault
// 222222222222, each keeping 2 per volume.
func copyFleetConfig() string {
	var cfg string
	cfg += "regions: [us-east-1]\naccounts:\n"
	for _, a := range []string{"111111111111", "222222222222"} {
		cfg += fmt.Sprintf("  - {id: %q, role_arn: %q, external_id: ext}\n", a, testfleet.Role(a))
	}
	return cfg + `policies:
  - name: daily
    every: 24h
    retain: {keep_last: 1}
    copy:
      - region: us-west-2
        retain: {keep_last: 2}
      - region: eu-west-1
        account: "222222222222"
        retain: {keep_last: 2}
`
}

// copiesIn returns the sources of the copies in account and region, and the ids of the
// copies, sorted.
func (w *fleetWorld) copiesIn(ctx context.Context, account, region string) (sources []string) {
	w.t.Helper()
	out, err := w.fleet.In(account, region).EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{account},
		Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{tag.Source}}}})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, s := range out.Snapshots {
		sources = append(sources, tagsOf(s)[tag.Source])
	}
	slices.Sort(sources)
	return sources
}

// sourceSnapshots returns the managed snapshots of account 111111111111 in us-east-1.
func (w *fleetWorld) sourceSnapshots(ctx context.Context) []string {
	w.t.Helper()
	out, err := w.fleet.In("111111111111", "us-east-1").EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"111111111111"},
		Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{tag.Policy}}}})
	if err != nil {
		w.t.Fatal(err)
	}
	var ids []string
	for _, s := range out.Snapshots {
		ids = append(ids, aws.ToString(s.SnapshotId))
	}
	slices.Sort(ids)
	return ids
}

// TestCopiesAcrossRegionsAndAccounts: day by day, plan and work copy each snapshot of the
// day before to the account's us-west-2 and to the vault's eu-west-1 — one copy per
// source and destination however often the day is planned —, the source's retention
// deletes sources without touching their copies, and each destination prunes its copies
// by its own keep_last 2.
func TestCopiesAcrossRegionsAndAccounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newFleetWorld(t, copyFleetConfig())
	w.fleet.In("111111111111", "us-east-1").Instances(ctx, 1, 0, nil)
	qURL := "file:" + filepath.Join(t.TempDir(), "jobs.db")
	dests := [][2]string{{"111111111111", "us-west-2"}, {"222222222222", "eu-west-1"}}

	var made [][]string // the sources of each day, as listed after the day's work
	for day := range 5 {
		now := w.at(time.Duration(day) * 24 * time.Hour)
		var sum struct {
			planJSON
			CopyJobs int `json:"copy_jobs"`
		}
		w.jsonCLI(0, &sum, "plan", "--queue", qURL, "--now", now)
		if day == 1 {
			w.jsonCLI(0, &sum, "plan", "--queue", qURL, "--now", now) // the day planned twice
		}
		if want := min(day, 1) * 2; sum.CopyJobs != want {
			t.Errorf("day %d: plan enqueued %d copy jobs, want %d", day, sum.CopyJobs, want)
		}
		var st map[string]int
		w.jsonCLI(0, &st, "work", "--queue", qURL, "--now", now, "--allow-clock-skew", "--idle-exit", "2s", "--visibility", "5s")
		if st["dead_lettered"] != 0 {
			t.Fatalf("day %d: work %v; dead letters %+v", day, st, w.dlqList(qURL).Messages)
		}
		made = append(made, w.sourceSnapshots(ctx))
	}
	// Sources: keep_last 1, and the day's new one: the last two days' snapshots.
	if got := made[4]; len(got) != 2 {
		t.Errorf("sources after day 4: %v, want 2", got)
	}
	// Every day's snapshot s_d (the one made on day d) was copied on day d+1; day 4's
	// plan pruned each destination to keep_last 2 before its copy of s_3 was made: s_0's
	// copies are gone although s_0 itself went long before, s_1 .. s_3 have theirs.
	var want []string
	for d := 1; d <= 3; d++ {
		for _, id := range made[d] {
			if !slices.Contains(made[d-1], id) {
				want = append(want, id)
			}
		}
	}
	slices.Sort(want)
	for _, d := range dests {
		if got := w.copiesIn(ctx, d[0], d[1]); !slices.Equal(got, want) {
			t.Errorf("%s/%s: copies of %v, want one each of %v", d[0], d[1], got, want)
		}
	}
	// snapshots lists the sources with their copies in both destinations (regions and an
	// account found from the policy's copy:, not only the configured regions).
	var pts snapshotsResult
	w.jsonCLI(0, &pts, "snapshots")
	copied := map[string][]string{}
	for _, p := range pts.Points {
		for _, c := range p.Copies {
			copied[p.Snapshot] = append(copied[p.Snapshot], c.Account+"/"+c.Region)
		}
	}
	s3 := want[slices.IndexFunc(want, func(id string) bool { return slices.Contains(made[4], id) })]
	if !slices.Equal(sortedCopy(copied[s3]), []string{"111111111111/us-west-2", "222222222222/eu-west-1"}) {
		t.Errorf("snapshots: copies %v, want %s's in us-west-2 and the vault's eu-west-1", copied, s3)
	}
	// Nothing stays shared with the vault.
	for _, id := range made[4] {
		out, err := w.fleet.In("111111111111", "us-east-1").EC2.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{
			SnapshotId: aws.String(id), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
		if err != nil || len(out.CreateVolumePermissions) != 0 {
			t.Errorf("snapshot %s: shares %+v, %v; want none", id, out, err)
		}
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
