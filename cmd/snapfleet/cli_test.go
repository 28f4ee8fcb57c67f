package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// TestRunDeadLetters: `snapfleet run` does its work and exits 1 when a job was
// dead-lettered — here a malformed message a broken producer put on the embedded queue.
func TestRunDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	_, vols := e.instancesWithData(ctx, 1, nil)
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	e.sendRaw(ctx, db, `{"v":1,"kind":"snapshot.create","key":"not a key"}`)

	r := e.jsonCLI(1, "run", "--queue", db, "--now", e.at(0), "--allow-clock-skew")
	for path, want := range map[string]int{"plan.snapshot_jobs": 2, "plan.errors": 0, "work.created": 2, "work.dead_lettered": 1} {
		if got := num(t, r, path); got != want {
			t.Errorf("run %s = %d, want %d", path, got, want)
		}
	}
	byVol := managedByVolume(e.snapshots(ctx))
	for _, vs := range vols {
		for _, v := range vs {
			if len(byVol[v]) != 1 {
				t.Errorf("volume %s has %d managed snapshots, want 1: the bad message stops nothing", v, len(byVol[v]))
			}
		}
	}
	// Nothing left to dead-letter: the next run exits 0.
	if r := e.jsonCLI(0, "run", "--queue", db, "--now", e.at(0), "--allow-clock-skew"); num(t, r, "work.dead_lettered") != 0 {
		t.Errorf("second run: %v", r)
	}
}

// TestEmptyMessageDoesNotWedge: one message with an empty body in the embedded queue's
// file, ahead of the planned jobs, is dead-lettered (placeholder body, invalid_message)
// while the jobs behind it run, and `run` and `work --idle-exit` end with their JSON
// summary instead of failing every receive once the message has been received 5 times.
func TestEmptyMessageDoesNotWedge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, cmd := range []string{"run", "work"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			e := newE2E(t)
			_, vols := e.instancesWithData(ctx, 2, nil)
			db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
			e.sendRaw(ctx, db, "")
			now := e.at(0)
			var r map[string]any
			if cmd == "run" {
				r = e.jsonCLI(1, "run", "--queue", db, "--now", now, "--visibility", "2s")
				r = r["work"].(map[string]any)
			} else {
				e.jsonCLI(0, "plan", "--queue", db, "--now", now)
				r = e.jsonCLI(0, "work", "--queue", db, "--now", now, "--visibility", "2s", "--idle-exit", "2s")
			}
			for path, want := range map[string]int{"created": 4, "dead_lettered": 1} {
				if got := num(t, r, path); got != want {
					t.Errorf("%s: work.%s = %d, want %d", cmd, path, got, want)
				}
			}
			if n := len(managedByVolume(e.snapshots(ctx))); n != len(vols)*2 {
				t.Errorf("%d volumes have a managed snapshot, want %d", n, len(vols)*2)
			}
			l := e.dlqList(db)
			if l.Total != 1 || l.Messages[0].Error != "invalid_message" {
				t.Fatalf("dead letters: %+v, want one invalid_message", l.Messages)
			}
		})
	}
}

// TestEmbeddedRefusesBadStrings: on the embedded queue (which, unlike SQS, stores any
// bytes), create jobs whose strings hold a byte that is not UTF-8 or an escaped NUL are
// dead-lettered as invalid_message, and nothing is created.
func TestEmbeddedRefusesBadStrings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	ids, vols := e.instancesWithData(ctx, 1, nil)
	now := e.at(0)
	var bodies []string
	for i, run := range []string{`"run":"r\xff"`, `"run":"r\u0000"`} {
		b, err := job.Encode(job.Job{
			V: 1, Kind: job.KindCreate, Key: job.CreateKey(mototest.Account, mototest.Region, vols[ids[0]][i], "daily", e.start.Truncate(24*time.Hour)),
			Account: mototest.Account, Region: mototest.Region, Policy: "daily", Volume: vols[ids[0]][i], Instance: ids[0],
			Device: "/dev/xvda", Run: "r", PlannedAt: e.start,
		})
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, strings.Replace(string(b), `"run":"r"`, run, 1))
	}
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	e.sendRaw(ctx, db, bodies...)
	r := e.jsonCLI(0, "work", "--queue", db, "--now", now, "--idle-exit", "1s")
	if num(t, r, "dead_lettered") != 2 || num(t, r, "created") != 0 {
		t.Errorf("work: %v, want 2 dead-lettered and none created", r)
	}
	if n := len(managedByVolume(e.snapshots(ctx))); n != 0 {
		t.Errorf("%d volumes got a snapshot from a job with bad strings", n)
	}
	if got := e.dlqList(db).reasons(); got["invalid_message"] != 2 {
		t.Errorf("dead letters by reason %v, want 2 invalid_message", got)
	}
}

// TestUnusableQueue: an SQS jobs queue that does not exist, or has no RedrivePolicy (a
// poison message would bounce forever), is refused by plan, work and run at start: exit
// 2, one line naming the queue, nothing sent or received.
func TestUnusableQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.instancesWithData(ctx, 1, nil)
	bare, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("no-redrive")})
	if err != nil {
		t.Fatal(err)
	}
	noRedrive := aws.ToString(bare.QueueUrl)
	missing := strings.TrimSuffix(noRedrive, "no-redrive") + "no-such-queue"
	now := e.at(0)
	for _, tc := range []struct {
		url  string
		want string
	}{{noRedrive, "has no RedrivePolicy: set one"}, {missing, "does not exist"}} {
		for _, cmd := range [][]string{
			{"plan", "--queue", tc.url, "--now", now},
			{"work", "--queue", tc.url, "--idle-exit", "1s", "--now", now},
			{"run", "--queue", tc.url, "--now", now},
			{"dlq", "list", "--queue", tc.url},
			{"dlq", "replay", "--queue", tc.url},
		} {
			start := time.Now()
			r := e.cli(append(cmd, "--config", e.config)...)
			if r.code != exitUsage {
				t.Errorf("%v: exit %d after %s, want %d\n%s", cmd, r.code, time.Since(start), exitUsage, tail(r.stderr))
				continue
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.url) || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%v: stderr %q is not one line naming the queue and %q", cmd, r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("%v: stdout %q", cmd, r.stdout)
			}
		}
	}
	out, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &noRedrive,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil || out.Attributes["ApproximateNumberOfMessages"] != "0" {
		t.Errorf("the queue without a RedrivePolicy holds %v messages (%v), want 0", out.Attributes, err)
	}
	if n := len(managedByVolume(e.snapshots(ctx))); n != 0 {
		t.Errorf("%d volumes were snapshotted", n)
	}
}

// TestPlanDryRunText: `plan --dry-run` in text lists every decision — policy, action,
// volume, snapshot, instance, reason — and enqueues nothing; with --log-format console
// the logs on stderr are lines for people, not JSON.
func TestPlanDryRunText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	ids, vols := e.instancesWithData(ctx, 1, nil)
	inst, root, data := ids[0], vols[ids[0]][0], vols[ids[0]][1]
	managed := map[string]string{tag.Policy: "daily", tag.Volume: root}
	old := e.snapshotAt(ctx, root, e.start.Add(-40*day), managed)
	recent := e.snapshotAt(ctx, root, e.start.Add(-2*day), managed)
	now := e.at(0)

	r := e.cli("plan", "--queue", "file:"+filepath.Join(t.TempDir(), "q.db"), "--dry-run", "--now", now,
		"--config", e.config, "--log-format", "console")
	if r.code != 0 {
		t.Fatalf("plan --dry-run: exit %d\n%s", r.code, tail(r.stderr))
	}
	// One row per decision, its cells in the header's order.
	for _, want := range [][]string{
		{"daily", "create", root, "-", inst, "due"},
		{"daily", "create", data, "-", inst, "due"},
		{"daily", "delete", root, old, "-", "expired"},
		{"daily", "keep", root, recent, "-", "newest"},
	} {
		row := regexp.MustCompile(`(?m)^` + strings.Join(quoteAll(want), `\s+`) + `(\s|$)`)
		if !row.MatchString(r.stdout) {
			t.Errorf("dry-run text has no row %v:\n%s", want, r.stdout)
		}
	}
	for _, want := range []string{"(dry run: nothing enqueued)", "POLICY  ACTION  VOLUME", "enqueued"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry-run text does not say %q:\n%s", want, r.stdout)
		}
	}

	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	sawDone := false
	for _, l := range lines {
		var v any
		if json.Unmarshal([]byte(l), &v) == nil {
			t.Errorf("--log-format console wrote a JSON line: %s", l)
		}
		sawDone = sawDone || strings.Contains(l, "plan done")
	}
	if !sawDone || !strings.Contains(r.stderr, "INF") {
		t.Errorf("console logs have no INF \"plan done\" line:\n%s", r.stderr)
	}
	// The default off a terminal (here a pipe), for contrast: every line is an object with the same message.
	j := e.cli("plan", "--queue", "file:"+filepath.Join(t.TempDir(), "q2.db"), "--dry-run", "--now", now, "--config", e.config)
	for _, l := range strings.Split(strings.TrimSpace(j.stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("default log line is not JSON: %q", l)
		}
	}
	if !strings.Contains(j.stderr, `"message":"plan done"`) {
		t.Errorf("JSON logs have no plan done: %s", tail(j.stderr))
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = regexp.QuoteMeta(s)
	}
	return out
}
