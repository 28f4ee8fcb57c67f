package planner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"

	"github.com/snapfleet/snapfleet/internal/reason"
)

var _ EC2 = (*ec2.Client)(nil)

// detailed renders snapshot decisions as "id action reason".
func detailed(ds []Decision) map[string]string {
	m := map[string]string{}
	for _, d := range ds {
		if d.Snapshot != "" {
			m[d.Snapshot] = d.Action + " " + d.Reason
		}
	}
	return m
}

func TestDecideOrphansAdoptionProtections(t *testing.T) {
	t.Parallel()
	const live, gone = "vol-000000000000000a1", "vol-000000000000000b1"
	snaps := []Snapshot{
		snap("snap-000000000000000a1", "daily", live, 1*day),
		snap("snap-000000000000000a2", "daily", live, 40*day),
		snap("snap-000000000000000a3", "daily", live, 50*day),
		snap("snap-000000000000000b1", "daily", gone, 40*day),
		snap("snap-000000000000000b2", "daily", gone, 50*day),
	}
	legacy := snap("snap-000000000000000c1", "daily", live, 60*day)
	legacy.Adopted = true
	legacyNoVolume := snap("snap-000000000000000c2", "daily", "", 60*day)
	legacyNoVolume.Adopted = true
	snaps = append(snaps, legacy, legacyNoVolume)
	vols := map[string]bool{live: true}

	tests := []struct {
		name string
		cfg  string
		inv  Inventory
		want map[string]string
	}{
		{"orphans keep min_keep by default", "policies:\n  - name: daily\n    retain: {max_age: 30d}\n",
			Inventory{Snapshots: snaps, Volumes: vols, SnapshotsComplete: true},
			map[string]string{
				"snap-000000000000000a1": "keep newest", "snap-000000000000000a2": "delete expired", "snap-000000000000000a3": "delete expired",
				"snap-000000000000000b1": "keep newest", "snap-000000000000000b2": "delete expired",
				"snap-000000000000000c1": "delete expired", "snap-000000000000000c2": "keep unknown_volume"}},
		{"orphans.min_keep 0: a gone volume's snapshots all expire", "policies:\n  - name: daily\n    retain: {max_age: 30d}\n    orphans: {min_keep: 0}\n",
			Inventory{Snapshots: snaps, Volumes: vols, SnapshotsComplete: true},
			map[string]string{
				"snap-000000000000000a1": "keep newest", "snap-000000000000000a2": "delete expired", "snap-000000000000000a3": "delete expired",
				"snap-000000000000000b1": "delete expired", "snap-000000000000000b2": "delete expired",
				"snap-000000000000000c1": "delete expired", "snap-000000000000000c2": "keep unknown_volume"}},
		{"volumes not listed: nothing is an orphan", "policies:\n  - name: daily\n    retain: {max_age: 30d}\n    orphans: {min_keep: 0}\n",
			Inventory{Snapshots: snaps[:5], SnapshotsComplete: true},
			map[string]string{
				"snap-000000000000000a1": "keep newest", "snap-000000000000000a2": "delete expired", "snap-000000000000000a3": "delete expired",
				"snap-000000000000000b1": "keep newest", "snap-000000000000000b2": "delete expired"}},
		{"protections turn deletes into protected, or fail closed", "policies:\n  - name: daily\n    retain: {max_age: 30d}\n",
			Inventory{Snapshots: snaps[:5], Volumes: vols, SnapshotsComplete: true, Protections: map[string]Protection{
				"snap-000000000000000a2": {Reason: reason.InUse, Detail: "used by ami-1"},
				"snap-000000000000000a3": {Reason: reason.FailClosed, Detail: "its shares could not be read"},
				"snap-000000000000000b2": {Reason: reason.Shared, Detail: "shared with 111122223333"},
				"snap-000000000000000a1": {Reason: reason.Locked, Detail: "kept anyway: protection only matters for deletes"},
			}},
			map[string]string{
				"snap-000000000000000a1": "keep newest", "snap-000000000000000a2": "protected in_use", "snap-000000000000000a3": "keep fail_closed",
				"snap-000000000000000b1": "keep newest", "snap-000000000000000b2": "protected shared"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.inv.Account, tt.inv.Region = acct, region
			res := Decide(tt.inv, mustConfig(t, tt.cfg), now)
			if got := detailed(res.Decisions); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("decisions\n got %v\nwant %v", got, tt.want)
			}
			for _, d := range res.Decisions {
				if (d.Action == ActionDelete || d.Action == ActionKeep) && d.Reason != reason.FailClosed && d.Reason != reason.UnknownVolume && d.Detail == "" {
					t.Errorf("%s %s has no detail", d.Action, d.Snapshot)
				}
				if d.Volume == gone && tt.inv.Volumes != nil && !d.Orphan {
					t.Errorf("%s of gone volume not marked orphan", d.Snapshot)
				}
				if d.Snapshot == "snap-000000000000000c1" && !d.Adopted {
					t.Errorf("legacy snapshot not marked adopted")
				}
			}
			if tt.inv.Volumes != nil && res.Orphans != 2 {
				t.Errorf("orphans %d, want 2", res.Orphans)
			}
		})
	}
	// An adopted snapshot joins its volume's group: it counts for the newest and the floor.
	res := Decide(Inventory{Account: acct, Region: region, Snapshots: []Snapshot{legacy, snaps[2]}, Volumes: vols, SnapshotsComplete: true},
		mustConfig(t, "policies:\n  - name: daily\n    retain: {max_age: 30d}\n"), now)
	if got := detailed(res.Decisions); got["snap-000000000000000a3"] != "keep newest" || got["snap-000000000000000c1"] != "delete expired" {
		t.Fatalf("adopted and managed snapshots of one volume: %v", got)
	}
}

func TestTrip(t *testing.T) {
	t.Parallel()
	mk := func(deletes, managed int) *Result {
		r := &Result{SnapshotsSeen: managed, Deletes: deletes}
		for i := 0; i < managed; i++ {
			a := ActionKeep
			if i < deletes {
				a = ActionDelete
			}
			r.Decisions = append(r.Decisions, Decision{Action: a, Snapshot: fmt.Sprintf("snap-%d", i), Key: "k", Reason: "expired"})
		}
		return r
	}
	tests := []struct {
		name              string
		deletes, managed  int
		complete, force   bool
		fraction          float64
		tripped           bool
		wantDel, wantHeld int
	}{
		{"half is allowed", 5, 10, true, false, 0.5, false, 5, 0},
		{"more than half trips", 6, 10, true, false, 0.5, true, 0, 6},
		{"80% trips", 8, 10, true, false, 0.5, true, 0, 8},
		{"force lets 80% through", 8, 10, true, true, 0.5, false, 8, 0},
		{"fraction 1 never trips on deletes", 10, 10, true, false, 1, false, 10, 0},
		{"low fraction", 2, 10, true, false, 0.1, true, 0, 2},
		{"incomplete listing trips, force or not", 0, 10, false, true, 0.5, true, 0, 0},
		{"nothing to delete", 0, 0, true, false, 0.5, false, 0, 0},
	}
	for _, tt := range tests {
		r := mk(tt.deletes, tt.managed)
		if got := r.Trip(tt.complete, tt.fraction, tt.force); got != tt.tripped {
			t.Errorf("%s: tripped %v, want %v", tt.name, got, tt.tripped)
		}
		n := map[string]int{}
		for _, d := range r.Decisions {
			n[d.Action]++
			if d.Action == ActionHeld && (d.Key != "" || d.Reason != reason.CircuitBreaker) {
				t.Errorf("%s: held decision %+v keeps its key or reason", tt.name, d)
			}
		}
		if r.Deletes != tt.wantDel || n[ActionDelete] != tt.wantDel || n[ActionHeld] != tt.wantHeld || r.Held != tt.wantHeld {
			t.Errorf("%s: deletes %d (%d decisions), held %d (%d), want %d and %d", tt.name, r.Deletes, n[ActionDelete], r.Held, n[ActionHeld], tt.wantDel, tt.wantHeld)
		}
		if tt.tripped && (r.Breaker == nil || !strings.Contains(r.Breaker.String(), "circuit breaker")) {
			t.Errorf("%s: breaker %+v", tt.name, r.Breaker)
		}
	}
}

func TestSortDecisions(t *testing.T) {
	t.Parallel()
	ds := []Decision{
		{Account: "2", Region: "a", Volume: "v1"}, {Account: "1", Region: "b", Volume: "v1"},
		{Account: "1", Region: "a", Volume: "v2", Snapshot: "s2"}, {Account: "1", Region: "a", Volume: "v2", Snapshot: "s1"},
		{Account: "1", Region: "a", Volume: "v1", Action: ActionCreate},
	}
	SortDecisions(ds)
	var got []string
	for _, d := range ds {
		got = append(got, d.Account+d.Region+d.Volume+d.Snapshot)
	}
	if want := []string{"1av1", "1av2s1", "1av2s2", "1bv1", "2av1"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// locks answers DescribeLockedSnapshots itself, reporting the named snapshots locked in
// governance mode: moto has no snapshot locks.
func locks(locked ...string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("locks", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if middleware.GetOperationName(ctx) != "DescribeLockedSnapshots" {
				return next.HandleInitialize(ctx, in)
			}
			out := &ec2.DescribeLockedSnapshotsOutput{}
			asked := in.Parameters.(*ec2.DescribeLockedSnapshotsInput).SnapshotIds
			for _, id := range locked {
				if slices.Contains(asked, id) {
					out.Snapshots = append(out.Snapshots, types.LockedSnapshotsInfo{SnapshotId: aws.String(id), LockState: types.LockStateGovernance})
				}
			}
			return middleware.InitializeOutput{Result: out}, middleware.Metadata{}, nil
		}), middleware.Before)
	}
}

// opCounter counts, per operation, the calls made through the clients it is added to.
type opCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *opCounter) add(s *middleware.Stack) error {
	return s.Initialize.Add(middleware.InitializeMiddlewareFunc("count", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		c.mu.Lock()
		if c.n == nil {
			c.n = map[string]int{}
		}
		c.n[middleware.GetOperationName(ctx)]++
		c.mu.Unlock()
		return next.HandleInitialize(ctx, in)
	}), middleware.Before)
}

func (c *opCounter) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

// TestClassifierThroughMoto: of one volume's expired snapshots, the one an AMI uses and
// the locked one are protected; the others are deleted, the shared one included (the
// worker skips it): the plan makes no DescribeSnapshotAttribute call. A dry run with
// CheckShares shows the shared one as protected shared. A failing lock check fails
// closed; an endpoint without the lock API has no locks.
func TestClassifierThroughMoto(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	cfg := mustConfig(t, `
max_delete_fraction: 1
policies:
  - name: daily
    retain: {max_age: 30d}
`)
	c := f.client(mototest.Region)
	_, vols := f.instance(c, "us-east-1a", nil)
	a := vols[1]
	managed := map[string]string{tag.Policy: "daily", tag.Volume: a}

	// moto's RegisterImage makes the AMI's snapshot itself, whatever the mappings name:
	// register at day -60 and make the AMI's snapshot one of the volume's managed ones.
	f.s.ShiftClock(t, -60*day)
	img, err := c.RegisterImage(f.ctx, &ec2.RegisterImageInput{Name: aws.String("golden"), RootDeviceName: aws.String("/dev/sda1"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-00000000")}}}})
	f.s.ShiftClock(t, 0)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := c.DescribeImages(f.ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(img.ImageId)}})
	if err != nil || len(desc.Images) != 1 {
		t.Fatalf("describing the AMI: %v", err)
	}
	amiSnap := aws.ToString(desc.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId)
	f.tagResource(c, amiSnap, managed)

	shared := f.snapshot(a, 50*day, managed)
	f.Share(f.ctx, shared, "111122223333")
	locked := f.snapshot(a, 45*day, managed)
	old1 := f.snapshot(a, 40*day, managed)
	old2 := f.snapshot(a, 35*day, managed)
	young := f.snapshot(a, 10*day, managed)

	calls := &opCounter{}
	plan := func(opts ...func(*middleware.Stack) error) (Summary, []string) {
		t.Helper()
		q := &recorder{}
		opts = append(opts, calls.add)
		sum, err := f.planner(cfg, []string{mototest.Region}, map[string]*ec2.Client{mototest.Region: f.client(mototest.Region, opts...)}, q, time.Now()).Plan(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, deletes := q.jobs(t)
		var got []string
		for _, j := range deletes {
			got = append(got, j.Snapshot)
		}
		sort.Strings(got)
		return sum, got
	}
	dryRun := func(checkShares bool, opts ...func(*middleware.Stack) error) Summary {
		t.Helper()
		opts = append(opts, locks(locked), calls.add)
		p := f.planner(cfg, []string{mototest.Region}, map[string]*ec2.Client{mototest.Region: f.client(mototest.Region, opts...)}, nil, time.Now())
		p.DryRun, p.CheckShares = true, checkShares
		sum, err := p.Plan(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	sorted := func(ids ...string) []string { sort.Strings(ids); return ids }

	sum, got := plan(locks(locked))
	if want := sorted(old1, old2, shared); !slices.Equal(got, want) {
		t.Fatalf("deletes %v, want %v (the shared one is the worker's to skip)", got, want)
	}
	if sum.Protected != 2 || sum.DeleteJobs != 3 || sum.Errors != 0 {
		t.Fatalf("summary %+v", sum)
	}
	if n := calls.get("DescribeSnapshotAttribute"); n != 0 {
		t.Fatalf("the plan made %d DescribeSnapshotAttribute calls, want none", n)
	}
	// Without CheckShares, a share check that would fail is never made.
	if sum, got = plan(locks(locked), fault("InternalError", "DescribeSnapshotAttribute")); len(got) != 3 || sum.Errors != 0 {
		t.Fatalf("plan with failing share checks: deletes %v, summary %+v", got, sum)
	}
	dry := dryRun(false)
	want := map[string]string{amiSnap: "protected in_use", shared: "delete expired", locked: "protected locked",
		old1: "delete expired", old2: "delete expired", young: "keep newest"}
	if got := detailed(dry.Decisions); fmt.Sprint(got) != fmt.Sprint(want) || dry.CheckShares {
		t.Fatalf("dry run\n got %v\nwant %v", got, want)
	}
	if n := calls.get("DescribeSnapshotAttribute"); n != 0 {
		t.Fatalf("the dry run made %d DescribeSnapshotAttribute calls, want none", n)
	}

	// CheckShares: one call per planned delete, the shared one shown as protected.
	dry = dryRun(true)
	want[shared] = "protected shared"
	if got := detailed(dry.Decisions); fmt.Sprint(got) != fmt.Sprint(want) || !dry.CheckShares {
		t.Fatalf("dry run with CheckShares\n got %v\nwant %v", got, want)
	}
	if n := calls.get("DescribeSnapshotAttribute"); n != 3 {
		t.Fatalf("the dry run with CheckShares made %d DescribeSnapshotAttribute calls, want 3 (one per planned delete)", n)
	}
	if dry.DeleteJobs != 2 || dry.Protected != 3 || dry.Errors != 0 || dry.Scopes[0].Deletes != 2 || dry.Scopes[0].SharesUnchecked != 0 {
		t.Fatalf("dry run with CheckShares: summary %+v", dry)
	}
	for _, d := range dry.Decisions {
		if d.Snapshot == amiSnap && d.Detail != "used by "+aws.ToString(img.ImageId) || d.Snapshot == shared && (d.Detail != "shared with 111122223333" || d.Key != "") {
			t.Errorf("detail of %s: %q (key %q)", d.Snapshot, d.Detail, d.Key)
		}
	}
	// A share check that fails leaves the deletes as planned, and is a failure.
	dry = dryRun(true, fault("InternalError", "DescribeSnapshotAttribute"))
	want[shared] = "delete expired"
	if got := detailed(dry.Decisions); fmt.Sprint(got) != fmt.Sprint(want) || dry.Errors != 1 ||
		!strings.Contains(dry.Failures[0].Error, "shares of 3 snapshots") || !strings.Contains(dry.Failures[0].Error, "the worker checks each") {
		t.Fatalf("failing share checks: decisions %v, failures %+v", got, dry.Failures)
	}

	// The lock check fails: nothing is deleted, and it is a failure.
	sum, got = plan(fault("InternalError", "DescribeLockedSnapshots"))
	if len(got) != 0 || sum.Errors != 1 || !strings.Contains(sum.Failures[0].Error, "snapshot locks") {
		t.Fatalf("failing lock check: deletes %v, summary %+v", got, sum)
	}
	// Plain moto has no DescribeLockedSnapshots and answers with an HTML error page: no
	// deletes, and an error that says so rather than an XML parser's.
	sum, got = plan(plainMoto)
	if len(got) != 0 || sum.Errors != 1 {
		t.Fatalf("lock API answering HTML: deletes %v, summary %+v", got, sum)
	}
	for _, want := range []string{"could not answer DescribeLockedSnapshots", "HTTP 500", "no deletes planned"} {
		if !strings.Contains(sum.Failures[0].Error, want) {
			t.Errorf("lock API answering HTML: error %q does not say %q", sum.Failures[0].Error, want)
		}
	}
	if strings.Contains(sum.Failures[0].Error, "attribute value") {
		t.Errorf("lock API answering HTML: error %q is an XML parser's", sum.Failures[0].Error)
	}
	// The endpoint says the action does not exist: no locks.
	sum, got = plan(fault("InvalidAction", "DescribeLockedSnapshots"))
	if want := sorted(old1, old2, locked, shared); !slices.Equal(got, want) || sum.Errors != 0 {
		t.Fatalf("without a lock API: deletes %v, want %v; summary %+v", got, want, sum)
	}
	// The AMI listing fails: nothing is deleted.
	if sum, got = plan(fault("InternalError", "DescribeImages")); len(got) != 0 || sum.Errors != 1 {
		t.Fatalf("failing AMI listing: deletes %v, summary %+v", got, sum)
	}
	if n := calls.get("DescribeSnapshotAttribute"); n != 6 {
		t.Fatalf("%d DescribeSnapshotAttribute calls in all, want only the 3 of each dry run with CheckShares", n)
	}
}

// TestAdoptionThroughMoto: a legacy AutoBackup snapshot is planned for deletion only
// under a policy that adopts it, and the circuit breaker holds a plan that deletes most
// of a scope unless forced.
func TestAdoptionThroughMoto(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := f.client(mototest.Region)
	_, vols := f.instance(c, "us-east-1a", nil)
	a := vols[1]
	legacy := f.snapshot(a, 60*day, map[string]string{"AutoBackup": "true"})
	other := f.snapshot(a, 60*day, map[string]string{"AutoBackup": "false"})
	newest := f.snapshot(a, 1*day, map[string]string{tag.Policy: "daily", tag.Volume: a})

	plan := func(yaml string, force bool) (Summary, []string) {
		t.Helper()
		q := &recorder{}
		p := f.planner(mustConfig(t, yaml), []string{mototest.Region}, nil, q, time.Now())
		p.Force = force
		sum, err := p.Plan(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, deletes := q.jobs(t)
		var got []string
		for _, j := range deletes {
			got = append(got, j.Snapshot)
		}
		return sum, got
	}
	base := "policies:\n  - name: daily\n    retain: {max_age: 30d}\n"
	if sum, got := plan(base, false); len(got) != 0 || sum.SnapshotsSeen != 1 {
		t.Fatalf("without adopt: deletes %v, summary %+v", got, sum)
	}
	adopt := base + "    adopt: {tags: {AutoBackup: \"true\"}}\n"
	sum, got := plan(adopt, true)
	if !slices.Equal(got, []string{legacy}) || sum.SnapshotsSeen != 2 {
		t.Fatalf("with adopt: deletes %v, want [%s] (not %s, not %s); summary %+v", got, legacy, other, newest, sum)
	}
	// 1 of 2 managed is 50%: allowed. A lower fraction trips the breaker.
	if sum, got := plan("max_delete_fraction: 0.4\n"+adopt, false); len(got) != 0 || sum.Held != 1 || sum.Errors != 1 ||
		sum.Scopes[0].Breaker == nil || !strings.Contains(sum.Failures[0].Error, "circuit breaker") {
		t.Fatalf("breaker: deletes %v, summary %+v", got, sum)
	}
	if sum, got := plan("max_delete_fraction: 0.4\n"+adopt, true); !slices.Equal(got, []string{legacy}) || sum.Errors != 0 {
		t.Fatalf("forced: deletes %v, summary %+v", got, sum)
	}
}

// plainMoto answers DescribeLockedSnapshots as moto 5.2 does without the patch of
// internal/testbed/mototest: HTTP 500 with Flask's HTML error page.
func plainMoto(s *middleware.Stack) error {
	return s.Deserialize.Add(middleware.DeserializeMiddlewareFunc("plainMoto", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
		if middleware.GetOperationName(ctx) != "DescribeLockedSnapshots" {
			return next.HandleDeserialize(ctx, in)
		}
		page := "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n" +
			"<p>The server encountered an internal error and was unable to complete your request.</p>\n"
		resp := &smithyhttp.Response{Response: &http.Response{StatusCode: 500, Status: "500 INTERNAL SERVER ERROR",
			Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}}, Body: io.NopCloser(strings.NewReader(page))}}
		return middleware.DeserializeOutput{RawResponse: resp}, middleware.Metadata{}, nil
	}), middleware.After)
}
