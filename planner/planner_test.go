package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/retention"
	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

var _ EC2 = (*ec2.Client)(nil)
var _ Sender = (queue.Queue)(nil)

// recorder is a Sender that keeps what it was sent; fail makes Send fail after n calls.
type recorder struct {
	mu    sync.Mutex
	msgs  []queue.Outgoing
	calls int
	fail  int // 0: never
}

func (r *recorder) Send(_ context.Context, msgs []queue.Outgoing) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if len(msgs) > 10 {
		return fmt.Errorf("batch of %d, over 10", len(msgs))
	}
	if r.fail > 0 && r.calls >= r.fail {
		return errors.New("queue unavailable")
	}
	r.msgs = append(r.msgs, msgs...)
	return nil
}

// jobs decodes every message strictly and returns them by kind.
func (r *recorder) jobs(t *testing.T) (creates, deletes []job.Job) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		j, err := job.Decode(m.Body)
		if err != nil {
			t.Fatalf("message %s: %v", m.Body, err)
		}
		if m.DedupID != j.Key {
			t.Errorf("dedup id %q, want the key %q", m.DedupID, j.Key)
		}
		if want := j.Account + "/" + j.Region + "/" + j.Volume; m.GroupID != want {
			t.Errorf("group id %q, want %q", m.GroupID, want)
		}
		if j.Kind == job.KindCreate {
			creates = append(creates, j)
		} else {
			deletes = append(deletes, j)
		}
	}
	return creates, deletes
}

// fleet is a moto EC2 account to build (through testbed/fleet) and plan.
type fleet struct {
	*testfleet.Fleet
	t   *testing.T
	s   *mototest.Server
	ctx context.Context
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	s := mototest.Start(t)
	return &fleet{Fleet: testfleet.New(t, s), t: t, s: s, ctx: context.Background()}
}

// client returns an EC2 client for region, with extra middleware.
func (f *fleet) client(region string, opts ...func(*middleware.Stack) error) *ec2.Client {
	return ec2.NewFromConfig(f.s.AWSConfig(f.t), func(o *ec2.Options) {
		o.Region = region
		o.Retryer = mototest.TransportRetryer()
		o.APIOptions = append(o.APIOptions, opts...)
	})
}

// instance runs an instance through c, in az (the first of c's region), with a data
// volume at /dev/sdf, and returns its id and both volume ids (root first).
func (f *fleet) instance(c *ec2.Client, az string, tags map[string]string) (string, []string) {
	f.t.Helper()
	in := f.Through(c)
	if az != in.Region+"a" {
		f.t.Fatalf("test bug: instance in %s through a client of %s", az, in.Region)
	}
	run := in.Instances(f.ctx, 1, 1, tags)[0]
	return run.ID, run.Volumes()
}

func (f *fleet) tagResource(c *ec2.Client, id string, tags map[string]string) {
	f.t.Helper()
	f.Through(c).Tag(f.ctx, id, tags)
}

// snapshot creates a snapshot of vol that started age ago, with tags.
func (f *fleet) snapshot(vol string, age time.Duration, tags map[string]string) string {
	f.t.Helper()
	return f.Snapshot(f.ctx, vol, age, tags)
}

func (f *fleet) planner(cfg *config.Config, regions []string, clients map[string]*ec2.Client, q Sender, now time.Time) *Planner {
	return &Planner{
		Config:   cfg,
		Accounts: []string{mototest.Account},
		Regions:  regions,
		EC2: func(account, region string) EC2 {
			if c, ok := clients[region]; ok {
				return listingsChecked{c, f.t}
			}
			return listingsChecked{f.client(region), f.t}
		},
		Queue: q,
		Now:   now,
		RunID: "test-run",
		Log:   zerolog.New(zerolog.NewTestWriter(f.t)).Level(zerolog.WarnLevel),
	}
}

func sortedVolumes(js []job.Job) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.Volume)
	}
	sort.Strings(out)
	return out
}

func TestPlanFleetThroughMoto(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	cfg := mustConfig(t, `
policies:
  - name: daily
    select:
      exclude_tags: {"snapfleet:skip": "true"}
    retain: {max_age: 30d}
    tags: {Team: ops}
`)
	c := f.client(mototest.Region)
	var want []string
	devices := map[string]string{}
	names := map[string]string{} // instance → Name tag, for those that have one
	var stop []string
	for i := range 12 {
		var tags map[string]string
		switch {
		case i%6 == 2: // 2 instances excluded by tag
			tags = map[string]string{"snapfleet:skip": "true", "Name": fmt.Sprintf("web-%d", i)}
		case i%2 == 1:
			tags = map[string]string{"Name": fmt.Sprintf("app-%d", i)}
		}
		id, vols := f.instance(c, "us-east-1a", tags)
		names[id] = tags["Name"]
		switch {
		case i%6 == 2:
		case i%4 == 3: // 3 stopped instances
			stop = append(stop, id)
		case i == 4: // the second volume excluded by its own tag
			f.tagResource(c, vols[1], map[string]string{"snapfleet:skip": "true"})
			want = append(want, vols[0])
		case i == 6: // a tag with another value excludes nothing
			f.tagResource(c, vols[1], map[string]string{"snapfleet:skip": "false"})
			want = append(want, vols...)
		default:
			want = append(want, vols...)
		}
		devices[vols[1]] = "/dev/sdf"
	}
	if _, err := c.StopInstances(f.ctx, &ec2.StopInstancesInput{InstanceIds: stop}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	if len(want) < 10 {
		t.Fatalf("fleet too small: %d selected volumes", len(want))
	}

	now := time.Now().UTC()
	q := &recorder{}
	sum, err := f.planner(cfg, []string{mototest.Region}, nil, q, now).Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	creates, deletes := q.jobs(t)
	if got := sortedVolumes(creates); !slices.Equal(got, want) {
		t.Fatalf("create jobs for\n %v\nwant exactly one per selected volume\n %v", got, want)
	}
	if len(deletes) != 0 {
		t.Fatalf("unexpected deletes %+v", deletes)
	}
	period := now.Truncate(24 * time.Hour)
	for _, j := range creates {
		if j.Key != job.CreateKey(mototest.Account, mototest.Region, j.Volume, "daily", period) ||
			j.Policy != "daily" || j.Run != "test-run" || !j.PlannedAt.Equal(now) || !strings.HasPrefix(j.Instance, "i-") {
			t.Errorf("create job %+v", j)
		}
		if d, ok := devices[j.Volume]; ok && j.Device != d {
			t.Errorf("job %s: device %q, want %q", j.Key, j.Device, d)
		}
		if j.Name != names[j.Instance] {
			t.Errorf("job %s: name %q, want the Name tag %q of %s", j.Key, j.Name, names[j.Instance], j.Instance)
		}
	}
	if !slices.ContainsFunc(creates, func(j job.Job) bool { return j.Name != "" }) ||
		!slices.ContainsFunc(creates, func(j job.Job) bool { return j.Name == "" }) {
		t.Errorf("test bug: want create jobs of instances with and without a Name tag")
	}
	// Excluded instances are selected (and their volumes counted), stopped ones are not.
	wantSum := Summary{RunID: "test-run", Accounts: 1, Regions: 1, Instances: 9, Volumes: 18,
		SnapshotJobs: len(want), Enqueued: len(want), Failures: []Failure{}, Warnings: []string{},
		Scopes: []Scope{{Account: mototest.Account, Region: mototest.Region, Creates: len(want)}}}
	if !summaryEqual(sum, wantSum) {
		t.Fatalf("summary\n got %+v\nwant %+v", sum, wantSum)
	}

	// The workers run: one snapshot per job, tagged as DESIGN §4 says.
	for _, j := range creates {
		f.snapshot(j.Volume, 0, map[string]string{tag.Policy: j.Policy, tag.Volume: j.Volume, tag.Job: j.Key})
	}
	// A second plan in the same period enqueues nothing new.
	q2 := &recorder{}
	sum, err = f.planner(cfg, []string{mototest.Region}, nil, q2, now.Add(time.Minute)).Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(q2.msgs) != 0 || sum.SnapshotJobs != 0 || sum.SnapshotsSeen != len(want) {
		t.Fatalf("second plan: %d messages, summary %+v", len(q2.msgs), sum)
	}
	// The next period, every selected volume is due again; this time on the real
	// embedded queue.
	q3, err := queue.Open(f.ctx, "file:"+filepath.Join(t.TempDir(), "jobs.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q3.Close()
	sum, err = f.planner(cfg, []string{mototest.Region}, nil, q3, now.Add(24*time.Hour)).Plan(f.ctx)
	if err != nil || sum.Enqueued != len(want) || sum.Errors != 0 {
		t.Fatalf("next period: %+v, %v", sum, err)
	}
	var next []job.Job
	for {
		msgs, err := q3.Receive(f.ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			j, err := job.Decode(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			next = append(next, j)
		}
	}
	if got := sortedVolumes(next); !slices.Equal(got, want) {
		t.Fatalf("next period: queue holds creates for %v, want %v", got, want)
	}
}

func summaryEqual(a, b Summary) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestPlanPrunesThroughMoto(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	cfg := mustConfig(t, `
policies:
  - name: daily
    retain: {max_age: 30d, min_keep: 1}
`)
	c := f.client(mototest.Region)
	_, vols := f.instance(c, "us-east-1a", nil)
	a := vols[1]
	managed := func(vol string) map[string]string {
		return map[string]string{tag.Policy: "daily", tag.Volume: vol, "AutoBackup": "true"}
	}
	a50 := f.snapshot(a, 50*24*time.Hour, managed(a))
	a40 := f.snapshot(a, 40*24*time.Hour, managed(a))
	a10 := f.snapshot(a, 10*24*time.Hour, managed(a)) // inside retention
	unmanaged := f.snapshot(a, 60*24*time.Hour, map[string]string{"AutoBackup": "true"})
	renamed := f.snapshot(a, 60*24*time.Hour, map[string]string{tag.Policy: "nightly", tag.Volume: a})

	// A volume that is gone: its newest snapshot stays, the older expired one goes.
	b := f.Volume(f.ctx)
	b90 := f.snapshot(b, 90*24*time.Hour, managed(b))
	b80 := f.snapshot(b, 80*24*time.Hour, managed(b))
	if _, err := c.DeleteVolume(f.ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(b)}); err != nil {
		t.Fatal(err)
	}

	// moto lists other owners' snapshots (its default AMIs) whatever OwnerIds says; tag
	// one as managed: it must never become a delete.
	others := f.Foreign(f.ctx)
	if len(others) == 0 {
		t.Fatal("moto listed no snapshot of another owner; the owner re-check would be untested")
	}
	foreign := others[0]
	f.tagResource(c, foreign, map[string]string{tag.Policy: "daily"})

	now := time.Now().UTC()
	q := &recorder{}
	p := f.planner(cfg, []string{mototest.Region}, nil, q, now)
	sum, err := p.Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, deletes := q.jobs(t)
	var got []string
	for _, j := range deletes {
		got = append(got, j.Snapshot)
		if j.Key != job.DeleteKey(mototest.Account, mototest.Region, j.Snapshot) || j.Policy != "daily" {
			t.Errorf("delete job %+v", j)
		}
	}
	sort.Strings(got)
	want := []string{a50, a40, b90}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("deletes %v, want %v (kept: newest %s and %s, young %s, unmanaged %s, renamed %s, foreign %s)",
			got, want, a10, b80, a10, unmanaged, renamed, foreign)
	}
	if sum.SnapshotsSeen != 6 || sum.DeleteJobs != 3 || sum.Errors != 0 {
		t.Fatalf("summary %+v", sum)
	}
	// The renamed policy is a warning in the summary; the gone volume's two snapshots are
	// its account-region's orphans.
	if len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "policy nightly has 1 snapshots and is not in the config") {
		t.Errorf("warnings %q", sum.Warnings)
	}
	if sum.Orphans != 2 || len(sum.Scopes) != 1 || sum.Scopes[0].Orphans != 2 || sum.Scopes[0].Managed != 6 {
		t.Errorf("orphans %d, scopes %+v", sum.Orphans, sum.Scopes)
	}

	// The dry run lists the same decisions and sends nothing.
	p.DryRun, p.Queue = true, nil
	dry, err := p.Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, d := range dry.Decisions {
		if d.Snapshot != "" {
			reasons[d.Snapshot] = d.Action + " " + d.Reason
		}
	}
	wantReasons := map[string]string{
		a50: "delete expired", a40: "delete expired", a10: "keep newest",
		b90: "delete expired", b80: "keep newest", renamed: "keep unknown_policy",
	}
	if fmt.Sprint(reasons) != fmt.Sprint(wantReasons) {
		t.Fatalf("dry-run decisions %v, want %v", reasons, wantReasons)
	}
	if dry.Enqueued != 0 || dry.DeleteJobs != 3 || !dry.DryRun {
		t.Fatalf("dry run summary %+v", dry)
	}
	var text bytes.Buffer
	dry.WriteText(&text)
	for _, s := range []string{"delete jobs     3\n", "dry run", a50 + "  -  ", "expired", "unknown_policy"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text output lacks %q:\n%s", s, text.String())
		}
	}
}

// fault fails the named operations (all when ops is empty) with an AWS error code.
func fault(code string, ops ...string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("fault", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if len(ops) == 0 || slices.Contains(ops, middleware.GetOperationName(ctx)) {
				return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: code, Message: "injected"}
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
	}
}

func TestPlanFailuresThroughMoto(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	cfg := mustConfig(t, `
regions: [us-east-1, eu-west-1, us-west-2]
policies:
  - name: daily
    retain: {max_age: 30d}
`)
	east := f.client("us-east-1")
	_, eastVols := f.instance(east, "us-east-1a", nil)
	west := f.client("us-west-2")
	_, westVols := f.instance(west, "us-west-2a", nil)
	eu := f.client("eu-west-1")
	f.instance(eu, "eu-west-1a", nil)
	// us-west-2 has expired snapshots, but its snapshot listing fails: no deletes there.
	for _, age := range []time.Duration{50 * day, 40 * day} {
		f.Through(west).Snapshot(f.ctx, westVols[0], age, map[string]string{tag.Policy: "daily", tag.Volume: westVols[0]})
	}

	clients := map[string]*ec2.Client{
		"us-east-1": east,
		"eu-west-1": f.client("eu-west-1", fault("RequestLimitExceeded")),
		"us-west-2": f.client("us-west-2", fault("InternalError", "DescribeSnapshots")),
	}
	q := &recorder{}
	sum, err := f.planner(cfg, cfg.Regions, clients, q, time.Now()).Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	creates, deletes := q.jobs(t)
	wantVols := append(slices.Clone(eastVols), westVols...)
	sort.Strings(wantVols)
	if got := sortedVolumes(creates); !slices.Equal(got, wantVols) {
		t.Fatalf("creates for %v, want the volumes of the healthy regions %v", got, wantVols)
	}
	if len(deletes) != 0 {
		t.Fatalf("deletes %+v despite a failed snapshot listing", deletes)
	}
	var failed []string
	for _, fl := range sum.Failures {
		failed = append(failed, fl.Region+": "+fl.Error)
	}
	sort.Strings(failed)
	if sum.Errors != 3 || len(failed) != 3 ||
		!strings.Contains(failed[0], "eu-west-1: listing instances") || !strings.Contains(failed[0], "RequestLimitExceeded") ||
		!strings.Contains(failed[1], "eu-west-1: listing snapshots") ||
		!strings.Contains(failed[2], "us-west-2: listing snapshots") || !strings.Contains(failed[2], "InternalError") {
		t.Fatalf("failures %d:\n%s", sum.Errors, strings.Join(failed, "\n"))
	}
	if sum.Enqueued != 4 || sum.SnapshotJobs != 4 {
		t.Fatalf("summary %+v", sum)
	}

	// A queue that fails mid-way: what was sent is counted, the rest is a failure.
	sydney := f.client("ap-southeast-2")
	for range 6 {
		f.instance(sydney, "ap-southeast-2a", nil)
	}
	q = &recorder{fail: 2} // the first batch of 10 goes, the second fails
	sum, err = f.planner(cfg, []string{"ap-southeast-2"}, nil, q, time.Now()).Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.SnapshotJobs != 12 || sum.Enqueued != 10 || len(q.msgs) != 10 || sum.Errors != 1 ||
		!strings.Contains(sum.Failures[0].Error, "(10 of 12 sent): queue unavailable") {
		t.Fatalf("summary %+v", sum)
	}
}

// secondPageFails makes DescribeSnapshots paginate (moto does not): the first page comes
// from moto with a NextToken, a call for the next page fails. pages counts the calls.
func secondPageFails(pages *atomic.Int32) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("second-page", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if middleware.GetOperationName(ctx) != "DescribeSnapshots" {
				return next.HandleInitialize(ctx, in)
			}
			pages.Add(1) // the segments are listed at once
			if in.Parameters.(*ec2.DescribeSnapshotsInput).NextToken != nil {
				return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "InternalError", Message: "injected on page 2"}
			}
			out, md, err := next.HandleInitialize(ctx, in)
			if err == nil {
				out.Result.(*ec2.DescribeSnapshotsOutput).NextToken = aws.String("page-2")
			}
			return out, md, err
		}), middleware.Before)
	}
}

// TestPlanSecondPageFails: the snapshot listing's first page arrives (every snapshot,
// two of them expired) and the second fails. Even with Force, nothing is deleted in that
// scope, the breaker says incomplete_listing and the volumes' creates still go.
func TestPlanSecondPageFails(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	cfg := mustConfig(t, "policies:\n  - name: last1\n    retain: {keep_last: 1}\n")
	_, vols := f.instance(f.client(mototest.Region), "us-east-1a", nil)
	for _, age := range []time.Duration{day, 2 * day, 3 * day} {
		f.snapshot(vols[1], age, map[string]string{tag.Policy: "last1", tag.Volume: vols[1]})
	}
	var pages atomic.Int32
	clients := map[string]*ec2.Client{mototest.Region: f.client(mototest.Region, secondPageFails(&pages))}
	q := &recorder{}
	p := f.planner(cfg, []string{mototest.Region}, clients, q, time.Now())
	p.Force = true
	sum, err := p.Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The first page, then the id segments (segments.go), whose second pages fail.
	if pages.Load() != int32(1+2*len(idSegments)) {
		t.Fatalf("DescribeSnapshots called %d times, want the first page, then each segment's first and failing second", pages.Load())
	}
	creates, deletes := q.jobs(t)
	if len(deletes) != 0 || sum.DeleteJobs != 0 || sum.Held != 0 {
		t.Fatalf("deletes %v (summary %d, held %d) from a listing whose second page failed", deletes, sum.DeleteJobs, sum.Held)
	}
	if got := sortedVolumes(creates); !slices.Equal(got, sortedVolumes([]job.Job{{Volume: vols[0]}, {Volume: vols[1]}})) {
		t.Fatalf("creates for %v, want both volumes %v", got, vols)
	}
	if len(sum.Scopes) != 1 || sum.Scopes[0].Breaker == nil || sum.Scopes[0].Breaker.Reason != BreakerIncomplete {
		t.Fatalf("scopes %+v, want the breaker incomplete_listing", sum.Scopes)
	}
	if sum.Errors != 1 || !strings.Contains(sum.Failures[0].Error, "listing snapshots") || !strings.Contains(sum.Failures[0].Error, "injected on page 2") {
		t.Fatalf("failures %+v, want the listing's", sum.Failures)
	}
}

// noStartTime drops the StartTime of the named snapshot from DescribeSnapshots answers:
// moto always sends one.
func noStartTime(id *string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("no-start-time", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if d, ok := out.Result.(*ec2.DescribeSnapshotsOutput); ok && err == nil {
				for i := range d.Snapshots {
					if aws.ToString(d.Snapshots[i].SnapshotId) == *id {
						d.Snapshots[i].StartTime = nil
					}
				}
			}
			return out, md, err
		}), middleware.Before)
	}
}

// warnings returns the "decided" lines logged at warn level, as "snapshot reason".
func warnings(t *testing.T, log string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["level"] == "warn" && m["message"] == "decided" {
			if m["account"] != mototest.Account || m["region"] != mototest.Region || m["volume"] == "" {
				t.Errorf("warning without its account, region or volume: %s", line)
			}
			out = append(out, fmt.Sprint(m["snapshot"], " ", m["reason"]))
		}
	}
	sort.Strings(out)
	return out
}

// TestPlanOddTimesThroughMoto: a managed snapshot dated three days ahead (moto's clock
// shifted) is kept as future_time, is not its volume's newest (keep_last 1 keeps the
// newest dated one and expires the next), does not hold back today's create, and is
// logged at warn level; a snapshot
// without a StartTime (dropped by a middleware) is kept as unknown_time, logged, and
// blocks the deletes of its volume.
func TestPlanOddTimesThroughMoto(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	cfg := mustConfig(t, "policies:\n  - name: last1\n    retain: {keep_last: 1}\n")
	_, vols := f.instance(f.client(mototest.Region), "us-east-1a", nil)
	root, data := vols[0], vols[1]
	managed := func(vol string) map[string]string { return map[string]string{tag.Policy: "last1", tag.Volume: vol} }
	future := f.snapshot(data, -3*day, managed(data))
	newest := f.snapshot(data, day, managed(data))
	older := f.snapshot(data, 2*day, managed(data))
	undated := f.snapshot(root, day, managed(root))
	rootNewest := f.snapshot(root, 2*day, managed(root))
	blocked := f.snapshot(root, 3*day, managed(root)) // expired, but its volume has an undated snapshot

	var log bytes.Buffer // one scope: its goroutine logs, then Plan's after it ended
	clients := map[string]*ec2.Client{mototest.Region: f.client(mototest.Region, noStartTime(&undated))}
	q := &recorder{}
	p := f.planner(cfg, []string{mototest.Region}, clients, q, time.Now())
	p.Log = zerolog.New(&log).Level(zerolog.InfoLevel)
	sum, err := p.Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	creates, deletes := q.jobs(t)
	if len(deletes) != 1 || deletes[0].Snapshot != older || sum.Errors != 0 {
		t.Fatalf("deletes %+v (errors %d), want only %s: %s", deletes, sum.Errors, older, log.String())
	}
	// Neither volume has a snapshot of today: the future-dated one is not today's.
	if got := sortedVolumes(creates); !slices.Equal(got, sortedVolumes([]job.Job{{Volume: root}, {Volume: data}})) {
		t.Fatalf("creates for %v, want both volumes (%s and %s)", got, root, data)
	}
	want := []string{future + " " + retention.KeptFuture, undated + " " + retention.KeptUnknownTime}
	sort.Strings(want)
	if got := warnings(t, log.String()); !slices.Equal(got, want) {
		t.Fatalf("warnings %v, want %v", got, want)
	}

	p.DryRun, p.Queue, p.Log = true, nil, zerolog.Nop()
	dry, err := p.Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantDecisions := map[string]string{
		future: "keep " + retention.KeptFuture, newest: "keep " + retention.KeptNewest, older: "delete " + retention.Expired,
		undated: "keep " + retention.KeptUnknownTime, rootNewest: "keep " + retention.KeptNewest, blocked: "keep " + reason.FailClosed,
	}
	if got := detailed(dry.Decisions); fmt.Sprint(got) != fmt.Sprint(wantDecisions) {
		t.Fatalf("decisions %v, want %v", got, wantDecisions)
	}
}

func TestPlanUsage(t *testing.T) {
	t.Parallel()
	ec2For := func(string, string) EC2 { return nil }
	tests := []struct {
		name string
		p    Planner
	}{
		{"no config", Planner{Accounts: []string{acct}, Regions: []string{region}, EC2: ec2For, DryRun: true}},
		{"no account", Planner{Config: config.Default(), Regions: []string{region}, EC2: ec2For, DryRun: true}},
		{"no region", Planner{Config: config.Default(), Accounts: []string{acct}, EC2: ec2For, DryRun: true}},
		{"no queue", Planner{Config: config.Default(), Accounts: []string{acct}, Regions: []string{region}, EC2: ec2For}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tt.p.Plan(context.Background()); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestSnapshotFrom(t *testing.T) {
	t.Parallel()
	start := now.Add(-time.Hour)
	dupKey := job.CreateKey(acct, region, "vol-000000000000000a1", "daily", now.Truncate(24*time.Hour))
	base := func(tags map[string]string) types.Snapshot {
		return types.Snapshot{SnapshotId: aws.String("snap-000000000000000a1"), OwnerId: aws.String(acct),
			VolumeId: aws.String("vol-000000000000000a1"), StartTime: &start, State: types.SnapshotStateCompleted, Tags: testfleet.Tags(tags)}
	}
	tests := []struct {
		name string
		in   types.Snapshot
		want Snapshot
	}{
		{"tags read", base(map[string]string{tag.Policy: "daily", tag.Volume: "vol-000000000000000b1", tag.Job: "k", tag.Expires: "2026-12-01T00:00:00Z"}),
			Snapshot{Policy: "daily", Volume: "vol-000000000000000b1", Job: "k"}},
		{"made by a create of its key", func() types.Snapshot {
			s := base(map[string]string{tag.Policy: "daily", tag.Job: dupKey})
			s.Description = aws.String(job.CreateDescription("daily", dupKey, ""))
			return s
		}(), Snapshot{Policy: "daily", Volume: "vol-000000000000000a1", Job: dupKey, Set: "snap-000000000000000a1", Made: true}},
		{"carrying a key no create of it made", base(map[string]string{tag.Policy: "daily", tag.Job: dupKey}),
			Snapshot{Policy: "daily", Volume: "vol-000000000000000a1", Job: dupKey}},
		{"volume falls back to VolumeId", base(map[string]string{tag.Policy: "daily"}),
			Snapshot{Policy: "daily", Volume: "vol-000000000000000a1"}},
		{"bad volume tag", base(map[string]string{tag.Policy: "daily", tag.Volume: "my volume"}),
			Snapshot{Policy: "daily", Bad: tag.Volume}},
		{"bad expires tag", base(map[string]string{tag.Policy: "daily", tag.Expires: "tomorrow"}),
			Snapshot{Policy: "daily", Volume: "vol-000000000000000a1", Bad: tag.Expires}},
		{"bad policy tag", base(map[string]string{tag.Policy: "Daily Backup"}),
			Snapshot{Policy: "Daily Backup", Volume: "vol-000000000000000a1", Bad: tag.Policy}},
		{"AWS Backup", base(map[string]string{tag.Policy: "daily", "aws:backup:source-resource": "x"}),
			Snapshot{Policy: "daily", Volume: "vol-000000000000000a1", Protected: true}},
		{"DLM", base(map[string]string{tag.Policy: "daily", "aws:dlm:lifecycle-policy-id": "x"}),
			Snapshot{Policy: "daily", Volume: "vol-000000000000000a1", Protected: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := tt.want
			want.ID, want.Owner, want.Start, want.State = "snap-000000000000000a1", acct, start, "completed"
			if got := snapshotFrom(tt.in); got != want {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
	if got := snapshotFrom(types.Snapshot{SnapshotId: aws.String("snap-000000000000000a1")}); !got.Start.IsZero() {
		t.Fatalf("missing start time read as %v", got.Start)
	}
}
