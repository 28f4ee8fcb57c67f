package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// lambdaConfig is the config of the Lambda functions, given inline as in deploy/hub.yaml.
const lambdaConfig = `
policies:
  - name: daily
    select: {instance_states: [running]}
    every: 24h
    retain: {max_age: 30d, min_keep: 1}
`

// runtimeAPI is a minimal AWS Lambda Runtime API (2018-06-01): it hands out one event and
// records the function's answer, as the Lambda service does for a provided.al2023
// bootstrap.
type runtimeAPI struct {
	srv    *httptest.Server
	events chan string
	answer chan lambdaAnswer
}

type lambdaAnswer struct {
	kind string // "response" or "error"
	body string
}

func newRuntimeAPI(t *testing.T) *runtimeAPI {
	t.Helper()
	r := &runtimeAPI{events: make(chan string, 1), answer: make(chan lambdaAnswer, 1)}
	n := 0
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, req *http.Request) {
		select {
		case ev := <-r.events:
			n++
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", "req-"+strconv.Itoa(n))
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(60*time.Second).UnixMilli(), 10))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:snapfleet")
			w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
			io.WriteString(w, ev)
		case <-req.Context().Done():
		}
	})
	for _, kind := range []string{"response", "error"} {
		mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/"+kind, func(w http.ResponseWriter, req *http.Request) {
			b, _ := io.ReadAll(req.Body)
			w.WriteHeader(http.StatusAccepted)
			r.answer <- lambdaAnswer{kind: kind, body: string(b)}
		})
	}
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

// invoke hands ev to the function and waits for its answer.
func (r *runtimeAPI) invoke(t *testing.T, ev string) lambdaAnswer {
	t.Helper()
	r.events <- ev
	select {
	case a := <-r.answer:
		return a
	case <-time.After(60 * time.Second):
		t.Fatal("the function did not answer in 60 s")
		return lambdaAnswer{}
	}
}

// startLambda runs the snapfleet binary as the Lambda runtime would (no arguments,
// AWS_LAMBDA_RUNTIME_API set) with env added, and stops it by PID when the test ends.
func startLambda(t *testing.T, moto *mototest.Server, api *runtimeAPI, env ...string) *bytes.Buffer {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append(append(os.Environ(), moto.Env()...), envRuntimeAPI+"="+strings.TrimPrefix(api.srv.URL, "http://"))
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &stderr
}

// TestLambdaBinary runs the built binary in Lambda mode against a Runtime API: the
// planner function answers a scheduled event with the plan summary; the worker function
// answers the SQS event of those jobs with no batch item failure, and the snapshots exist.
func TestLambdaBinary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	moto := mototest.Start(t)
	awsCfg := moto.AWSConfig(t)
	ec2c, sqsc := ec2.NewFromConfig(awsCfg), sqs.NewFromConfig(awsCfg)

	testfleet.New(t, moto).Instances(ctx, 3, 0, nil)
	dlq, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("lambda-jobs-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	arnOf := func(url *string) string {
		out, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Attributes["QueueArn"]
	}
	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("lambda-jobs"), Attributes: map[string]string{
		"VisibilityTimeout": "5", "RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, arnOf(dlq.QueueUrl)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	queueURL, queueARN := aws.ToString(q.QueueUrl), arnOf(q.QueueUrl)
	common := []string{"SNAPFLEET_QUEUE=" + queueURL, "SNAPFLEET_CONFIG_YAML=" + lambdaConfig}

	planAPI := newRuntimeAPI(t)
	startLambda(t, moto, planAPI, append(common, "SNAPFLEET_LAMBDA=plan")...)
	a := planAPI.invoke(t, `{"version":"0","id":"e1","detail-type":"Scheduled Event","source":"aws.scheduler","time":"2026-11-22T01:00:00Z","detail":{}}`)
	var sum map[string]any
	if a.kind != "response" || json.Unmarshal([]byte(a.body), &sum) != nil {
		t.Fatalf("planner function answered %s: %s", a.kind, a.body)
	}
	if sum["snapshot_jobs"] != 3.0 || sum["enqueued"] != 3.0 || sum["errors"] != 0.0 {
		t.Fatalf("plan summary = %s, want 3 snapshot jobs enqueued", a.body)
	}
	// An event the planner does not handle is an invocation error naming it, not a full plan;
	// a BackupNow event without an id is an error naming the missing id.
	if a := planAPI.invoke(t, `{"detail-type":"Some Other Event","source":"aws.ec2","detail":{}}`); a.kind != "error" || !strings.Contains(a.body, "Some Other Event") {
		t.Errorf("unknown event answered %s: %s; want an error naming its detail-type", a.kind, a.body)
	}
	if a := planAPI.invoke(t, `{"detail-type":"snapfleet.BackupNow","source":"snapfleet","detail":{}}`); a.kind != "error" || !strings.Contains(a.body, "invalid event: id") {
		t.Errorf("BackupNow without an id answered %s: %s; want an error naming the id", a.kind, a.body)
	}

	out, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 2, VisibilityTimeout: 60,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
	if err != nil || len(out.Messages) != 3 {
		t.Fatalf("received %d jobs (%v), want 3", len(out.Messages), err)
	}
	var recs []map[string]any
	for _, m := range out.Messages {
		recs = append(recs, map[string]any{
			"messageId": aws.ToString(m.MessageId), "receiptHandle": aws.ToString(m.ReceiptHandle), "body": aws.ToString(m.Body),
			"attributes": m.Attributes, "messageAttributes": map[string]any{}, "md5OfBody": aws.ToString(m.MD5OfBody),
			"eventSource": "aws:sqs", "eventSourceARN": queueARN, "awsRegion": mototest.Region,
		})
	}
	ev, _ := json.Marshal(map[string]any{"Records": recs})

	workAPI := newRuntimeAPI(t)
	startLambda(t, moto, workAPI, append(common, "SNAPFLEET_LAMBDA=work")...)
	a = workAPI.invoke(t, string(ev))
	if a.kind != "response" || strings.TrimSpace(a.body) != `{"batchItemFailures":[]}` {
		t.Fatalf("worker function answered %s: %s; want no batch item failures", a.kind, a.body)
	}
	snaps, err := ec2c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{"snapfleet:policy"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps.Snapshots) != 3 {
		t.Errorf("%d managed snapshots after the worker function, want 3", len(snaps.Snapshots))
	}
}

// TestLambdaModeUsage: Lambda mode with a bad environment exits 2 with one line naming
// the variable, before serving anything.
func TestLambdaModeUsage(t *testing.T) {
	t.Parallel()
	api := newRuntimeAPI(t)
	host := envRuntimeAPI + "=" + strings.TrimPrefix(api.srv.URL, "http://")
	cfg := filepath.Join(t.TempDir(), "missing.yaml")
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"lambda"}, []string{envRuntimeAPI + "="}, envRuntimeAPI + " is not set"},
		{[]string{"lambda", "extra"}, []string{host}, "takes no arguments"},
		{nil, []string{host, "SNAPFLEET_QUEUE=file:x.db"}, "SNAPFLEET_LAMBDA is not set"},
		{nil, []string{host, "SNAPFLEET_LAMBDA=plan"}, "SNAPFLEET_QUEUE is not set"},
		{nil, []string{host, "SNAPFLEET_LAMBDA=work", "SNAPFLEET_QUEUE=file:x.db", "SNAPFLEET_CONFIG=" + cfg}, "SNAPFLEET_CONFIG"},
		{nil, []string{host, "SNAPFLEET_LAMBDA=work", "SNAPFLEET_QUEUE=ftp://x"}, "bad queue URL"},
	} {
		r := runCLI(t, append([]string{"SNAPFLEET_LAMBDA=", "SNAPFLEET_QUEUE=", "SNAPFLEET_CONFIG=", "SNAPFLEET_CONFIG_YAML="}, tc.env...), tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != exitUsage || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("snapfleet %v with %v: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args, tc.env, r.code, r.stderr, tc.want)
		}
	}
}
