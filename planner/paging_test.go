package planner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// pagedEC2 is a fake EC2 that serves DescribeInstances and DescribeSnapshots in pages
// (moto ignores pagination for snapshots and never pages a small fleet): the token of
// page i+1 is "page-i+1". failPage makes DescribeSnapshots fail on that page (0: never).
type pagedEC2 struct {
	instances [][]types.Instance
	snapshots [][]types.Snapshot
	volumes   []types.Volume
	failPage  int
	// shared are the snapshots DescribeSnapshotAttribute says are shared with 111122223333.
	shared map[string]bool

	mu    sync.Mutex
	calls map[string]int
}

var _ EC2 = (*pagedEC2)(nil)

// page returns the index a NextToken asks for, and the token of the page after it.
func page(token *string, pages int) (int, *string) {
	i := 0
	if token != nil {
		i = int(aws.ToString(token)[len("page-")] - '0')
	}
	if i+1 < pages {
		return i, aws.String("page-" + string(rune('0'+i+1)))
	}
	return i, nil
}

func (f *pagedEC2) count(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
}

func (f *pagedEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.count("DescribeInstances")
	i, next := page(in.NextToken, len(f.instances))
	return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: f.instances[i]}}, NextToken: next}, nil
}

func (f *pagedEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	f.count("DescribeSnapshots")
	i, next := page(in.NextToken, len(f.snapshots))
	if f.failPage > 0 && i == f.failPage {
		return nil, errors.New("connection reset in the middle of the listing")
	}
	return &ec2.DescribeSnapshotsOutput{Snapshots: f.snapshots[i], NextToken: next}, nil
}

func (f *pagedEC2) DescribeVolumes(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	f.count("DescribeVolumes")
	return &ec2.DescribeVolumesOutput{Volumes: f.volumes}, nil
}

func (f *pagedEC2) DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	f.count("DescribeImages")
	return &ec2.DescribeImagesOutput{}, nil
}

func (f *pagedEC2) DescribeLockedSnapshots(context.Context, *ec2.DescribeLockedSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeLockedSnapshotsOutput, error) {
	f.count("DescribeLockedSnapshots")
	return &ec2.DescribeLockedSnapshotsOutput{}, nil
}

func (f *pagedEC2) DescribeSnapshotAttribute(_ context.Context, in *ec2.DescribeSnapshotAttributeInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error) {
	f.count("DescribeSnapshotAttribute")
	out := &ec2.DescribeSnapshotAttributeOutput{SnapshotId: in.SnapshotId}
	if f.shared[aws.ToString(in.SnapshotId)] {
		out.CreateVolumePermissions = []types.CreateVolumePermission{{UserId: aws.String("111122223333")}}
	}
	return out, nil
}

// pagedFleet is two running instances, one per page of DescribeInstances, with a volume
// each; each volume has an expired and a recent managed snapshot, one volume's on each
// page of DescribeSnapshots (so the first page alone would expire a1: failing closed on
// the second page is what keeps it).
func pagedFleet() *pagedEC2 {
	inst := func(id, vol string) types.Instance {
		return types.Instance{InstanceId: aws.String(id), State: &types.InstanceState{Name: types.InstanceStateNameRunning},
			RootDeviceName: aws.String("/dev/xvda"),
			BlockDeviceMappings: []types.InstanceBlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"),
				Ebs: &types.EbsInstanceBlockDevice{VolumeId: aws.String(vol)}}}}
	}
	snap := func(id, vol string, age time.Duration) types.Snapshot {
		return types.Snapshot{SnapshotId: aws.String(id), VolumeId: aws.String(vol), OwnerId: aws.String(acct),
			State: types.SnapshotStateCompleted, StartTime: aws.Time(now.Add(-age)),
			Tags: []types.Tag{{Key: aws.String(tag.Policy), Value: aws.String("daily")}, {Key: aws.String(tag.Volume), Value: aws.String(vol)}}}
	}
	return &pagedEC2{
		instances: [][]types.Instance{{inst("i-00000001", "vol-00000001")}, {inst("i-00000002", "vol-00000002")}},
		snapshots: [][]types.Snapshot{
			{snap("snap-000000a1", "vol-00000001", 40*day), snap("snap-000000a2", "vol-00000001", 2*day)},
			{snap("snap-000000b1", "vol-00000002", 40*day), snap("snap-000000b2", "vol-00000002", 2*day)},
		},
		volumes: []types.Volume{{VolumeId: aws.String("vol-00000001")}, {VolumeId: aws.String("vol-00000002")}},
	}
}

// TestPlanPages: the planner reads every page of DescribeInstances and DescribeSnapshots;
// when a later page of DescribeSnapshots fails, it plans no delete in that account-region
// (fail closed, DESIGN.md §6.4) but still plans the creates, and the summary says why.
func TestPlanPages(t *testing.T) {
	t.Parallel()
	cfg := mustConfig(t, `
max_delete_fraction: 1
policies:
  - name: daily
    retain: {max_age: 30d}
`)
	tests := []struct {
		name        string
		failPage    int
		wantDeletes []string
		wantErrors  int
	}{
		{"every page read", 0, []string{"snap-000000a1", "snap-000000b1"}, 0},
		{"second snapshot page fails", 1, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := pagedFleet()
			fake.failPage = tt.failPage
			q := &recorder{}
			p := &Planner{Config: cfg, Accounts: []string{acct}, Regions: []string{region},
				EC2: func(string, string) EC2 { return fake }, Queue: q, Now: now, RunID: "r1",
				Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
			sum, err := p.Plan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if fake.calls["DescribeInstances"] != 2 {
				t.Errorf("DescribeInstances called %d times, want 2 (both pages)", fake.calls["DescribeInstances"])
			}
			// The fake ignores the id segments' filter (segments.go): their probes see it,
			// and the listing goes on from the first page.
			if fake.calls["DescribeSnapshots"] != 2+len(idSegments) {
				t.Errorf("DescribeSnapshots called %d times, want 2 (both pages) and %d segment probes", fake.calls["DescribeSnapshots"], len(idSegments))
			}
			creates, deletes := q.jobs(t)
			if got := sortedVolumes(creates); !slices.Equal(got, []string{"vol-00000001", "vol-00000002"}) {
				t.Errorf("creates for %v, want both pages' instances' volumes", got)
			}
			var got []string
			for _, j := range deletes {
				if j.Kind != job.KindDelete {
					t.Errorf("job %+v", j)
				}
				got = append(got, j.Snapshot)
			}
			sort.Strings(got)
			if !slices.Equal(got, tt.wantDeletes) {
				t.Errorf("deletes of %v, want %v", got, tt.wantDeletes)
			}
			if sum.Errors != tt.wantErrors || len(sum.Failures) != tt.wantErrors {
				t.Fatalf("summary errors %d, failures %+v; want %d", sum.Errors, sum.Failures, tt.wantErrors)
			}
			if tt.wantErrors > 0 && !strings.Contains(sum.Failures[0].Error, "no deletes planned") {
				t.Errorf("failure %q does not say that no deletes were planned", sum.Failures[0].Error)
			}
			if sum.DeleteJobs != len(tt.wantDeletes) || sum.SnapshotJobs != 2 {
				t.Errorf("summary: %d delete jobs, %d snapshot jobs", sum.DeleteJobs, sum.SnapshotJobs)
			}
		})
	}
}

// dryRunShares plans fake with CheckShares in a dry run.
func dryRunShares(t *testing.T, fake *pagedEC2, yaml string) Summary {
	t.Helper()
	p := &Planner{Config: mustConfig(t, yaml), Accounts: []string{acct}, Regions: []string{region},
		EC2: func(string, string) EC2 { return fake }, Now: now, RunID: "r1", DryRun: true, CheckShares: true,
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)}
	sum, err := p.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestCheckSharesAfterBreaker: the circuit breaker counts what a plan enqueues, shared
// snapshots included (the worker skips them), so a CheckShares dry run trips where the
// plan would, and then asks about no share; under the fraction it shows the shared one
// as protected shared. CheckShares outside a dry run is refused.
func TestCheckSharesAfterBreaker(t *testing.T) {
	t.Parallel()
	const policy = "policies:\n  - name: daily\n    retain: {max_age: 30d}\n"
	// 2 deletes (a1, b1) of 4 managed: over 0.4 with a1 counted, under it without.
	fake := pagedFleet()
	fake.shared = map[string]bool{"snap-000000a1": true}
	sum := dryRunShares(t, fake, "max_delete_fraction: 0.4\n"+policy)
	if sum.Held != 2 || sum.DeleteJobs != 0 || sum.Scopes[0].Breaker == nil || fake.calls["DescribeSnapshotAttribute"] != 0 {
		t.Fatalf("over the fraction: held %d, deletes %d, breaker %v, %d share checks; want 2 held by the breaker and no check",
			sum.Held, sum.DeleteJobs, sum.Scopes[0].Breaker, fake.calls["DescribeSnapshotAttribute"])
	}
	fake = pagedFleet()
	fake.shared = map[string]bool{"snap-000000a1": true}
	sum = dryRunShares(t, fake, "max_delete_fraction: 0.5\n"+policy)
	got := detailed(sum.Decisions)
	if got["snap-000000a1"] != "protected shared" || got["snap-000000b1"] != "delete expired" || sum.DeleteJobs != 1 ||
		sum.Protected != 1 || sum.Scopes[0].Breaker != nil || fake.calls["DescribeSnapshotAttribute"] != 2 {
		t.Fatalf("under the fraction: decisions %v, summary %+v, %d share checks", got, sum, fake.calls["DescribeSnapshotAttribute"])
	}
	p := &Planner{Config: mustConfig(t, policy), Accounts: []string{acct}, Regions: []string{region},
		EC2: func(string, string) EC2 { return pagedFleet() }, Queue: &recorder{}, CheckShares: true}
	if _, err := p.Plan(context.Background()); err == nil || !strings.Contains(err.Error(), "CheckShares is for a dry run") {
		t.Fatalf("CheckShares without DryRun: %v", err)
	}
}

// TestCheckSharesBounded: a CheckShares dry run asks about at most MaxShareChecks deletes
// of an account-region, the first by snapshot id, and counts and names the rest as not
// checked: a shared snapshot past the bound stays a delete (the worker skips it).
func TestCheckSharesBounded(t *testing.T) {
	t.Parallel()
	n := MaxShareChecks + 10
	fake := &pagedEC2{instances: [][]types.Instance{{}}, snapshots: [][]types.Snapshot{nil}}
	var expired []string
	for i := 0; i < n; i++ {
		vol := fmt.Sprintf("vol-%08x", i)
		fake.volumes = append(fake.volumes, types.Volume{VolumeId: aws.String(vol)})
		for k, age := range []time.Duration{40 * day, 2 * day} {
			id := fmt.Sprintf("snap-%08x", 2*i+k)
			if k == 0 {
				expired = append(expired, id)
			}
			fake.snapshots[0] = append(fake.snapshots[0], types.Snapshot{SnapshotId: aws.String(id), VolumeId: aws.String(vol),
				OwnerId: aws.String(acct), State: types.SnapshotStateCompleted, StartTime: aws.Time(now.Add(-age)),
				Tags: []types.Tag{{Key: aws.String(tag.Policy), Value: aws.String("daily")}, {Key: aws.String(tag.Volume), Value: aws.String(vol)}}})
		}
	}
	first, last := expired[0], expired[n-1]
	fake.shared = map[string]bool{first: true, last: true}
	sum := dryRunShares(t, fake, "max_delete_fraction: 1\npolicies:\n  - name: daily\n    retain: {max_age: 30d}\n")
	if c := fake.calls["DescribeSnapshotAttribute"]; c != MaxShareChecks {
		t.Fatalf("%d share checks, want %d", c, MaxShareChecks)
	}
	got := detailed(sum.Decisions)
	if got[first] != "protected shared" || got[last] != "delete expired" || sum.DeleteJobs != n-1 || sum.Scopes[0].SharesUnchecked != 10 {
		t.Fatalf("first %s %q, last %s %q, %d deletes, %d unchecked; want the first protected, the last unchecked",
			first, got[first], last, got[last], sum.DeleteJobs, sum.Scopes[0].SharesUnchecked)
	}
	if w := fmt.Sprint(sum.Warnings); !strings.Contains(w, "the shares of 10 planned deletes were not checked") || !strings.Contains(w, acct+"/"+region) {
		t.Fatalf("warnings %s, want the 10 unchecked named", w)
	}
}
