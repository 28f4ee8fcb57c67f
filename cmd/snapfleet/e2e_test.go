package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/queue"
)

// binary is the snapfleet built once for the end-to-end tests, run as a real process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "snapfleet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "snapfleet")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building snapfleet: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testConfig = `
policies:
  - name: daily
    select:
      instance_states: [running]
      exclude_tags: {"snapfleet:skip": "true"}
    every: 24h
    retain:
      max_age: 30d
      min_keep: 1
    tags: {Team: ops}
`

// e2e is one test's world: a moto server, SDK clients on it, a config file.
type e2e struct {
	t      *testing.T
	moto   *mototest.Server
	fleet  *testfleet.Fleet
	ec2    *ec2.Client
	sqs    *sqs.Client
	config string
	start  time.Time
	// env is added to the environment of every snapfleet process (e.g. a fault proxy's).
	env []string
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	s := mototest.Start(t)
	cfg := s.AWSConfig(t)
	path := filepath.Join(t.TempDir(), "snapfleet.yaml")
	if err := os.WriteFile(path, []byte(testConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	noon := time.Now().UTC().Truncate(24 * time.Hour).Add(12 * time.Hour)
	f := testfleet.New(t, s)
	return &e2e{t: t, moto: s, fleet: f, ec2: f.EC2, sqs: sqs.NewFromConfig(cfg), config: path, start: noon}
}

// at moves moto's clock to d after the test's day 0 (today, 12:00 UTC), so snapshots made
// from now on are stamped from there, and returns the --now a command of that day uses: 10
// minutes later, so that the test's own snapshots are in the past and in the same UTC day.
func (e *e2e) at(d time.Duration) string {
	e.moto.ShiftClock(e.t, time.Until(e.start.Add(d)))
	return e.start.Add(d + 10*time.Minute).Format(time.RFC3339)
}

// result is one snapfleet process's exit.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the snapfleet binary with env added to the test's environment.
func runCLI(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running snapfleet %v: %v", args, err)
	}
	return r
}

// cli runs snapfleet on the test's moto.
func (e *e2e) cli(args ...string) result {
	e.t.Helper()
	return runCLI(e.t, append(e.moto.Env(), e.env...), args...)
}

// jsonCLI runs a command with --output json and the test's config, wants exit code want,
// and decodes stdout.
func (e *e2e) jsonCLI(want int, args ...string) map[string]any {
	e.t.Helper()
	return e.run(want, append(args, "--config", e.config)...)
}

// run runs snapfleet with --output json and exactly the args given (no --config added),
// wants exit code want and decodes stdout.
func (e *e2e) run(want int, args ...string) map[string]any {
	e.t.Helper()
	var m map[string]any
	e.runInto(want, &m, args...)
	return m
}

// runInto is run decoding stdout into v.
func (e *e2e) runInto(want int, v any, args ...string) {
	e.t.Helper()
	r := e.cli(append(args, "--output", "json")...)
	if r.code != want {
		e.t.Fatalf("snapfleet %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, want, r.stdout, tail(r.stderr))
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		e.t.Fatalf("snapfleet %v: stdout is not JSON: %v\n%s", args, err, r.stdout)
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}

// num reads a number at a dotted path of a decoded JSON summary.
func num(t *testing.T, m map[string]any, path string) int {
	t.Helper()
	var v any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("summary has no %s: %v", path, m)
		}
		v = obj[k]
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("summary %s = %v, not a number: %v", path, v, m)
	}
	return int(f)
}

// fleet is what the tests build in moto.
type fleet struct {
	selected map[string]string // volume id → instance id, for the volumes the policy selects
	names    map[string]string // instance id → its Name tag; one selected instance has none
	ignored  []string          // volumes of stopped or excluded instances, and excluded volumes
	handmade string            // a snapshot snapfleet did not make
	foreign  []string          // snapshots of other owners that moto returns anyway
}

// buildFleet makes 14 instances with a root and a data volume each: 10 running and
// selected (one data volume opted out by its own tag), 2 running but opted out, 2 stopped.
// Every instance but one selected one has a Name tag.
func (e *e2e) buildFleet(ctx context.Context) fleet {
	t := e.t
	t.Helper()
	f := fleet{selected: map[string]string{}, names: map[string]string{}}
	for i, in := range e.fleet.Instances(ctx, 14, 1, nil) {
		id := in.ID
		if i != 1 {
			f.names[id] = fmt.Sprintf("app-%d", i)
			e.tag(ctx, id, "Name", f.names[id])
		}
		switch {
		case i == 0: // the data volume opts out by its own tag
			e.tag(ctx, in.Data[0], "snapfleet:skip", "true")
			f.ignored = append(f.ignored, in.Data[0])
			f.selected[in.Root] = id
		case i < 10:
			for _, v := range in.Volumes() {
				f.selected[v] = id
			}
		case i < 12:
			e.tag(ctx, id, "snapfleet:skip", "true")
			f.ignored = append(f.ignored, in.Volumes()...)
		default:
			e.fleet.Stop(ctx, id)
			f.ignored = append(f.ignored, in.Volumes()...)
		}
	}
	snap, err := e.ec2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(e.fleet.Volume(ctx)), Description: aws.String("made by hand")})
	if err != nil {
		t.Fatal(err)
	}
	f.handmade = aws.ToString(snap.SnapshotId)
	if f.foreign = e.fleet.Foreign(ctx); len(f.foreign) == 0 {
		t.Fatal("moto returned no snapshots of other owners; promise 1 would go untested")
	}
	return f
}

// checkUntouched asserts that the snapshots snapfleet did not make still exist.
func (f fleet) checkUntouched(t *testing.T, snaps map[string]types.Snapshot) {
	t.Helper()
	if _, ok := snaps[f.handmade]; !ok {
		t.Errorf("hand-made snapshot %s was deleted", f.handmade)
	}
	for _, id := range f.foreign {
		if _, ok := snaps[id]; !ok {
			t.Errorf("snapshot %s of another owner was deleted", id)
		}
	}
}

func (e *e2e) tag(ctx context.Context, id, k, v string) {
	e.t.Helper()
	e.fleet.Tag(ctx, id, map[string]string{k: v})
}

// snapshots returns every snapshot moto holds, by id.
func (e *e2e) snapshots(ctx context.Context) map[string]types.Snapshot {
	e.t.Helper()
	out, err := e.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]types.Snapshot{}
	for _, s := range out.Snapshots {
		m[aws.ToString(s.SnapshotId)] = s
	}
	return m
}

func tagsOf(s types.Snapshot) map[string]string {
	m := map[string]string{}
	for _, t := range s.Tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// managedByVolume groups the managed snapshots by their snapfleet:volume tag.
func managedByVolume(snaps map[string]types.Snapshot) map[string][]types.Snapshot {
	m := map[string][]types.Snapshot{}
	for _, s := range snaps {
		if tg := tagsOf(s); tg[tag.Policy] != "" {
			m[tg[tag.Volume]] = append(m[tg[tag.Volume]], s)
		}
	}
	for _, v := range m {
		sort.Slice(v, func(i, j int) bool { return aws.ToTime(v[i].StartTime).Before(aws.ToTime(v[j].StartTime)) })
	}
	return m
}

// checkOnePerVolume asserts exactly one managed snapshot per selected volume, with every
// tag of DESIGN.md §4 (Name: the instance's Name tag or id, the device, a UTC time), and
// none for the ignored volumes.
func (e *e2e) checkOnePerVolume(ctx context.Context, f fleet) map[string]types.Snapshot {
	t := e.t
	t.Helper()
	byVol := managedByVolume(e.snapshots(ctx))
	got := map[string]types.Snapshot{}
	for vol, inst := range f.selected {
		snaps := byVol[vol]
		if len(snaps) != 1 {
			t.Errorf("volume %s has %d managed snapshots, want 1", vol, len(snaps))
			continue
		}
		got[vol] = snaps[0]
		tg := tagsOf(snaps[0])
		for k, want := range map[string]string{tag.Policy: "daily", tag.Volume: vol, tag.Instance: inst, tag.AutoBackup: "true", "Team": "ops"} {
			if tg[k] != want {
				t.Errorf("snapshot of %s: tag %s = %q, want %q", vol, k, tg[k], want)
			}
		}
		for _, k := range []string{tag.Job, tag.Device, tag.Expires, tag.Name} {
			if tg[k] == "" {
				t.Errorf("snapshot of %s: tag %s missing", vol, k)
			}
		}
		source := f.names[inst]
		if source == "" {
			source = inst
		}
		prefix := source + " " + tg[tag.Device] + " "
		if ts, ok := strings.CutPrefix(tg[tag.Name], prefix); !ok || !strings.HasSuffix(ts, "Z") {
			t.Errorf("snapshot of %s: Name %q, want %q and a UTC time", vol, tg[tag.Name], prefix)
		} else if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("snapshot of %s: Name %q does not end in an RFC 3339 time: %v", vol, tg[tag.Name], err)
		}
		if exp, err := time.Parse(time.RFC3339, tg[tag.Expires]); err != nil || exp.Before(aws.ToTime(snaps[0].StartTime).Add(29*24*time.Hour)) {
			t.Errorf("snapshot of %s: snapfleet:expires %q is not ~30 days after its start %v", vol, tg[tag.Expires], snaps[0].StartTime)
		}
	}
	for _, vol := range f.ignored {
		if n := len(byVol[vol]); n != 0 {
			t.Errorf("ignored volume %s has %d managed snapshots", vol, n)
		}
	}
	return got
}

// sqsQueues makes a jobs queue whose RedrivePolicy names a dead-letter queue.
func (e *e2e) sqsQueues(ctx context.Context, name string) string {
	t := e.t
	t.Helper()
	dlq, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	redrive := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, attrs.Attributes["QueueArn"])
	q, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: map[string]string{
		"VisibilityTimeout": "10", "RedrivePolicy": redrive,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(q.QueueUrl)
}

// workers runs n `snapfleet work --idle-exit 2s` processes at once and adds up their JSON.
func (e *e2e) workers(n int, queueURL string, extra ...string) map[string]int {
	t := e.t
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	total := map[string]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"work", "--queue", queueURL, "--idle-exit", "2s", "--visibility", "10s", "--output", "json", "--config", e.config}, extra...)
			r := e.cli(args...)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("worker %d's log, jobs and warnings only:\n%s", i, outcomes(r.stderr))
				}
			})
			mu.Lock()
			defer mu.Unlock()
			if r.code != 0 {
				t.Errorf("worker %d: exit %d\n%s", i, r.code, tail(r.stderr))
				return
			}
			var m map[string]int
			if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
				t.Errorf("worker %d: stdout %q: %v", i, r.stdout, err)
				return
			}
			for k, v := range m {
				total[k] += v
			}
		}()
	}
	wg.Wait()
	return total
}

// queueEmpty asserts that the jobs queue and its dead-letter queue hold nothing.
func (e *e2e) queueEmpty(ctx context.Context, url string) {
	e.t.Helper()
	q, err := queue.Open(ctx, url, queue.Options{AWS: e.moto.AWSConfig(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	dlq, err := q.DLQ(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for name, qq := range map[string]queue.Queue{"queue": q, "dead-letter queue": dlq} {
		st, err := qq.Stats(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if st.Total() != 0 {
			e.t.Errorf("%s holds %+v, want nothing", name, st)
		}
	}
}
