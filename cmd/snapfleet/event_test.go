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
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// motoAccount is the account moto serves without AssumeRole.
const motoAccount = "123456789012"

// instancesWithData runs n instances, each with its root volume and one data volume, tags
// them, and returns their ids and volumes (instance → volumes).
func (e *e2e) instancesWithData(ctx context.Context, n int, tags map[string]string) ([]string, map[string][]string) {
	var ids []string
	vols := map[string][]string{}
	for _, in := range e.fleet.Instances(ctx, n, 1, tags) {
		ids = append(ids, in.ID)
		vols[in.ID] = in.Volumes()
	}
	return ids, vols
}

// writeFile writes a file in the test's directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func stateChange(id, account, instance, state string) string {
	return fmt.Sprintf(`{"version":"0","id":%q,"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2",
"account":%q,"time":"2026-11-22T05:00:00Z","region":%q,"resources":["arn:aws:ec2:%s:%s:instance/%s"],
"detail":{"instance-id":%q,"state":%q}}`, id, account, mototest.Region, mototest.Region, account, instance, instance, state)
}

// outcomeTypes are the detail-types of snapfleet's outcome events: busQueue's default (the
// audit trail's snapfleet.Audit events are asked for by name).
var outcomeTypes = []string{"snapfleet.PlanSummary", "snapfleet.WorkSummary", "snapfleet.JobFailed"}

// outcomePattern is the event pattern of snapfleet's events of detailTypes (default
// outcomeTypes).
func outcomePattern(detailTypes ...string) *string {
	if len(detailTypes) == 0 {
		detailTypes = outcomeTypes
	}
	b, _ := json.Marshal(map[string][]string{"source": {"snapfleet"}, "detail-type": detailTypes})
	return aws.String(string(b))
}

// busQueue creates an EventBridge bus with a rule sending snapfleet's events of
// detailTypes (default: the outcome events) to a new SQS queue; read returns the events
// that arrived, waiting up to 10 s for want of them.
func (e *e2e) busQueue(ctx context.Context, bus string, detailTypes ...string) (read func(want int) []map[string]any) {
	t := e.t
	t.Helper()
	eb := eventbridge.NewFromConfig(e.moto.AWSConfig(t))
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatal(err)
	}
	q, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(bus + "-inbox")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("to-inbox"), EventBusName: aws.String(bus),
		EventPattern: outcomePattern(detailTypes...)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("to-inbox"), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("inbox"), Arn: aws.String(attrs.Attributes["QueueArn"])}}}); err != nil {
		t.Fatal(err)
	}
	return func(want int) []map[string]any {
		t.Helper()
		var got []map[string]any
		for deadline := time.Now().Add(10 * time.Second); len(got) < want && time.Now().Before(deadline); {
			out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range out.Messages {
				var ev map[string]any
				if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
					t.Fatalf("event on the inbox queue: %v", err)
				}
				got = append(got, ev)
				if _, err := e.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
					t.Fatal(err)
				}
			}
		}
		return got
	}
}

// eventSnapshots returns the managed snapshots by volume.
func (e *e2e) eventSnapshots(ctx context.Context) map[string][]types.Snapshot {
	return managedByVolume(e.snapshots(ctx))
}

// TestEventStateChange: an opted-in instance stopping, its event delivered twice (before
// and after the workers ran), gets exactly one snapshot per volume keyed by the event; an
// instance without the opt-in tag gets none; a running notification plans nothing; and
// the plan and work summaries arrive on the events bus through a rule into SQS.
func TestEventStateChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.config = writeFile(t, "events.yaml", testConfig+"events:\n  bus: ops\n")
	read := e.busQueue(ctx, "ops")
	optedIn, vols := e.instancesWithData(ctx, 1, map[string]string{"AutoSnapshot": "true"})
	other, otherVols := e.instancesWithData(ctx, 1, map[string]string{"AutoSnapshot": "false"})
	if _, err := e.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{optedIn[0], other[0]}}); err != nil {
		t.Fatal(err)
	}
	url := e.sqsQueues(ctx, "jobs")
	now := e.at(0)
	const id = "7bf73129-1428-4cd3-a780-95db273d1602"
	ev := writeFile(t, "stop.json", stateChange(id, motoAccount, optedIn[0], "stopping"))

	for i := range 2 { // delivered twice before any worker runs
		p := e.jsonCLI(0, "plan", "--queue", url, "--now", now, "--event", ev)
		if num(t, p, "snapshot_jobs") != 2 || num(t, p, "enqueued") != 2 || num(t, p, "instances") != 1 || num(t, p, "errors") != 0 {
			t.Fatalf("delivery %d: plan %v, want 2 jobs for the instance's 2 volumes", i+1, p)
		}
	}
	w := e.workers(2, url, "--now", now, "--allow-clock-skew")
	// Every delivery is processed at least once; on a loaded machine one was once received
	// again after it was done (at-least-once delivery), which is harmless only because it
	// finds the snapshot by its job tag: exactly 2 are created, checked below per volume.
	if w["created"] != 2 || w["dead_lettered"] != 0 || w["processed"] < 4 {
		t.Fatalf("workers %v: want 4 deliveries processed, 2 snapshots created", w)
	}
	// A third delivery after the snapshots exist enqueues nothing.
	if p := e.jsonCLI(0, "plan", "--queue", url, "--now", now, "--event", ev); num(t, p, "enqueued") != 0 {
		t.Fatalf("third delivery enqueued jobs: %v", p)
	}
	// The other instance does not opt in; a running notification is not a stop.
	for _, doc := range []string{
		stateChange("evt-other", motoAccount, other[0], "stopped"),
		stateChange("evt-running", motoAccount, optedIn[0], "running"),
	} {
		if p := e.jsonCLI(0, "plan", "--queue", url, "--now", now, "--event", writeFile(t, "ev.json", doc)); num(t, p, "enqueued") != 0 {
			t.Fatalf("plan enqueued jobs for %s: %v", doc, p)
		}
	}
	e.queueEmpty(ctx, url)

	byVol := e.eventSnapshots(ctx)
	for _, vol := range vols[optedIn[0]] {
		if len(byVol[vol]) != 1 {
			t.Errorf("volume %s of the opted-in instance has %d snapshots, want 1", vol, len(byVol[vol]))
			continue
		}
		tg := tagsOf(byVol[vol][0])
		if want := job.EventKey(motoAccount, mototest.Region, vol, "daily", id); tg[tag.Job] != want {
			t.Errorf("snapshot of %s: job tag %q, want %q", vol, tg[tag.Job], want)
		}
		if tg[tag.Instance] != optedIn[0] || tg[tag.Policy] != "daily" || tg[tag.Expires] == "" {
			t.Errorf("snapshot of %s: tags %v", vol, tg)
		}
	}
	for _, vol := range otherVols[other[0]] {
		if n := len(byVol[vol]); n != 0 {
			t.Errorf("volume %s of the instance not opted in has %d snapshots", vol, n)
		}
	}

	got := read(7)
	enqueued, works := 0, 0
	for _, ev := range got {
		d := ev["detail"].(map[string]any)
		switch ev["detail-type"] {
		case "snapfleet.PlanSummary":
			enqueued += num(t, d, "enqueued")
			if d["run_id"] == "" || d["event"] == nil {
				t.Errorf("summary without run id or event: %v", d)
			}
		case "snapfleet.WorkSummary":
			works++
		default:
			t.Errorf("event %v", ev)
		}
		if ev["source"] != "snapfleet" {
			t.Errorf("source %v", ev["source"])
		}
	}
	if len(got) != 7 || works != 2 {
		t.Errorf("%d events on the bus with %d work summaries, want 5 plan summaries and 2 work summaries", len(got), works)
	}
	if enqueued != 4 {
		t.Errorf("summaries on the bus enqueued %d jobs in all, want 4", enqueued)
	}
}

// TestEventBackupNow: a snapfleet.BackupNow event selecting by tag snapshots the volumes
// of the selected instances, running or not, and no other.
func TestEventBackupNow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	shop, shopVols := e.instancesWithData(ctx, 2, map[string]string{"App": "shop"})
	other, otherVols := e.instancesWithData(ctx, 1, map[string]string{"App": "blog"})
	if _, err := e.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: shop[:1]}); err != nil {
		t.Fatal(err)
	}
	url := e.sqsQueues(ctx, "jobs")
	now := e.at(0)
	ev := writeFile(t, "release.json", fmt.Sprintf(`{"version":"0","id":"release-1-4-0","detail-type":"snapfleet.BackupNow",
"source":"release.pipeline","account":%q,"time":"2026-11-22T05:00:00Z","region":%q,"resources":[],
"detail":{"accounts":[%q],"regions":[%q],"tags":{"App":"shop"}}}`, motoAccount, mototest.Region, motoAccount, mototest.Region))
	p := e.jsonCLI(0, "plan", "--queue", url, "--now", now, "--event", ev)
	if num(t, p, "instances") != 2 || num(t, p, "enqueued") != 4 {
		t.Fatalf("plan %v, want 4 jobs for 2 instances", p)
	}
	if w := e.workers(1, url, "--now", now, "--allow-clock-skew"); w["created"] != 4 || w["dead_lettered"] != 0 {
		t.Fatalf("workers %v, want 4 created", w)
	}
	byVol := e.eventSnapshots(ctx)
	for _, id := range shop {
		for _, vol := range shopVols[id] {
			if len(byVol[vol]) != 1 || tagsOf(byVol[vol][0])[tag.Job] != job.EventKey(motoAccount, mototest.Region, vol, "daily", "release-1-4-0") {
				t.Errorf("volume %s of %s: snapshots %v, want 1 with the event's key", vol, id, byVol[vol])
			}
		}
	}
	for _, vol := range otherVols[other[0]] {
		if len(byVol[vol]) != 0 {
			t.Errorf("unselected volume %s has snapshots", vol)
		}
	}
	e.queueEmpty(ctx, url)

	// An account the config does not reach is bad input: exit 2, nothing enqueued.
	foreign := writeFile(t, "foreign.json", strings.Replace(mustRead(t, ev), `"accounts":["`+motoAccount+`"]`, `"accounts":["222222222222"]`, 1))
	r := e.cli("plan", "--queue", url, "--now", now, "--event", foreign, "--config", e.config)
	if r.code != 2 || !strings.Contains(r.stderr, "222222222222") {
		t.Errorf("foreign account: exit %d, stderr %s", r.code, tail(r.stderr))
	}
	e.queueEmpty(ctx, url)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEventMalformed: a bad --event file is exit 2 with one line naming the file.
func TestEventMalformed(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"not-json.json":   `snapshot please`,
		"no-id.json":      `{"detail-type":"snapfleet.BackupNow","detail":{"tags":{"App":"shop"}}}`,
		"unknown.json":    `{"id":"x1","detail-type":"EBS Snapshot Notification","detail":{}}`,
		"bad-detail.json": `{"id":"x1","detail-type":"snapfleet.BackupNow","detail":{"tagz":{}}}`,
	} {
		path := writeFile(t, name, doc)
		cmd := newE2ECmd(path)
		r := runBare(t, cmd...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(lines[0], path) || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q: want exit 2 and one line naming the file", name, r.code, r.stdout, r.stderr)
		}
	}
	r := runBare(t, newE2ECmd(filepath.Join(t.TempDir(), "missing.json"))...)
	if r.code != 2 || !strings.Contains(r.stderr, "missing.json") {
		t.Errorf("missing file: exit %d, stderr %q", r.code, r.stderr)
	}
}

func newE2ECmd(path string) []string {
	return []string{"plan", "--queue", "file:" + filepath.Join(os.TempDir(), "never-opened.db"), "--event", path}
}

// runBare runs the binary with an AWS endpoint where nothing listens: any AWS call fails,
// so an exit 2 proves the input was refused before one.
func runBare(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, []string{"AWS_ENDPOINT_URL=http://127.0.0.1:9", "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_EC2_METADATA_DISABLED=true"}, args...)
}

// TestOutcomeWorker: with events.bus set, `snapfleet work` publishes each dead letter as
// snapfleet.JobFailed and its counts as snapfleet.WorkSummary when it stops.
func TestOutcomeWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.config = writeFile(t, "events.yaml", testConfig+"events:\n  bus: ops\n")
	read := e.busQueue(ctx, "ops")
	url := e.sqsQueues(ctx, "jobs")
	poison := `{"v":1,"kind":"snapshot.create","key":"oops"}`
	if _, err := e.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(poison)}); err != nil {
		t.Fatal(err)
	}
	if w := e.workers(1, url); w["dead_lettered"] != 1 || w["processed"] != 1 {
		t.Fatalf("worker %v, want the poison message dead-lettered", w)
	}
	got := read(2)
	byType := map[string]map[string]any{}
	for _, ev := range got {
		byType[ev["detail-type"].(string)] = ev["detail"].(map[string]any)
	}
	if d := byType["snapfleet.JobFailed"]; d == nil || d["reason"] != "invalid_message" || d["message"] != poison || d["error"] == "" {
		t.Errorf("JobFailed detail %v", d)
	}
	if d := byType["snapfleet.WorkSummary"]; d == nil || num(t, d, "dead_lettered") != 1 {
		t.Errorf("WorkSummary detail %v", d)
	}
	if len(got) != 2 {
		t.Errorf("%d events on the bus, want 2", len(got))
	}
}

// TestOutcomeRun: `snapfleet run` with events.bus set publishes its plan summary as
// snapfleet.PlanSummary and its counts as snapfleet.WorkSummary.
func TestOutcomeRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.config = writeFile(t, "events.yaml", testConfig+"events:\n  bus: ops\n")
	read := e.busQueue(ctx, "ops")
	ids, _ := e.instancesWithData(ctx, 2, map[string]string{"AutoBackup": "true"})
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	r := e.jsonCLI(0, "run", "--queue", db, "--now", e.at(0), "--allow-clock-skew")
	created := num(t, r, "work.created")
	if created < 2*len(ids) {
		t.Fatalf("run %v, want at least %d created", r, 2*len(ids))
	}
	byType := map[string]map[string]any{}
	for _, ev := range read(2) {
		byType[ev["detail-type"].(string)] = ev["detail"].(map[string]any)
	}
	if d := byType["snapfleet.PlanSummary"]; d == nil || num(t, d, "enqueued") != num(t, r, "plan.enqueued") || d["run_id"] == "" {
		t.Errorf("PlanSummary detail %v, run %v", d, r)
	}
	if d := byType["snapfleet.WorkSummary"]; d == nil || num(t, d, "created") != created {
		t.Errorf("WorkSummary detail %v, run %v", d, r)
	}
}
