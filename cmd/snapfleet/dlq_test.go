package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/faultproxy"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/queue"
)

// weeklyConfig is testConfig plus a policy "weekly" for the instances tagged Tier=db: the
// planner has it, the workers of the replay tests at first do not.
const weeklyConfig = testConfig + `  - name: weekly
    select:
      instance_states: [running]
      instance_tags: {Tier: db}
    every: 7d
    retain:
      max_age: 60d
      min_keep: 1
`

// dlqFleet is a small fleet: three running instances with a root volume each, two tagged
// Tier=db, and a data volume on the first db instance.
type dlqFleet struct {
	roots  []string // root volumes; the first two are on db instances
	data   string   // the data volume of the first db instance, attached as /dev/sdf
	dataOn string   // that instance
	weekly int      // create jobs of policy weekly: 2 roots + the data volume
	daily  int      // create jobs of policy daily: every volume
}

func (e *e2e) buildDLQFleet(ctx context.Context) dlqFleet {
	db := map[string]string{"Tier": "db"}
	withData := e.fleet.Instances(ctx, 1, 1, db)[0]
	f := dlqFleet{data: withData.Data[0], dataOn: withData.ID, weekly: 3, daily: 4}
	f.roots = []string{withData.Root, e.fleet.Instances(ctx, 1, 0, db)[0].Root, e.fleet.Instances(ctx, 1, 0, nil)[0].Root}
	return f
}

// deleteVolume detaches and deletes a volume, as an operator retiring it would.
func (e *e2e) deleteVolume(ctx context.Context, id, instance, device string) {
	e.t.Helper()
	if _, err := e.ec2.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: &id, InstanceId: &instance, Device: &device}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: &id}); err != nil {
		e.t.Fatal(err)
	}
}

// listed is `dlq list --output json`, decoded.
type listed struct {
	Total    int `json:"total"`
	Messages []struct {
		Kind, Key, Account, Region, Error, ID string
		LastError                             string  `json:"last_error"`
		Attempts                              int     `json:"attempts"`
		FirstFailureAt                        *string `json:"first_failure_at"`
		FailedAt                              *string `json:"failed_at"`
		SentAt                                *string `json:"sent_at"`
	} `json:"messages"`
	Groups []struct {
		Kind, Error, Account, Region string
		Count                        int
	} `json:"groups"`
}

func (e *e2e) dlqList(url string) listed {
	e.t.Helper()
	r := e.cli("dlq", "list", "--queue", url, "--output", "json")
	if r.code != 0 {
		e.t.Fatalf("dlq list: exit %d\n%s", r.code, tail(r.stderr))
	}
	var l listed
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		e.t.Fatalf("dlq list: %v\n%s", err, r.stdout)
	}
	if l.Total != len(l.Messages) {
		e.t.Fatalf("dlq list: total %d but %d messages", l.Total, len(l.Messages))
	}
	return l
}

// reasons counts the listed dead letters by reason.
func (l listed) reasons() map[string]int {
	m := map[string]int{}
	for _, msg := range l.Messages {
		m[msg.Error]++
	}
	return m
}

// sendRaw puts bodies on the jobs queue as they are, as a broken producer would.
func (e *e2e) sendRaw(ctx context.Context, url string, bodies ...string) {
	e.t.Helper()
	q, err := queue.Open(ctx, url, queue.Options{AWS: e.moto.AWSConfig(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	var msgs []queue.Outgoing
	for i, b := range bodies {
		msgs = append(msgs, queue.Outgoing{Body: []byte(b), DedupID: fmt.Sprintf("raw-%d-%s", i, e.t.Name())})
	}
	if err := q.Send(ctx, msgs); err != nil {
		e.t.Fatal(err)
	}
}

// stats counts the messages of the jobs queue at url.
func (e *e2e) stats(ctx context.Context, url string) queue.Stats {
	e.t.Helper()
	q, err := queue.Open(ctx, url, queue.Options{AWS: e.moto.AWSConfig(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	st, err := q.Stats(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// managedByPolicy counts the managed snapshots of each volume and policy.
func (e *e2e) managedByPolicy(ctx context.Context) map[[2]string]int {
	m := map[[2]string]int{}
	for _, s := range e.snapshots(ctx) {
		if tg := tagsOf(s); tg[tag.Policy] != "" {
			m[[2]string{tg[tag.Volume], tg[tag.Policy]}]++
		}
	}
	return m
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("dlq list: time %q: %v", s, err)
	}
	return v
}

// TestDLQReplayRoundTrip: jobs of a policy the workers do not know are dead-lettered
// unknown_policy among other dead letters; `dlq list` shows them with their reasons;
// `dlq replay --error unknown_policy` (dry run, bounded, then all) moves only those; once
// the workers know the policy they succeed, once each, and the job of a volume deleted
// meanwhile is skipped, not dead-lettered. On SQS and on the embedded queue.
func TestDLQReplayRoundTrip(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqs", "file"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testReplayRoundTrip(t, backend)
		})
	}
}

func testReplayRoundTrip(t *testing.T, backend string) {
	ctx := context.Background()
	e := newE2E(t)
	f := e.buildDLQFleet(ctx)
	weekly := filepath.Join(t.TempDir(), "weekly.yaml")
	if err := os.WriteFile(weekly, []byte(weeklyConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file:" + filepath.Join(t.TempDir(), "jobs.db")
	if backend == "sqs" {
		url = e.sqsQueues(ctx, "jobs")
	}
	now := e.at(0)

	p := e.run(0, "plan", "--queue", url, "--now", now, "--config", weekly)
	if got := num(t, p, "enqueued"); got != f.daily+f.weekly {
		t.Fatalf("plan: %v, want %d enqueued", p, f.daily+f.weekly)
	}
	e.sendRaw(ctx, url, "this is not a job")
	w := e.workers(2, url, "--now", now, "--allow-clock-skew") // the test config: no policy weekly
	if w["created"] != f.daily || w["dead_lettered"] != f.weekly+1 {
		t.Fatalf("workers without weekly: %v, want %d created, %d dead-lettered", w, f.daily, f.weekly+1)
	}

	// List: every dead letter with its reason, grouped.
	l := e.dlqList(url)
	if got := l.reasons(); l.Total != f.weekly+1 || got["unknown_policy"] != f.weekly || got["invalid_message"] != 1 {
		t.Fatalf("dlq list: total %d, reasons %v; want %d unknown_policy and 1 invalid_message", l.Total, got, f.weekly)
	}
	for _, m := range l.Messages {
		if m.Attempts != 1 || m.LastError == "" || m.FailedAt == nil || m.SentAt == nil || m.FirstFailureAt == nil || m.ID == "" {
			t.Fatalf("dlq list: %+v: want attempts 1, a last error, failed_at, sent_at, first_failure_at and id", m)
		}
		// The first (here: only) attempt began after the send and before the dead letter,
		// not when the DLQ was listed.
		sent, first, failed := parseTime(t, *m.SentAt), parseTime(t, *m.FirstFailureAt), parseTime(t, *m.FailedAt)
		if first.Before(sent.Truncate(time.Second)) || first.After(failed) {
			t.Errorf("dlq list: %s: first_failure_at %s, want between sent_at %s and failed_at %s", m.ID, first, sent, failed)
		}
		switch m.Error {
		case "unknown_policy":
			if m.Kind != "snapshot.create" || !strings.Contains(m.Key, "/weekly/") || m.Account != mototest.Account || m.Region != mototest.Region || !strings.Contains(m.LastError, `"weekly"`) {
				t.Errorf("dlq list: %+v: want a weekly create job of 123456789012/us-east-1 whose last error names the policy", m)
			}
		case "invalid_message":
			if m.Kind != "" || m.Key != "" {
				t.Errorf("dlq list: %+v: want no kind or key for a body that is not a job", m)
			}
		}
	}
	groups := map[string]int{}
	for _, g := range l.Groups {
		groups[g.Kind+" "+g.Error+" "+g.Account+"/"+g.Region] = g.Count
	}
	wantGroups := map[string]int{"snapshot.create unknown_policy " + mototest.Account + "/" + mototest.Region: f.weekly, " invalid_message /": 1}
	if fmt.Sprint(groups) != fmt.Sprint(wantGroups) {
		t.Errorf("dlq list groups = %v, want %v", groups, wantGroups)
	}
	text := e.cli("dlq", "list", "--queue", url)
	for _, want := range []string{fmt.Sprintf("%d dead letters", f.weekly+1), "COUNT", "FIRST_FAILURE", "unknown_policy", "invalid_message", mototest.Account + "/" + mototest.Region, "/weekly/"} {
		if text.code != 0 || !strings.Contains(text.stdout, want) {
			t.Errorf("dlq list (text): exit %d, no %q in\n%s", text.code, want, text.stdout)
		}
	}
	if again := e.dlqList(url); again.Total != l.Total {
		t.Fatalf("a second dlq list saw %d dead letters, want %d: listing consumed some", again.Total, l.Total)
	}

	// The data volume is retired before the replay.
	e.deleteVolume(ctx, f.data, f.dataOn, "/dev/sdf")

	dry := e.run(0, "dlq", "replay", "--queue", url, "--error", "unknown_policy", "--dry-run")
	if num(t, dry, "matched") != f.weekly || num(t, dry, "moved") != 0 || num(t, dry, "skipped") != 1 || dry["dry_run"] != true {
		t.Fatalf("replay --dry-run = %v, want %d matched, nothing moved", dry, f.weekly)
	}
	if text := e.cli("dlq", "replay", "--queue", url, "--error", "unknown_policy", "--dry-run"); text.code != 0 ||
		text.stdout != fmt.Sprintf("dry run: would move %d, skipped 1\n", f.weekly) {
		t.Errorf("replay --dry-run (text): exit %d, stdout %q", text.code, text.stdout)
	}
	if st := e.stats(ctx, url); st.Total() != 0 || e.dlqList(url).Total != f.weekly+1 {
		t.Fatalf("after a dry run: jobs queue %+v, want empty and the DLQ unchanged", st)
	}
	one := e.run(0, "dlq", "replay", "--queue", url, "--error", "unknown_policy", "--max", "1")
	if num(t, one, "moved") != 1 || num(t, one, "matched") != 1 || num(t, one, "failed") != 0 {
		t.Fatalf("replay --max 1 = %v, want 1 moved", one)
	}
	rest := e.run(0, "dlq", "replay", "--queue", url, "--error", "unknown_policy")
	if num(t, rest, "moved") != f.weekly-1 || num(t, rest, "skipped") != 1 || num(t, rest, "failed") != 0 {
		t.Fatalf("replay --error unknown_policy = %v, want %d moved, the invalid message skipped", rest, f.weekly-1)
	}
	if st := e.stats(ctx, url); st.Visible != f.weekly {
		t.Fatalf("jobs queue after replay: %+v, want %d visible", st, f.weekly)
	}
	left := e.dlqList(url)
	if left.Total != 1 || left.Messages[0].Error != "invalid_message" || left.Messages[0].Attempts != 1 {
		t.Fatalf("dlq list after replay: %+v, want only the untouched invalid message", left)
	}

	// Fixed config: the replayed jobs succeed, the retired volume's is skipped.
	w = e.workers(2, url, "--now", now, "--allow-clock-skew", "--config", weekly)
	if w["created"] != f.weekly-1 || w["skipped"] != 1 || w["dead_lettered"] != 0 || w["processed"] != f.weekly {
		t.Fatalf("workers with weekly: %v, want %d created, 1 skipped (volume_gone), none dead-lettered", w, f.weekly-1)
	}
	snaps := e.managedByPolicy(ctx)
	for i, v := range f.roots {
		if snaps[[2]string{v, "daily"}] != 1 {
			t.Errorf("volume %s has %d daily snapshots, want 1", v, snaps[[2]string{v, "daily"}])
		}
		if want := map[bool]int{true: 1, false: 0}[i < 2]; snaps[[2]string{v, "weekly"}] != want {
			t.Errorf("volume %s has %d weekly snapshots, want %d", v, snaps[[2]string{v, "weekly"}], want)
		}
	}
	if snaps[[2]string{f.data, "daily"}] != 1 || snaps[[2]string{f.data, "weekly"}] != 0 {
		t.Errorf("retired volume %s: %d daily, %d weekly snapshots; want 1 and 0", f.data, snaps[[2]string{f.data, "daily"}], snaps[[2]string{f.data, "weekly"}])
	}

	// No filter: on SQS a move task is tried first; moto has none, and the loop moves it.
	all := e.run(0, "dlq", "replay", "--queue", url)
	if num(t, all, "moved") != 1 || all["method"] != queue.MethodReceive {
		t.Fatalf("replay (no filter) = %v, want 1 moved by the receive loop", all)
	}
	fallback, _ := all["fallback"].(string)
	if (backend == "sqs") != strings.Contains(fallback, "StartMessageMoveTask") {
		t.Errorf("replay (no filter) on %s: fallback %q", backend, fallback)
	}
	if l := e.dlqList(url); l.Total != 0 {
		t.Errorf("DLQ after replaying everything: %d dead letters, want none", l.Total)
	}
	if st := e.stats(ctx, url); st.Visible != 1 {
		t.Errorf("jobs queue after replaying everything: %+v, want the invalid message back", st)
	}
}

// TestDLQReplayRefusedDelete: delete jobs dead-lettered (unknown_policy) while they were
// safe are replayed after the state changed — the newer snapshots of their volumes are
// gone, so each target is now its volume's newest — and the worker re-checks them as any
// job: refused (refused_*) and dead-lettered again, no DeleteSnapshot call made, the
// snapshots still there. On SQS and on the embedded queue.
func TestDLQReplayRefusedDelete(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqs", "file"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testReplayRefusedDelete(t, backend)
		})
	}
}

func testReplayRefusedDelete(t *testing.T, backend string) {
	ctx := context.Background()
	e := newE2E(t) // the test config: policy daily, max_age 30d, min_keep 1
	other := writeFile(t, "other.yaml", "policies:\n  - name: other\n    select: {instance_tags: {Nothing: here}}\n    retain: {max_age: 30d}\n")
	e.instancesWithData(ctx, 1, nil) // a root and a data volume
	url := "file:" + filepath.Join(t.TempDir(), "jobs.db")
	if backend == "sqs" {
		url = e.sqsQueues(ctx, "jobs")
	}
	for _, d := range []time.Duration{0, 31 * day} {
		now := e.at(d)
		e.jsonCLI(0, "plan", "--queue", url, "--now", now)
		if w := e.workers(1, url, "--now", now, "--allow-clock-skew"); w["created"] != 2 || w["dead_lettered"] != 0 {
			t.Fatalf("day %d: workers %v, want 2 created", d/day, w)
		}
	}
	now := e.at(31 * day)
	newest := map[string]string{} // volume → its day-31 snapshot
	old := map[string]string{}    // volume → its day-0 snapshot, expired
	for vol, snaps := range managedByVolume(e.snapshots(ctx)) {
		if len(snaps) != 2 {
			t.Fatalf("volume %s has %d snapshots, want 2", vol, len(snaps))
		}
		a, b := snaps[0], snaps[1]
		if aws.ToTime(a.StartTime).After(aws.ToTime(b.StartTime)) {
			a, b = b, a
		}
		old[vol], newest[vol] = aws.ToString(a.SnapshotId), aws.ToString(b.SnapshotId)
	}
	if p := e.jsonCLI(0, "plan", "--queue", url, "--now", now); num(t, p, "delete_jobs") != len(old) {
		t.Fatalf("day-31 plan: %v, want %d delete jobs (the day-0 snapshots)", p, len(old))
	}
	// Workers that do not know the policy dead-letter the deletes while they are safe.
	if w := e.workers(1, url, "--now", now, "--allow-clock-skew", "--config", other); w["dead_lettered"] != len(old) || w["deleted"] != 0 {
		t.Fatalf("workers without the policy: %v, want %d dead-lettered", w, len(old))
	}
	if l := e.dlqList(url); l.reasons()["unknown_policy"] != len(old) || l.Total != len(old) {
		t.Fatalf("dlq list: %v, want %d unknown_policy deletes", l.reasons(), len(old))
	}

	// The state changes: the newer snapshots go, so each target is its volume's newest.
	for _, id := range newest {
		if _, err := e.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
	}
	r := e.run(0, "dlq", "replay", "--queue", url, "--error", "unknown_policy", "--kind", "snapshot.delete")
	if num(t, r, "moved") != len(old) || num(t, r, "failed") != 0 {
		t.Fatalf("replay: %v, want %d moved", r, len(old))
	}

	// The workers, now with the policy, re-check and refuse; EC2 is watched for deletes.
	proxy := faultproxy.Start(t, e.moto.Endpoint)
	e.env = proxy.Env()
	w := e.workers(1, url, "--now", now, "--allow-clock-skew")
	e.env = nil
	if w["dead_lettered"] != len(old) || w["deleted"] != 0 || w["processed"] != len(old) {
		t.Fatalf("workers with the policy: %v, want the %d replayed deletes refused", w, len(old))
	}
	if n := proxy.Count("DeleteSnapshot").Calls; n != 0 {
		t.Errorf("DeleteSnapshot called %d times, want none", n)
	}
	if proxy.Count("DescribeSnapshots").Forwarded == 0 {
		t.Errorf("the workers never read the snapshots: they did not re-check through the proxy")
	}
	left := e.dlqList(url)
	for _, m := range left.Messages {
		if m.Kind != "snapshot.delete" || !strings.HasPrefix(m.Error, "refused_") {
			t.Errorf("dead letter after the replay: %s %s %s, want a refused_* delete", m.Kind, m.Key, m.Error)
		}
	}
	if left.Total != len(old) {
		t.Errorf("dlq list after the replay: %d dead letters, want the %d refused deletes", left.Total, len(old))
	}
	snaps := e.snapshots(ctx)
	for vol, id := range old {
		if _, ok := snaps[id]; !ok {
			t.Errorf("snapshot %s, now the newest of %s, was deleted", id, vol)
		}
	}
	if st := e.stats(ctx, url); st.Total() != 0 {
		t.Errorf("jobs queue after the replay: %+v, want empty", st)
	}
}

// TestDLQFIFO: on a FIFO DLQ every dead letter is listed (more than one batch of 10),
// and replayed jobs reach the FIFO jobs queue although their originals were sent minutes
// ago with the job key as deduplication id.
func TestDLQFIFO(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	f := e.buildDLQFleet(ctx)
	weekly := filepath.Join(t.TempDir(), "weekly.yaml")
	if err := os.WriteFile(weekly, []byte(weeklyConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	url := e.fifoQueues(ctx, "jobs")
	now := e.at(0)
	e.run(0, "plan", "--queue", url, "--now", now, "--config", weekly)
	var junk []string
	for i := range 11 {
		junk = append(junk, fmt.Sprintf(`{"v":1,"kind":"snapshot.resize","key":"junk-%d"}`, i))
	}
	e.sendRaw(ctx, url, junk...)
	if w := e.workers(1, url, "--now", now, "--allow-clock-skew"); w["dead_lettered"] != f.weekly+len(junk) {
		t.Fatalf("workers without weekly: %v, want %d dead-lettered", w, f.weekly+len(junk))
	}
	l := e.dlqList(url)
	if got := l.reasons(); l.Total != f.weekly+len(junk) || got["invalid_message"] != len(junk) {
		t.Fatalf("dlq list on a FIFO DLQ: total %d, reasons %v; want %d", l.Total, got, f.weekly+len(junk))
	}
	for _, m := range l.Messages {
		if m.Error == "invalid_message" && (m.Kind != "snapshot.resize" || !strings.HasPrefix(m.Key, "junk-")) {
			t.Errorf("dlq list: %+v: want kind and key read leniently from the body", m)
		}
	}
	r := e.run(0, "dlq", "replay", "--queue", url, "--error", "unknown_policy", "--kind", "snapshot.create", "--account", mototest.Account, "--region", mototest.Region)
	if num(t, r, "moved") != f.weekly || num(t, r, "skipped") != len(junk) {
		t.Fatalf("replay = %v, want %d moved, %d skipped", r, f.weekly, len(junk))
	}
	if w := e.workers(1, url, "--now", now, "--allow-clock-skew", "--config", weekly); w["created"] != f.weekly || w["dead_lettered"] != 0 {
		t.Fatalf("workers with weekly: %v, want %d created: a replayed FIFO message was dropped as a duplicate?", w, f.weekly)
	}
	if l := e.dlqList(url); l.Total != len(junk) {
		t.Errorf("dlq list after replay: %d, want the %d invalid messages", l.Total, len(junk))
	}
}

// TestDLQUsage: bad flags of dlq list and replay exit 2 with a one-line reason naming the
// flag, before any queue is opened.
func TestDLQUsage(t *testing.T) {
	t.Parallel()
	q := "file:" + filepath.Join(t.TempDir(), "never.db")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "replay", "--queue", q, "--account", "12345"}, `--account: "12345" is not a 12-digit account id`},
		{[]string{"dlq", "replay", "--queue", q, "--max", "-1"}, "--max: -1 is negative"},
		{[]string{"dlq", "replay", "--queue", q, "--kind", "snapshot.resize"}, `--kind: "snapshot.resize" is not one of snapshot.create, snapshots.create, snapshot.delete`},
		{[]string{"dlq", "replay", "--queue", q, "--region", "Mars"}, `--region: "Mars" is not a region`},
		{[]string{"dlq", "replay", "--queue", q, "--error", "Unknown Policy"}, `--error: "Unknown Policy" is not a reason code`},
		{[]string{"dlq", "replay", "--queue", q, "--max", "many"}, `invalid argument "many" for "--max"`},
		{[]string{"dlq", "replay"}, "dlq replay: --queue is required"},
		{[]string{"dlq", "list"}, "dlq list: --queue is required"},
		{[]string{"dlq", "list", "--queue", "ftp://queue"}, "--queue: bad queue URL"},
		{[]string{"dlq", "list", "--queue", q, "--output", "yaml"}, `--output: "yaml" is not text or json`},
	} {
		r := runCLI(t, nil, c.args...)
		stderr := strings.TrimSpace(r.stderr)
		if r.code != 2 || strings.Count(stderr, "\n") != 0 || !strings.Contains(stderr, c.want) || r.stdout != "" {
			t.Errorf("snapfleet %v: exit %d, stderr %q, stdout %q; want exit 2 and one line with %q", c.args, r.code, stderr, r.stdout, c.want)
		}
	}
	if _, err := os.Stat(strings.TrimPrefix(q, "file:")); !os.IsNotExist(err) {
		t.Errorf("a bad replay created the queue file: %v", err)
	}
}
