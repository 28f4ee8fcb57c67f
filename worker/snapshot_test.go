package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// The SDK's client satisfies the worker's EC2 interface.
var _ EC2 = (*ec2.Client)(nil)

// faults counts the EC2 operations the worker calls and injects errors into them. It sits
// in the Initialize step, before the SDK's own retries, so every call the worker makes is
// seen exactly once.
type faults struct {
	mu    sync.Mutex
	calls map[string]int
	fail  func(op string, params any, n int) error
}

func (f *faults) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *faults) setFail(fn func(op string, params any, n int) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

func (f *faults) apply(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("snapfleetTestFaults",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetOperationName(ctx)
			checkUnfiltered(op, in.Parameters)
			f.mu.Lock()
			f.calls[op]++
			n, fail := f.calls[op], f.fail
			f.mu.Unlock()
			if fail != nil {
				if err := fail(op, in.Parameters, n); err != nil {
					return middleware.InitializeOutput{}, middleware.Metadata{}, err
				}
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "injected by the test"}
}

// motoServer is a moto_server shared by tests; clock serializes the creation of
// back-dated fixtures, since moto's clock is the server's.
type motoServer struct {
	s     *mototest.Server
	cfg   aws.Config
	setup *ec2.Client
	clock sync.Mutex
}

// shared is the package's moto_server, started by TestMain. Every test works on volumes
// and snapshots of its own, and counts calls on a client of its own, so tests share it
// safely; starting one per test costs more than the tests themselves on two cores.
var shared struct {
	s    *mototest.Server
	once sync.Once
	m    *motoServer
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.s != nil {
		shared.s.Stop()
	}
	os.Exit(failOnUnfiltered(code))
}

// startMoto returns the shared moto_server, starting it on first use.
func startMoto(t *testing.T) *motoServer {
	t.Helper()
	shared.once.Do(func() {
		s, err := mototest.StartServer()
		if err != nil {
			shared.err = err
			return
		}
		shared.s = s
		cfg := s.AWSConfig(t)
		shared.m = &motoServer{s: s, cfg: cfg, setup: ec2.NewFromConfig(cfg)}
	})
	if shared.m == nil {
		t.Fatalf("starting moto_server (python3 with moto[server] is required; run make test): %v", shared.err)
	}
	return shared.m
}

// motoEnv is a view of a moto_server for one test: a plain client for fixtures and a
// counted, faultable client of its own for the worker.
type motoEnv struct {
	*motoServer
	faults *faults
	worker *ec2.Client
}

// env returns a fresh view of m with its own fault injector and call counts.
func (m *motoServer) env() *motoEnv {
	f := &faults{calls: map[string]int{}}
	return &motoEnv{
		motoServer: m,
		faults:     f,
		worker:     ec2.NewFromConfig(m.cfg, func(o *ec2.Options) { o.APIOptions = append(o.APIOptions, f.apply) }),
	}
}

// newMoto returns a view of the shared moto_server for t.
func newMoto(t *testing.T) *motoEnv { return startMoto(t).env() }

// fleet builds in e's moto for t.
func (e *motoEnv) fleet(t *testing.T) *testfleet.Fleet { return testfleet.New(t, e.s) }

func (e *motoEnv) volume(t *testing.T) string {
	t.Helper()
	return e.fleet(t).Volume(context.Background())
}

// snap creates a snapshot of volume aged age with tags. moto's clock is the server's:
// back-dated fixtures are made one at a time.
func (e *motoEnv) snap(t *testing.T, volume string, age time.Duration, tags map[string]string) string {
	t.Helper()
	e.clock.Lock()
	defer e.clock.Unlock()
	return e.fleet(t).Snapshot(context.Background(), volume, age, tags)
}

// managed creates a snapshot as snapfleet would tag it, aged age.
func (e *motoEnv) managed(t *testing.T, volume, policy string, age time.Duration) string {
	return e.snap(t, volume, age, map[string]string{tag.Policy: policy, tag.Volume: volume})
}

func (e *motoEnv) exists(t *testing.T, id string) bool {
	t.Helper()
	_, err := e.setup.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err == nil {
		return true
	}
	if class, _ := cloud.Classify(err); class == cloud.NotFound {
		return false
	}
	t.Fatalf("reading snapshot %s: %v", id, err)
	return false
}

// byJob returns the snapshots carrying the job tag key.
func (e *motoEnv) byJob(t *testing.T, key string) []types.Snapshot {
	t.Helper()
	out, err := e.setup.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{
		Filters: []types.Filter{{Name: aws.String("tag:" + tag.Job), Values: []string{key}}},
	})
	if err != nil {
		t.Fatalf("listing snapshots by job: %v", err)
	}
	return out.Snapshots
}

// run puts bodies on a fake queue and runs a worker on moto until the queue drains (or
// limit passes).
func (e *motoEnv) run(t *testing.T, cfg *config.Config, now func() time.Time, limit time.Duration, bodies ...[]byte) (Stats, *fakeQueue, []string) {
	t.Helper()
	q := newFakeQueue()
	ids := q.add(0, bodies...)
	w := e.newWorker(q, cfg, now)
	return runFor(t, w, limit), q, ids
}

func (e *motoEnv) newWorker(q Queue, cfg *config.Config, now func() time.Time) *Worker {
	return &Worker{
		Queue:           q,
		Config:          cfg,
		EC2:             func(string, string) EC2 { return e.worker },
		KnownAccount:    knownAll,
		Now:             now,
		Concurrency:     2,
		ExitWhenDrained: true,
		drainPoll:       50 * time.Millisecond,
		ShutdownGrace:   time.Second,
		backoff:         &backoff{Base: 10 * time.Millisecond, Tries: 3, Cap: 100 * time.Millisecond, Budget: time.Second, SnoozeMin: 5 * time.Second},
	}
}

func policyConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse(strings.NewReader(yaml))
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	return c
}

// TestCreateOnce: a create job delivered twice, and delivered again later, makes one
// snapshot carrying every tag of DESIGN.md §4, named after the instance's Name tag the
// job carries.
func TestCreateOnce(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, `
policies:
  - name: daily
    every: 24h
    retain: {max_age: 30d}
    tags: {Team: ops, CostCenter: "42"}
`)
	vol := e.volume(t)
	clock := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	now := func() time.Time { return clock }
	j := createJob(vol, "daily", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	j.Name = "web-1"
	body := encode(t, j)

	// Two copies of the same message (a duplicated send), handled one after the other.
	q := newFakeQueue()
	q.add(0, body, body)
	w := e.newWorker(q, cfg, now)
	w.Concurrency = 1
	st := runFor(t, w, 10*time.Second)
	if want := (Stats{Processed: 2, Created: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	// A redelivery in a later run finds it too.
	st, _, _ = e.run(t, cfg, now, 10*time.Second, body)
	if want := (Stats{Processed: 1}); st != want {
		t.Errorf("redelivery stats = %+v, want %+v", st, want)
	}
	if n := e.faults.count("CreateSnapshot"); n != 1 {
		t.Errorf("CreateSnapshot called %d times, want 1", n)
	}

	snaps := e.byJob(t, j.Key)
	if len(snaps) != 1 {
		t.Fatalf("%d snapshots carry the job key, want 1", len(snaps))
	}
	got := map[string]string{}
	for _, tg := range snaps[0].Tags {
		got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	want := map[string]string{
		tag.Policy:     "daily",
		tag.Job:        j.Key,
		tag.Volume:     vol,
		tag.Instance:   j.Instance,
		tag.Device:     "/dev/xvda",
		tag.Expires:    "2026-12-22T01:02:03Z",
		tag.AutoBackup: "true",
		tag.Name:       "web-1 /dev/xvda 2026-11-22T01:02:03Z",
		"Team":         "ops",
		"CostCenter":   "42",
	}
	diffTags(t, want, got)
	if v := aws.ToString(snaps[0].VolumeId); v != vol {
		t.Errorf("snapshot of %s, want %s", v, vol)
	}
}

// TestCreateTagsWithoutMaxAge: a policy without max_age writes no expiry tag.
func TestCreateTagsWithoutMaxAge(t *testing.T) {
	t.Parallel()
	p := config.Policy{Name: "keep5", Retain: config.Retain{KeepLast: 5}}
	j := createJob("vol-0123456789abcdef0", "keep5", plannedAt)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := tagMap(createTags(j, p, now))
	want := map[string]string{
		tag.Policy: "keep5", tag.Job: j.Key, tag.Volume: j.Volume, tag.Instance: j.Instance, tag.Device: j.Device,
		tag.AutoBackup: "true", tag.Name: j.Instance + " /dev/xvda 2026-01-02T03:04:05Z",
	}
	diffTags(t, want, got)
	if _, ok := got[tag.Expires]; ok || len(got) != len(want) {
		t.Errorf("tags %v, want exactly %v (no %s)", got, want, tag.Expires)
	}
}

// TestSnapshotName: the Name tag is the instance's Name, else its id; then the device
// (none for an instance job's common tags) and the UTC time; never longer than a tag
// value may be.
func TestSnapshotName(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	long := strings.Repeat("é", maxTagValue)
	tests := []struct {
		name                  string
		jobName, inst, device string
		want                  string
	}{
		{"instance name", "web-1", "i-0123456789abcdef0", "/dev/xvda", "web-1 /dev/xvda 2026-01-02T02:04:05Z"},
		{"instance id", "", "i-0123456789abcdef0", "/dev/sdf", "i-0123456789abcdef0 /dev/sdf 2026-01-02T02:04:05Z"},
		{"instance job: no device", "", "i-0123456789abcdef0", "", "i-0123456789abcdef0 2026-01-02T02:04:05Z"},
		{"long name shortened", long, "i-0123456789abcdef0", "/dev/xvda",
			strings.Repeat("é", maxTagValue-len(" /dev/xvda 2026-01-02T02:04:05Z")) + " /dev/xvda 2026-01-02T02:04:05Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := createJob("vol-0123456789abcdef0", "daily", plannedAt)
			j.Name, j.Instance, j.Device = tt.jobName, tt.inst, tt.device
			got := tagMap(createTags(j, config.Policy{Name: "daily"}, at))[tag.Name]
			if got != tt.want {
				t.Errorf("Name = %q, want %q", got, tt.want)
			}
			if n := len([]rune(got)); n > maxTagValue {
				t.Errorf("Name has %d characters, over %d", n, maxTagValue)
			}
		})
	}
}

// TestVolumeGone: a create job whose volume no longer exists is skipped, not
// dead-lettered.
func TestVolumeGone(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	st, q, ids := e.run(t, config.Default(), nil, 10*time.Second,
		encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	if want := (Stats{Processed: 1, Skipped: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	left, deleted, dead, _ := q.state()
	if left != 0 || len(deleted) != 1 || deleted[0] != ids[0] || len(dead) != 0 {
		t.Errorf("left %d deleted %v dead %v; want the message deleted", left, deleted, dead)
	}
}

// TestDeleteExpired: an expired managed snapshot is deleted; the newest is refused; a
// repeated delete of the gone snapshot succeeds without a DeleteSnapshot call.
func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	old := e.managed(t, vol, "default", 40*24*time.Hour)
	newest := e.managed(t, vol, "default", 0)

	st, q, ids := e.run(t, config.Default(), time.Now, 10*time.Second,
		encode(t, deleteJob(old, "default")), encode(t, deleteJob(newest, "default")))
	if want := (Stats{Processed: 2, Deleted: 1, DeadLettered: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if e.exists(t, old) {
		t.Errorf("expired snapshot %s still exists", old)
	}
	if !e.exists(t, newest) {
		t.Errorf("newest snapshot %s was deleted", newest)
	}
	if got := q.deadReasons()[ids[1]]; got != reason.RefusedRetention {
		t.Errorf("delete of the newest: dead-letter reason %q, want %s", got, reason.RefusedRetention)
	}

	st, _, _ = e.run(t, config.Default(), time.Now, 10*time.Second, encode(t, deleteJob(old, "default")))
	if want := (Stats{Processed: 1}); st != want {
		t.Errorf("repeated delete stats = %+v, want %+v", st, want)
	}
	if n := e.faults.count("DeleteSnapshot"); n != 1 {
		t.Errorf("DeleteSnapshot called %d times, want 1", n)
	}
}

// TestDeleteFallsBackToVolumeID: a managed snapshot without the snapfleet:volume tag is
// grouped by its VolumeId; the floor still holds.
func TestDeleteFallsBackToVolumeID(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	old := e.snap(t, vol, 50*24*time.Hour, map[string]string{tag.Policy: "default"})
	older := e.snap(t, vol, 60*24*time.Hour, map[string]string{tag.Policy: "default"})
	newest := e.snap(t, vol, 40*24*time.Hour, map[string]string{tag.Policy: "default"})
	st, q, ids := e.run(t, config.Default(), time.Now, 10*time.Second,
		encode(t, deleteJob(old, "default")), encode(t, deleteJob(newest, "default")))
	if want := (Stats{Processed: 2, Deleted: 1, DeadLettered: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if e.exists(t, old) || !e.exists(t, newest) || !e.exists(t, older) {
		t.Errorf("exists: old %v newest %v older %v; want only old deleted", e.exists(t, old), e.exists(t, newest), e.exists(t, older))
	}
	if got := q.deadReasons()[ids[1]]; got != reason.RefusedRetention {
		t.Errorf("delete of the newest: reason %q, want %s", got, reason.RefusedRetention)
	}
}

// TestDeleteRefused: forged and stale deletes are refused with a reason, and no
// DeleteSnapshot call is made (DESIGN.md §6.1–6.3, 6.7).
func TestDeleteRefused(t *testing.T) {
	t.Parallel()
	cfg := policyConfig(t, `
policies:
  - name: default
    retain: {max_age: 30d}
  - name: weekly
    every: 7d
    retain: {max_age: 30d, min_keep: 3}
`)
	tests := []struct {
		name   string
		policy string
		// fixture returns the snapshot the forged job names.
		fixture func(t *testing.T, e *motoEnv, vol string) string
		reason  string
		skipped bool
	}{
		{"unmanaged", "default", func(t *testing.T, e *motoEnv, vol string) string {
			e.managed(t, vol, "default", 0)
			return e.snap(t, vol, 40*24*time.Hour, map[string]string{"Name": "hand-made"})
		}, reason.RefusedUnmanaged, false},
		{"inside max_age", "default", func(t *testing.T, e *motoEnv, vol string) string {
			id := e.managed(t, vol, "default", 10*24*time.Hour)
			e.managed(t, vol, "default", 0)
			return id
		}, reason.RefusedRetention, false},
		{"newest, however old", "default", func(t *testing.T, e *motoEnv, vol string) string {
			e.managed(t, vol, "default", 90*24*time.Hour)
			return e.managed(t, vol, "default", 60*24*time.Hour)
		}, reason.RefusedRetention, false},
		{"within min_keep", "weekly", func(t *testing.T, e *motoEnv, vol string) string {
			e.managed(t, vol, "weekly", 40*24*time.Hour)
			id := e.managed(t, vol, "weekly", 50*24*time.Hour)
			e.managed(t, vol, "weekly", 60*24*time.Hour) // third: outside the floor, but not named
			return id
		}, reason.RefusedRetention, false},
		{"other policy's snapshot", "weekly", func(t *testing.T, e *motoEnv, vol string) string {
			e.managed(t, vol, "default", 0)
			return e.managed(t, vol, "default", 40*24*time.Hour)
		}, reason.RefusedPolicyMismatch, false},
		{"policy not in config", "default", func(t *testing.T, e *motoEnv, vol string) string {
			e.managed(t, vol, "retired", 0)
			return e.managed(t, vol, "retired", 40*24*time.Hour)
		}, reason.UnknownPolicy, false},
		{"foreign owner", "default", func(t *testing.T, e *motoEnv, _ string) string {
			// moto lists default-AMI snapshots of other owners to every caller.
			out, err := e.setup.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{})
			if err != nil {
				t.Fatalf("listing moto's snapshots: %v", err)
			}
			for _, s := range out.Snapshots {
				if aws.ToString(s.OwnerId) != testAccount {
					return aws.ToString(s.SnapshotId)
				}
			}
			t.Fatal("moto lists no snapshot of another owner; the foreign case needs one")
			return ""
		}, reason.RefusedForeign, false},
	}
	m := startMoto(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := m.env()
			vol := e.volume(t)
			id := tt.fixture(t, e, vol)
			st, q, ids := e.run(t, cfg, time.Now, 10*time.Second, encode(t, deleteJob(id, tt.policy)))
			if n := e.faults.count("DeleteSnapshot"); n != 0 {
				t.Errorf("DeleteSnapshot called %d times, want none", n)
			}
			if !e.exists(t, id) {
				t.Errorf("snapshot %s is gone", id)
			}
			if want := (Stats{Processed: 1, DeadLettered: 1}); st != want {
				t.Errorf("stats = %+v, want %+v", st, want)
			}
			if got := q.deadReasons()[ids[0]]; got != tt.reason {
				t.Errorf("dead-letter reason %q, want %q", got, tt.reason)
			}
		})
	}
}

// TestDeleteFailsClosed: a failed listing of the volume's snapshots never leads to a
// delete; the job is retried.
func TestDeleteFailsClosed(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	old := e.managed(t, vol, "default", 40*24*time.Hour)
	e.managed(t, vol, "default", 0)
	e.faults.setFail(func(op string, params any, _ int) error {
		if in, ok := params.(*ec2.DescribeSnapshotsInput); ok && len(in.Filters) > 0 {
			return apiError("InternalError")
		}
		return nil
	})
	q := newFakeQueue()
	q.add(0, encode(t, deleteJob(old, "default")))
	w := e.newWorker(q, config.Default(), time.Now)
	// The retried message stays hidden ≥ 5 s: stop the worker before it comes back.
	w.ExitWhenDrained = false
	st := runFor(t, w, 3*time.Second)
	if want := (Stats{Processed: 1, Retried: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if n := e.faults.count("DeleteSnapshot"); n != 0 || !e.exists(t, old) {
		t.Errorf("DeleteSnapshot called %d times after a failed listing", n)
	}
}

// TestDeleteProtected: snapshots of AWS Backup or DLM, and snapshots in use by an AMI, are
// skipped with a reason, not retried (DESIGN.md §6.7).
func TestDeleteProtected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(t *testing.T, e *motoEnv, id string)
		deletes int
		reason  string
	}{
		{"in use by an AMI", func(t *testing.T, e *motoEnv, id string) {
			// moto does not refuse deleting a snapshot behind an AMI: inject the code AWS
			// returns.
			e.faults.setFail(func(op string, _ any, _ int) error {
				if op == "DeleteSnapshot" {
					return apiError("InvalidSnapshot.InUse")
				}
				return nil
			})
		}, 1, reason.InUse},
		{"DLM", func(t *testing.T, e *motoEnv, id string) {
			e.tagAWS(t, id, "aws:dlm:lifecycle-policy-id")
		}, 0, reason.Protected},
		{"AWS Backup", func(t *testing.T, e *motoEnv, id string) {
			e.tagAWS(t, id, "aws:backup:source-resource")
		}, 0, reason.Protected},
	}
	m := startMoto(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := m.env()
			vol := e.volume(t)
			id := e.managed(t, vol, "default", 40*24*time.Hour)
			e.managed(t, vol, "default", 0)
			tt.setup(t, e, id)
			st, q, ids := e.run(t, config.Default(), time.Now, 10*time.Second, encode(t, deleteJob(id, "default")))
			if want := (Stats{Processed: 1, Skipped: 1}); st != want {
				t.Errorf("stats = %+v, want %+v", st, want)
			}
			_, deleted, dead, _ := q.state()
			if len(deleted) != 1 || deleted[0] != ids[0] || len(dead) != 0 {
				t.Errorf("deleted %v dead %v; want the message deleted", deleted, dead)
			}
			if n := e.faults.count("DeleteSnapshot"); n != tt.deletes {
				t.Errorf("DeleteSnapshot called %d times, want %d", n, tt.deletes)
			}
			if !e.exists(t, id) {
				t.Errorf("snapshot %s is gone", id)
			}
		})
	}
}

// tagAWS puts an aws:-prefixed tag on snapshot id. moto accepts it through CreateTags.
func (e *motoEnv) tagAWS(t *testing.T, id, key string) {
	t.Helper()
	e.fleet(t).Tag(context.Background(), id, map[string]string{key: "x"})
}

// TestThrottling: throttled calls back off in-process, then the message is snoozed on the
// queue for at least the code's minimum wait — never dead-lettered, whatever its receive
// count. Throttling half of the calls still gets the job done.
func TestThrottling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// fail throttles the n-th call of op, or not.
		fail     func(op string, n int) error
		done     bool
		minSnooz time.Duration
		// creates is how many CreateSnapshot calls are expected.
		creates int
	}{
		{"every call", func(string, int) error { return apiError("RequestLimitExceeded") },
			false, 5 * time.Second, 0},
		{"per-volume create rate", func(op string, _ int) error {
			if op == "CreateSnapshot" {
				return apiError("SnapshotCreationPerVolumeRateExceeded")
			}
			return nil
		}, false, 15 * time.Second, 1},
		{"concurrent snapshot limit", func(op string, _ int) error {
			if op == "CreateSnapshot" {
				return apiError("ConcurrentSnapshotLimitExceeded")
			}
			return nil
		}, false, 30 * time.Second, 1},
		{"half the calls", func(_ string, n int) error {
			if n%2 == 1 {
				return apiError("RequestLimitExceeded")
			}
			return nil
		}, true, 0, 2},
	}
	m := startMoto(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := m.env()
			vol := e.volume(t)
			e.faults.setFail(func(op string, _ any, n int) error { return tt.fail(op, n) })
			j := createJob(vol, "default", plannedAt)
			q := newFakeQueue()
			ids := q.add(500, encode(t, j)) // received 500 times already
			w := e.newWorker(q, config.Default(), time.Now)
			w.ExitWhenDrained = false // a snoozed message stays delayed ≥ 5 s: stop before it returns
			st := runFor(t, w, 3*time.Second)
			_, deleted, dead, vis := q.state()
			if len(dead) != 0 || st.DeadLettered != 0 {
				t.Fatalf("dead-lettered on throttling: %+v", dead)
			}
			if n := e.faults.count("CreateSnapshot"); n != tt.creates {
				t.Errorf("CreateSnapshot called %d times, want %d", n, tt.creates)
			}
			if tt.done {
				if want := (Stats{Processed: 1, Created: 1}); st != want || len(deleted) != 1 {
					t.Errorf("stats = %+v deleted %v, want %+v", st, deleted, want)
				}
				if n := len(e.byJob(t, j.Key)); n != 1 {
					t.Errorf("%d snapshots, want 1", n)
				}
				return
			}
			if want := (Stats{Processed: 1, Retried: 1}); st != want {
				t.Errorf("stats = %+v, want %+v", st, want)
			}
			if len(vis) != 1 || vis[0].id != ids[0] || vis[0].d < tt.minSnooz {
				t.Errorf("visibility calls %+v, want %s hidden at least %s", vis, ids[0], tt.minSnooz)
			}
			if n := len(e.byJob(t, j.Key)); n != 0 {
				t.Errorf("%d snapshots, want none", n)
			}
		})
	}
}

// TestThrottledRetriesInProcess: a short throttle is absorbed by go-retry without
// touching the queue.
func TestThrottledRetriesInProcess(t *testing.T) {
	t.Parallel()
	s := &snapshots{
		backoff: backoff{Base: time.Millisecond, Tries: 3, Cap: 10 * time.Millisecond, Budget: time.Second, SnoozeMin: 5 * time.Second},
	}
	tests := []struct {
		name      string
		errs      []error
		wantCalls int
		snooze    time.Duration
		class     cloud.Class
	}{
		{"recovers", []error{apiError("RequestLimitExceeded"), apiError("Throttling"), nil}, 3, 0, cloud.Unknown},
		{"gives up into a snooze", []error{apiError("RequestLimitExceeded"), apiError("RequestLimitExceeded"), apiError("RequestLimitExceeded"), apiError("RequestLimitExceeded"), nil}, 4, 5 * time.Second, cloud.Throttled},
		{"long minimum wait: snooze at once", []error{apiError("PendingSnapshotLimitExceeded"), nil}, 1, 30 * time.Second, cloud.Throttled},
		{"not throttling: no retry", []error{apiError("UnauthorizedOperation"), nil}, 1, 0, cloud.Denied},
	}
	for _, tt := range tests {
		n := 0
		err := s.call(context.Background(), func(context.Context) error {
			n++
			return tt.errs[n-1]
		})
		if n != tt.wantCalls {
			t.Errorf("%s: %d calls, want %d", tt.name, n, tt.wantCalls)
		}
		var sn *SnoozeError
		if got := errors.As(err, &sn); got != (tt.snooze > 0) {
			t.Errorf("%s: snoozed = %v (%v), want %v", tt.name, got, err, tt.snooze > 0)
		} else if got && (sn.Delay < tt.snooze || sn.Delay > tt.snooze*3/2+time.Millisecond) {
			t.Errorf("%s: snooze %s, want in [%s, %s]", tt.name, sn.Delay, tt.snooze, tt.snooze*3/2)
		}
		if class, _ := cloud.Classify(err); class != tt.class {
			t.Errorf("%s: error %v classified %s, want %s", tt.name, err, class, tt.class)
		}
	}
}

// TestAccessDenied: a denied call is a permanent failure with reason access_denied.
func TestAccessDenied(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	e.faults.setFail(func(op string, _ any, _ int) error {
		if op == "CreateSnapshot" {
			return apiError("UnauthorizedOperation")
		}
		return nil
	})
	st, q, ids := e.run(t, config.Default(), nil, 10*time.Second, encode(t, createJob(vol, "default", plannedAt)))
	if want := (Stats{Processed: 1, DeadLettered: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if got := q.deadReasons()[ids[0]]; got != reason.AccessDenied {
		t.Errorf("reason %q, want %s", got, reason.AccessDenied)
	}
}

// TestMixedBatch runs creates and deletes of several volumes concurrently through one
// worker and checks the fleet's end state.
func TestMixedBatch(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	var bodies [][]byte
	var expired, kept []string
	var keys []string
	for range 4 {
		vol := e.volume(t)
		expired = append(expired, e.managed(t, vol, "default", 45*24*time.Hour))
		kept = append(kept, e.managed(t, vol, "default", 35*24*time.Hour))
		j := createJob(vol, "default", plannedAt)
		keys = append(keys, j.Key)
		bodies = append(bodies, encode(t, j), encode(t, deleteJob(expired[len(expired)-1], "default")))
	}
	q := newFakeQueue()
	q.add(0, bodies...)
	w := e.newWorker(q, config.Default(), time.Now)
	w.Concurrency = 4
	st := runFor(t, w, 20*time.Second)
	if want := (Stats{Processed: 8, Created: 4, Deleted: 4}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	for i := range expired {
		if e.exists(t, expired[i]) || !e.exists(t, kept[i]) {
			t.Errorf("volume %d: expired exists %v, kept exists %v", i, e.exists(t, expired[i]), e.exists(t, kept[i]))
		}
		if n := len(e.byJob(t, keys[i])); n != 1 {
			t.Errorf("volume %d: %d snapshots of the create job, want 1", i, n)
		}
	}
}

// diffTags reports every tag that differs between want and got.
func diffTags(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("tag %s = %q (present %v), want %q", k, g, ok, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected tag %s = %q", k, v)
		}
	}
}

func fakeSnap(id, owner string, age time.Duration, tags map[string]string) types.Snapshot {
	s := types.Snapshot{
		SnapshotId: aws.String(id), OwnerId: aws.String(owner),
		VolumeId: aws.String("vol-0000000000000000a"), State: types.SnapshotStateCompleted,
	}
	if age >= 0 {
		s.StartTime = aws.Time(time.Now().Add(-age))
	}
	for k, v := range tags {
		s.Tags = append(s.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return s
}

// TestChecksHoldWithoutFilters: ownership, the job key, the policy and the volume group
// are checked in code, not left to the API's filters (DESIGN.md §6.1, §6.5).
func TestChecksHoldWithoutFilters(t *testing.T) {
	t.Parallel()
	const (
		vol     = "vol-0000000000000000a"
		foreign = "999999999999"
		day     = 24 * time.Hour
	)
	managed := func(volume string) map[string]string {
		return map[string]string{tag.Policy: "default", tag.Volume: volume}
	}
	create := createJob(vol, "default", plannedAt)
	tests := []struct {
		name    string
		snaps   []types.Snapshot
		hide    string
		j       job.Job
		stats   Stats
		creates int
		deletes int
		reason  string
	}{
		{name: "foreign snapshot with the job key does not count as done",
			snaps: []types.Snapshot{
				fakeSnap("snap-000000000000000f1", foreign, 0, map[string]string{tag.Job: create.Key}),
				fakeSnap("snap-00000000000000001", testAccount, 0, map[string]string{tag.Job: "another-key"}),
			},
			j: create, stats: Stats{Processed: 1, Created: 1}, creates: 1},
		{name: "own snapshot with the job key is done",
			snaps: []types.Snapshot{fakeSnap("snap-00000000000000001", testAccount, 0, map[string]string{tag.Job: create.Key})},
			j:     create, stats: Stats{Processed: 1}},
		{name: "failed snapshot with the job key is made again",
			snaps: []types.Snapshot{func() types.Snapshot {
				s := fakeSnap("snap-00000000000000001", testAccount, 0, map[string]string{tag.Job: create.Key})
				s.State = types.SnapshotStateError
				return s
			}()},
			j: create, stats: Stats{Processed: 1, Created: 1}, creates: 1},
		{name: "a foreign newer snapshot does not push ours below the floor",
			snaps: []types.Snapshot{
				fakeSnap("snap-00000000000000001", testAccount, 40*day, managed(vol)),
				fakeSnap("snap-000000000000000f1", foreign, 0, managed(vol)),
			},
			j: deleteJob("snap-00000000000000001", "default"), stats: Stats{Processed: 1, DeadLettered: 1}, reason: reason.RefusedRetention},
		{name: "another volume's newer snapshot does not count",
			snaps: []types.Snapshot{
				fakeSnap("snap-00000000000000001", testAccount, 40*day, managed(vol)),
				fakeSnap("snap-00000000000000002", testAccount, 0, managed("vol-0000000000000000b")),
			},
			j: deleteJob("snap-00000000000000001", "default"), stats: Stats{Processed: 1, DeadLettered: 1}, reason: reason.RefusedRetention},
		{name: "another policy's newer snapshot does not count",
			snaps: []types.Snapshot{
				fakeSnap("snap-00000000000000001", testAccount, 40*day, managed(vol)),
				fakeSnap("snap-00000000000000002", testAccount, 0, map[string]string{tag.Policy: "weekly", tag.Volume: vol}),
			},
			j: deleteJob("snap-00000000000000001", "default"), stats: Stats{Processed: 1, DeadLettered: 1}, reason: reason.RefusedRetention},
		{name: "a failed newer snapshot does not count",
			snaps: []types.Snapshot{
				fakeSnap("snap-00000000000000001", testAccount, 40*day, managed(vol)),
				func() types.Snapshot {
					s := fakeSnap("snap-00000000000000002", testAccount, 0, managed(vol))
					s.State = types.SnapshotStateError
					return s
				}(),
			},
			j: deleteJob("snap-00000000000000001", "default"), stats: Stats{Processed: 1, DeadLettered: 1}, reason: reason.RefusedRetention},
		{name: "a pending newer snapshot does not count (it may still fail)",
			snaps: []types.Snapshot{
				fakeSnap("snap-00000000000000001", testAccount, 40*day, managed(vol)),
				func() types.Snapshot {
					s := fakeSnap("snap-00000000000000002", testAccount, 0, managed(vol))
					s.State = types.SnapshotStatePending
					return s
				}(),
			},
			j: deleteJob("snap-00000000000000001", "default"), stats: Stats{Processed: 1, DeadLettered: 1}, reason: reason.RefusedRetention},
		{name: "a newer snapshot managed by AWS Backup does not count",
			snaps: []types.Snapshot{
				fakeSnap("snap-00000000000000001", testAccount, 40*day, managed(vol)),
				fakeSnap("snap-00000000000000002", testAccount, 0, map[string]string{tag.Policy: "default", tag.Volume: vol, "aws:backup:source-resource": vol}),
			},
			j: deleteJob("snap-00000000000000001", "default"), stats: Stats{Processed: 1, DeadLettered: 1}, reason: reason.RefusedRetention},
		{name: "no start time: never deleted",
			snaps: []types.Snapshot{
				fakeSnap("snap-00000000000000001", testAccount, -1, managed(vol)),
				fakeSnap("snap-00000000000000002", testAccount, 0, managed(vol)),
			},
			j: deleteJob("snap-00000000000000001", "default"), stats: Stats{Processed: 1, DeadLettered: 1}, reason: reason.RefusedRetention},
		{name: "target missing from the listing: retried, not deleted",
			snaps: []types.Snapshot{
				fakeSnap("snap-00000000000000001", testAccount, 40*day, managed(vol)),
				fakeSnap("snap-00000000000000002", testAccount, 0, managed(vol)),
			},
			hide: "snap-00000000000000001",
			j:    deleteJob("snap-00000000000000001", "default"), stats: Stats{Processed: 1, Retried: 1}},
		{name: "expired among its own group: deleted",
			snaps: []types.Snapshot{
				fakeSnap("snap-00000000000000001", testAccount, 40*day, managed(vol)),
				fakeSnap("snap-00000000000000002", testAccount, 0, managed(vol)),
				fakeSnap("snap-000000000000000f1", foreign, 0, managed(vol)),
			},
			j: deleteJob("snap-00000000000000001", "default"), stats: Stats{Processed: 1, Deleted: 1}, deletes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeEC2{snaps: tt.snaps, hide: tt.hide}
			q := newFakeQueue()
			ids := q.add(0, encode(t, tt.j))
			w := &Worker{
				Queue: q, Config: config.Default(), KnownAccount: knownAll,
				EC2:      func(string, string) EC2 { return f },
				IdleExit: 100 * time.Millisecond,
			}
			st := runFor(t, w, 5*time.Second)
			if st != tt.stats {
				t.Errorf("stats = %+v, want %+v", st, tt.stats)
			}
			if f.creates != tt.creates || f.deletes != tt.deletes {
				t.Errorf("CreateSnapshot %d DeleteSnapshot %d calls, want %d and %d", f.creates, f.deletes, tt.creates, tt.deletes)
			}
			if got := q.deadReasons()[ids[0]]; got != tt.reason {
				t.Errorf("dead-letter reason %q, want %q", got, tt.reason)
			}
		})
	}
}

// TestEmbeddedQueue runs the worker on the real embedded queue backend and moto: a create,
// its duplicate, a forged delete and an invalid message; Run drains the queue and exits.
func TestEmbeddedQueue(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	unmanaged := e.snap(t, vol, 40*24*time.Hour, nil)
	ctx := context.Background()
	q, err := queue.Open(ctx, "file:"+filepath.Join(t.TempDir(), "jobs.db"), queue.Options{})
	if err != nil {
		t.Fatalf("opening the embedded queue: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	create := createJob(vol, "default", plannedAt)
	var out []queue.Outgoing
	for _, b := range [][]byte{encode(t, create), encode(t, create), encode(t, deleteJob(unmanaged, "default")), []byte(`{"v":1}`)} {
		out = append(out, queue.Outgoing{Body: b})
	}
	if err := q.Send(ctx, out); err != nil {
		t.Fatalf("sending jobs: %v", err)
	}
	w := e.newWorker(q, config.Default(), time.Now)
	w.Concurrency = 1
	st := runFor(t, w, 20*time.Second)
	if want := (Stats{Processed: 4, Created: 1, DeadLettered: 2}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if n := len(e.byJob(t, create.Key)); n != 1 {
		t.Errorf("%d snapshots of the create job, want 1", n)
	}
	if !e.exists(t, unmanaged) || e.faults.count("DeleteSnapshot") != 0 {
		t.Errorf("unmanaged snapshot touched")
	}
	dlq, err := q.DLQ(ctx)
	if err != nil {
		t.Fatalf("opening the DLQ: %v", err)
	}
	msgs, err := dlq.Receive(ctx, 10, time.Second)
	if err != nil {
		t.Fatalf("reading the DLQ: %v", err)
	}
	reasons := map[string]bool{}
	for _, m := range msgs {
		reasons[m.Reason] = true
	}
	if len(msgs) != 2 || !reasons[reason.RefusedUnmanaged] || !reasons[reason.InvalidMessage] {
		t.Errorf("DLQ holds %d messages with reasons %v, want refused_unmanaged and invalid_message", len(msgs), reasons)
	}
}

// TestCreateDuplicatesInOneBatch: copies of one create job handled at the same time by one
// worker make one snapshot (the jobs of a key are serialised in the process).
func TestCreateDuplicatesInOneBatch(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, "policies:\n  - name: daily\n    retain: {max_age: 30d}\n")
	vol := e.volume(t)
	clock := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	j := createJob(vol, "daily", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	body := encode(t, j)
	q := newFakeQueue()
	q.add(0, body, body, body, body)
	w := e.newWorker(q, cfg, func() time.Time { return clock })
	w.Concurrency = 4
	st := runFor(t, w, 10*time.Second)
	if st.Created != 1 || st.Processed != 4 {
		t.Errorf("stats %+v, want 4 processed and 1 created", st)
	}
	if n := len(e.byJob(t, j.Key)); n != 1 {
		t.Errorf("%d snapshots carry the job key, want 1", n)
	}
	if n := e.faults.count("CreateSnapshot"); n != 1 {
		t.Errorf("%d CreateSnapshot calls, want 1", n)
	}
}

// TestCreateRaceSettles: another worker creates the job's snapshot between this worker's
// look and its CreateSnapshot. This worker sees two afterwards and keeps the one with the
// smaller id (job.Keeper), whoever made it: one snapshot is left, and the job is reported
// as created only when the one left is this worker's.
func TestCreateRaceSettles(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, "policies:\n  - name: daily\n    retain: {max_age: 30d}\n")
	vol := e.volume(t)
	clock := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	j := createJob(vol, "daily", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	var other string
	e.faults.setFail(func(op string, _ any, n int) error {
		if op == "CreateSnapshot" && n == 1 {
			other = e.made(t, j)
		}
		return nil
	})
	st, _, _ := e.run(t, cfg, func() time.Time { return clock }, 10*time.Second, encode(t, j))
	left := e.byJob(t, j.Key)
	if len(left) != 1 {
		t.Fatalf("%d snapshots carry the key, want 1", len(left))
	}
	mine := aws.ToString(left[0].SnapshotId) != other
	if mine && aws.ToString(left[0].SnapshotId) > other || !mine && st.Created != 0 || mine && st.Created != 1 {
		t.Errorf("left %s (this worker's: %v, the other's %s), stats %+v: want the smaller id kept, created only if it is this worker's", aws.ToString(left[0].SnapshotId), mine, other, st)
	}
	if st.Processed != 1 || st.DeadLettered != 0 {
		t.Errorf("stats %+v, want the job processed", st)
	}
	if n := e.faults.count("DeleteSnapshot"); n != 1 {
		t.Errorf("%d DeleteSnapshot calls, want 1 (the duplicate)", n)
	}
}

// made creates a snapshot of j's volume as another worker's create of j would.
func (e *motoEnv) made(t *testing.T, j job.Job) string {
	t.Helper()
	out, err := e.setup.CreateSnapshot(context.Background(), &ec2.CreateSnapshotInput{
		VolumeId:    aws.String(j.Volume),
		Description: aws.String(job.CreateDescription(j.Policy, j.Key, "")),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{
			{Key: aws.String(tag.Policy), Value: aws.String(j.Policy)},
			{Key: aws.String(tag.Volume), Value: aws.String(j.Volume)},
			{Key: aws.String(tag.Job), Value: aws.String(j.Key)},
		}}},
	})
	if err != nil {
		t.Fatalf("creating the other worker's snapshot: %v", err)
	}
	return aws.ToString(out.SnapshotId)
}

// TestDeleteListsOnce: a delete job naming its volume (as the planner's do) re-reads the
// snapshot from the volume's listing: three Describe calls (the listing, the shares, the
// locks) instead of four, the Describe bucket being shared with every other job. A job
// naming another volume than the snapshot's falls back to the read by id, and the
// snapshot's own volume decides: the newest of its volume is refused.
func TestDeleteListsOnce(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol, other := e.volume(t), e.volume(t)
	old := e.managed(t, vol, "default", 40*24*time.Hour)
	e.managed(t, vol, "default", 0)
	lone := e.managed(t, other, "default", 40*24*time.Hour)

	withVolume := func(snapshot, volume string) job.Job {
		j := deleteJob(snapshot, "default")
		j.Volume = volume
		return j
	}
	st, q, ids := e.run(t, config.Default(), time.Now, 10*time.Second, encode(t, withVolume(old, vol)))
	if want := (Stats{Processed: 1, Deleted: 1}); st != want || e.exists(t, old) {
		t.Fatalf("stats = %+v, want %+v and %s gone", st, want, old)
	}
	describes := 0
	for _, op := range []string{"DescribeSnapshots", "DescribeSnapshotAttribute", "DescribeLockedSnapshots", "DescribeVolumes", "DescribeImages", "DescribeInstances"} {
		describes += e.faults.count(op)
	}
	if describes != 3 || e.faults.count("DescribeSnapshots") != 1 {
		t.Errorf("%d Describe calls (%d DescribeSnapshots), want 3 (1)", describes, e.faults.count("DescribeSnapshots"))
	}

	st, q, ids = e.run(t, config.Default(), time.Now, 10*time.Second, encode(t, withVolume(lone, vol)))
	if want := (Stats{Processed: 1, DeadLettered: 1}); st != want || !e.exists(t, lone) {
		t.Errorf("forged volume: stats = %+v, want %+v and %s kept", st, want, lone)
	}
	if got := q.deadReasons()[ids[0]]; got != reason.RefusedRetention {
		t.Errorf("forged volume: reason %q, want %s", got, reason.RefusedRetention)
	}
}
