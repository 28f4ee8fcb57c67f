package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

const lambdaTestConfig = `
policies:
  - name: daily
    select: {instance_states: [running]}
    every: 24h
    retain: {max_age: 30d, min_keep: 1}
`

// scheduledEvent is what EventBridge Scheduler delivers with the input of deploy/hub.yaml,
// its context attributes filled in.
const scheduledEvent = `{
  "version": "0",
  "id": "6c3c8a04-1d8e-4a5c-9a61-0b9e0a3f7d11",
  "detail-type": "Scheduled Event",
  "source": "aws.scheduler",
  "account": "123456789012",
  "time": "2026-11-22T01:00:00Z",
  "region": "us-east-1",
  "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/snapfleet-plan"],
  "detail": {}
}`

// world is one test's moto, clients and queues.
type world struct {
	t        *testing.T
	moto     *mototest.Server
	ec2      *ec2.Client
	sqs      *sqs.Client
	queueURL string
	queueARN string
	dlqURL   string
	cfg      *config.Config
}

func newWorld(t *testing.T) *world {
	t.Helper()
	s := mototest.Start(t)
	awsCfg := s.AWSConfig(t)
	cfg, err := config.Parse(strings.NewReader(lambdaTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, moto: s, ec2: ec2.NewFromConfig(awsCfg), sqs: sqs.NewFromConfig(awsCfg), cfg: cfg}
	ctx := context.Background()
	dlq, err := w.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("jobs-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	w.dlqURL = aws.ToString(dlq.QueueUrl)
	dlqARN := w.arn(ctx, w.dlqURL)
	q, err := w.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("jobs"), Attributes: map[string]string{
		"VisibilityTimeout": "5",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, dlqARN),
	}})
	if err != nil {
		t.Fatal(err)
	}
	w.queueURL = aws.ToString(q.QueueUrl)
	w.queueARN = w.arn(ctx, w.queueURL)
	return w
}

func (w *world) arn(ctx context.Context, url string) string {
	w.t.Helper()
	out, err := w.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		w.t.Fatal(err)
	}
	return out.Attributes["QueueArn"]
}

// function builds a handler of mode on the world's moto, with optional fault hooks.
func (w *world) function(mode string, opts ...func(*middleware.Stack) error) *lambdaFunction {
	w.t.Helper()
	f, err := newLambdaFunction(context.Background(), lambdaSettings{
		Mode: mode, Config: w.cfg, Queue: w.queueURL, AWS: w.moto.AWSConfig(w.t),
		Visibility: 5 * time.Second, APIOptions: opts, Log: zerolog.New(os.Stderr).With().Timestamp().Logger(),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { f.Close() })
	return f
}

// instances runs n instances and returns their root volumes.
func (w *world) instances(ctx context.Context, n int) []string {
	w.t.Helper()
	var vols []string
	for _, in := range testfleet.New(w.t, w.moto).Instances(ctx, n, 0, nil) {
		vols = append(vols, in.Root)
	}
	return vols
}

// managed returns the managed snapshots by their snapfleet:volume tag.
func (w *world) managed(ctx context.Context) map[string][]ec2types.Snapshot {
	w.t.Helper()
	out, err := w.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil {
		w.t.Fatal(err)
	}
	m := map[string][]ec2types.Snapshot{}
	for _, s := range out.Snapshots {
		tags := map[string]string{}
		for _, tg := range s.Tags {
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		if tags[tag.Policy] != "" {
			m[tags[tag.Volume]] = append(m[tags[tag.Volume]], s)
		}
	}
	return m
}

// receive takes every visible message of url (up to want) and returns the SQS event the
// Lambda service would deliver for them, as JSON.
func (w *world) receive(ctx context.Context, url, arn string, want int) []byte {
	w.t.Helper()
	type record struct {
		MessageID         string            `json:"messageId"`
		ReceiptHandle     string            `json:"receiptHandle"`
		Body              string            `json:"body"`
		Attributes        map[string]string `json:"attributes"`
		MessageAttributes map[string]any    `json:"messageAttributes"`
		MD5OfBody         string            `json:"md5OfBody"`
		EventSource       string            `json:"eventSource"`
		EventSourceARN    string            `json:"eventSourceARN"`
		AWSRegion         string            `json:"awsRegion"`
	}
	var recs []record
	deadline := time.Now().Add(10 * time.Second)
	for len(recs) < want && time.Now().Before(deadline) {
		out, err := w.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 30,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			w.t.Fatal(err)
		}
		for _, m := range out.Messages {
			recs = append(recs, record{
				MessageID: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
				Body: aws.ToString(m.Body), Attributes: m.Attributes, MessageAttributes: map[string]any{},
				MD5OfBody: aws.ToString(m.MD5OfBody), EventSource: "aws:sqs", EventSourceARN: arn, AWSRegion: mototest.Region,
			})
		}
	}
	if len(recs) != want {
		w.t.Fatalf("received %d messages from %s, want %d", len(recs), url, want)
	}
	b, err := json.Marshal(map[string]any{"Records": recs})
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) work(ctx context.Context, f *lambdaFunction, payload []byte) events.SQSEventResponse {
	w.t.Helper()
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		w.t.Fatal(err)
	}
	resp, err := f.Work(ctx, ev)
	if err != nil {
		w.t.Fatalf("worker handler: %v", err)
	}
	// What the event source mapping does next: delete every record not reported failed.
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, r := range ev.Records {
		if !failed[r.MessageId] {
			if _, err := w.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &w.queueURL, ReceiptHandle: aws.String(r.ReceiptHandle)}); err != nil {
				w.t.Fatalf("deleting record %s as the event source mapping would: %v", r.MessageId, err)
			}
		}
	}
	return resp
}

// counts reads the queue's approximate message counts: visible and in flight.
func (w *world) counts(ctx context.Context, url string) (visible, inFlight string) {
	w.t.Helper()
	out, err := w.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		w.t.Fatal(err)
	}
	return out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"]
}

// TestScheduledPlanThenSQSBatch drives both handlers with real payloads: a scheduled
// event plans one create job per volume; those messages, delivered as one SQS event,
// create one snapshot per volume and no batch item failure; the same batch delivered
// again creates nothing more.
func TestScheduledPlanThenSQSBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	vols := w.instances(ctx, 4)

	sum, err := w.function(lambdaModePlan).Plan(ctx, json.RawMessage(scheduledEvent))
	if err != nil {
		t.Fatalf("planner handler: %v", err)
	}
	if sum.SnapshotJobs != 4 || sum.Enqueued != 4 || sum.Errors != 0 || sum.Accounts != 1 || sum.Regions != 1 {
		t.Fatalf("plan summary = %+v, want 4 snapshot jobs enqueued in 1 account and region", sum)
	}
	// The summary is the invocation's result: the JSON of `snapfleet plan --output json`.
	out, err := json.Marshal(sum)
	if err != nil || !strings.Contains(string(out), `"snapshot_jobs":4`) {
		t.Fatalf("summary JSON %s (%v) lacks snapshot_jobs", out, err)
	}

	batch := w.receive(ctx, w.queueURL, w.queueARN, 4)
	work := w.function(lambdaModeWork)
	if resp := w.work(ctx, work, batch); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch item failures = %v, want none", resp.BatchItemFailures)
	}
	got := w.managed(ctx)
	for _, v := range vols {
		if len(got[v]) != 1 {
			t.Errorf("volume %s has %d managed snapshots, want 1", v, len(got[v]))
		}
	}
	// A redelivered batch (the event source mapping retried it) finds the snapshots.
	if resp := w.work(ctx, work, batch); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("redelivered batch: failures = %v, want none", resp.BatchItemFailures)
	}
	for v, snaps := range w.managed(ctx) {
		if len(snaps) != 1 {
			t.Errorf("after redelivery volume %s has %d managed snapshots, want 1", v, len(snaps))
		}
	}
	if visible, inFlight := w.counts(ctx, w.queueURL); visible != "0" || inFlight != "0" {
		t.Errorf("jobs queue: %s visible, %s in flight; want empty", visible, inFlight)
	}
	// The response the Lambda service reads: an empty list, not null.
	if b, _ := json.Marshal(w.work(ctx, work, batch)); string(b) != `{"batchItemFailures":[]}` {
		t.Errorf("response JSON = %s", b)
	}
}

// TestPoisonAndThrottledRecords sends a batch of a good job, a poison message and a job
// whose CreateSnapshot is throttled (SnapshotCreationPerVolumeRateExceeded). The poison
// message goes to the DLQ with invalid_message — gone from the jobs queue, so never
// retried — and is reported as a batch item failure for the invocation's metrics; the
// throttled record is the other batch item failure, hidden on the queue for at least the
// code's 15 s, never dead-lettered; the good record is not reported.
func TestPoisonAndThrottledRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	vols := w.instances(ctx, 2)
	good, throttled := vols[0], vols[1]

	var mu sync.Mutex
	creates := map[string]int{}
	hidden := map[string]int32{} // receipt → the last visibility timeout the function set
	throttle := func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("lambdaTestThrottle",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if c, ok := in.Parameters.(*sqs.ChangeMessageVisibilityInput); ok {
					mu.Lock()
					hidden[aws.ToString(c.ReceiptHandle)] = c.VisibilityTimeout
					mu.Unlock()
				}
				if c, ok := in.Parameters.(*ec2.CreateSnapshotInput); ok && awsmiddleware.GetOperationName(ctx) == "CreateSnapshot" {
					mu.Lock()
					creates[aws.ToString(c.VolumeId)]++
					mu.Unlock()
					if aws.ToString(c.VolumeId) == throttled {
						return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "SnapshotCreationPerVolumeRateExceeded", Message: "injected by the test"}
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}

	desc, err := w.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: vols})
	if err != nil {
		t.Fatal(err)
	}
	instance := map[string]string{}
	for _, v := range desc.Volumes {
		instance[aws.ToString(v.VolumeId)] = aws.ToString(v.Attachments[0].InstanceId)
	}
	body := func(vol string) string {
		j := job.Job{V: 1, Kind: job.KindCreate, Key: mototest.Account + "/us-east-1/" + vol + "/daily/2026-11-22T00:00:00Z",
			Account: mototest.Account, Region: mototest.Region, Policy: "daily", Volume: vol, Instance: instance[vol],
			Device: "/dev/xvda", Run: "test-run", PlannedAt: time.Now().UTC().Truncate(time.Second)}
		b, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	poison := `{"v":1,"kind":"snapshot.create","key":"x","account":"not-an-account"}`
	for _, b := range []string{body(good), poison, body(throttled)} {
		if _, err := w.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &w.queueURL, MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	batch := w.receive(ctx, w.queueURL, w.queueARN, 3)
	var ev events.SQSEvent
	if err := json.Unmarshal(batch, &ev); err != nil {
		t.Fatal(err)
	}
	var throttledID, throttledReceipt, poisonID string
	for _, r := range ev.Records {
		switch {
		case r.Body == poison:
			poisonID = r.MessageId
		case strings.Contains(r.Body, throttled):
			throttledID, throttledReceipt = r.MessageId, r.ReceiptHandle
		}
	}

	start := time.Now()
	resp := w.work(ctx, w.function(lambdaModeWork, throttle), batch)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("batch took %s: a throttled record must be snoozed on the queue, not waited for", took)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	slices.Sort(failed)
	want := []string{throttledID, poisonID}
	slices.Sort(want)
	if !slices.Equal(failed, want) {
		t.Fatalf("batch item failures = %v, want the throttled record %s and the poison record %s", failed, throttledID, poisonID)
	}

	got := w.managed(ctx)
	if len(got[good]) != 1 || len(got[throttled]) != 0 {
		t.Errorf("managed snapshots: good volume %d, throttled volume %d; want 1 and 0", len(got[good]), len(got[throttled]))
	}
	mu.Lock()
	if creates[throttled] != 1 {
		t.Errorf("CreateSnapshot of the throttled volume called %d times, want 1 (no in-process retry for a 15 s code)", creates[throttled])
	}
	// The visibility the function left the throttled message with (its last
	// ChangeMessageVisibility, after any heartbeat): at least the code's 15 s.
	if v, ok := hidden[throttledReceipt]; !ok || v < 15 {
		t.Errorf("throttled message hidden for %d s (set: %v), want at least 15 s", v, ok)
	}
	mu.Unlock()

	// The poison message is in the DLQ with its reason, and only it.
	out, err := w.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &w.dlqURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != poison {
		t.Fatalf("DLQ holds %d messages, want the poison message: %+v", len(out.Messages), out.Messages)
	}
	if r := out.Messages[0].MessageAttributes["snapfleet.reason"]; aws.ToString(r.StringValue) != "invalid_message" {
		t.Errorf("DLQ reason = %q, want invalid_message", aws.ToString(r.StringValue))
	}
	// The record's ApproximateFirstReceiveTimestamp goes with it: the job's first attempt.
	first, err := time.Parse(time.RFC3339Nano, aws.ToString(out.Messages[0].MessageAttributes["snapfleet.first_received_at"].StringValue))
	if err != nil || time.Since(first) > time.Minute {
		t.Errorf("DLQ first receive = %s (%v), want the record's first receive", first, err)
	}
	// And moto holds it to that: the throttled message waits on the jobs queue, hidden
	// beyond the queue's 5 s default.
	time.Sleep(6 * time.Second)
	if visible, inFlight := w.counts(ctx, w.queueURL); visible != "0" || inFlight != "1" {
		t.Errorf("jobs queue after 6 s: %s visible, %s in flight; want the throttled job hidden", visible, inFlight)
	}
}

// TestPlannerEvents: an empty or {} payload is a manual run; EC2 state changes and BackupNow
// are events; any other event is refused, naming it, and plans nothing.
func TestPlannerEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		payload, kind, err string
	}{
		{"", triggerManual, ""},
		{"null", triggerManual, ""},
		{"{}", triggerManual, ""},
		{scheduledEvent, triggerSchedule, ""},
		{`{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","detail":{}}`, triggerSchedule, ""},
		{`{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"instance-id":"i-0abc","state":"stopped"}}`, triggerEvent, ""},
		{`{"detail-type":"snapfleet.BackupNow","source":"snapfleet","detail":{}}`, triggerEvent, ""},
		{`{"detail-type":"EBS Snapshot Notification","source":"aws.ec2","detail":{}}`, "", "EBS Snapshot Notification"},
		{`[1,2]`, "", "reading the planner's event"},
	} {
		tr, err := parseTrigger([]byte(tc.payload))
		var kind string
		if err == nil {
			kind, err = tr.Kind()
		}
		if kind != tc.kind || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("payload %s: kind %q, err %v; want %q, error containing %q", tc.payload, kind, err, tc.kind, tc.err)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	ok := map[string]string{envMode: "work", envQueue: "https://sqs.us-east-1.amazonaws.com/123456789012/jobs", envConfigYAML: lambdaTestConfig}
	with := func(k, v string) func(string) string {
		return func(name string) string {
			if name == k {
				return v
			}
			return ok[name]
		}
	}
	s, err := lambdaFromEnv(with("", ""))
	if err != nil || s.Mode != lambdaModeWork || s.Config == nil {
		t.Fatalf("lambdaFromEnv = %+v, %v", s, err)
	}
	if _, ok := s.Config.Policy("daily"); !ok {
		t.Errorf("inline config not read: %+v", s.Config)
	}
	for _, tc := range []struct{ k, v, want string }{
		{envMode, "", envMode + " is not set"},
		{envMode, "both", envMode + `="both"`},
		{envQueue, "", envQueue + " is not set"},
		{envConfig, "/etc/snapfleet.yaml", "both " + envConfig},
		{envConfigYAML, "policies: [{name: BAD}]", envConfigYAML},
		{envConcurrency, "0", envConcurrency},
		{envVisibility, "5ms", envVisibility},
		{envNow, "yesterday", envNow},
		{envAllowClockSkew, "sure", envAllowClockSkew},
		{envNow, "9999-12-31T23:59:59Z", envNow + `="9999-12-31T23:59:59Z": outside`},
		{envNow, "0000-01-01T00:00:00Z", envNow + `="0000-01-01T00:00:00Z": outside`},
		{envLogLevel, "loud", envLogLevel},
	} {
		if _, err := lambdaFromEnv(with(tc.k, tc.v)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: err %v, want one containing %q", tc.k, tc.v, err, tc.want)
		}
	}
}

// TestWrongQueue: records from another queue than SNAPFLEET_QUEUE fail the invocation
// (a wiring mistake), and nothing is handled.
func TestWrongQueue(t *testing.T) {
	t.Parallel()
	f := &lambdaFunction{s: lambdaSettings{Queue: "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"}}
	if err := f.sameQueue("arn:aws:sqs:us-east-1:123456789012:jobs"); err != nil {
		t.Errorf("same queue refused: %v", err)
	}
	for _, arn := range []string{"arn:aws:sqs:us-east-1:123456789012:other", "arn:aws:sqs:us-east-1:210987654321:jobs", "garbage"} {
		if err := f.sameQueue(arn); err == nil {
			t.Errorf("records of %s accepted for queue %s", arn, f.s.Queue)
		}
	}
	_, err := f.Work(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "1", EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:other"}}})
	if err == nil {
		t.Error("Work accepted records of another queue")
	}
}
