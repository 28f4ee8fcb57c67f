package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// fifoQueues makes a FIFO jobs queue whose RedrivePolicy names a FIFO dead-letter queue.
func (e *e2e) fifoQueues(ctx context.Context, name string) string {
	t := e.t
	t.Helper()
	fifo := map[string]string{"FifoQueue": "true"}
	dlq, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq.fifo"), Attributes: fifo})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + ".fifo"), Attributes: map[string]string{
		"FifoQueue": "true", "VisibilityTimeout": "10",
		"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, attrs.Attributes["QueueArn"]),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(q.QueueUrl)
}

// TestPipelineFIFO: on a FIFO queue the planner deduplicates by job key, so two plans
// before any worker ran enqueue each job once; workers and their results are unchanged.
func TestPipelineFIFO(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	f := e.buildFleet(ctx)
	url := e.fifoQueues(ctx, "jobs")
	want := len(f.selected)
	now := e.at(0)

	for i := 0; i < 2; i++ {
		if p := e.jsonCLI(0, "plan", "--queue", url, "--now", now); num(t, p, "enqueued") != want {
			t.Fatalf("plan %d: %v, want %d enqueued", i+1, p, want)
		}
	}
	out, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]); n != want {
		t.Fatalf("FIFO queue holds %d messages after two plans, want %d (deduplicated by job key)", n, want)
	}
	for _, m := range e.fifoPeek(ctx, url, want) {
		if m.job.Kind != job.KindCreate || m.group != motoAccount+"/"+mototest.Region+"/"+m.job.Volume || m.dedup != m.job.Key {
			t.Errorf("%s job %s: MessageGroupId %q, MessageDeduplicationId %q; want account/region/volume and the job key", m.job.Kind, m.job.Key, m.group, m.dedup)
		}
	}
	if w := e.workers(2, url, "--now", now, "--allow-clock-skew"); w["created"] != want || w["dead_lettered"] != 0 {
		t.Fatalf("workers: %v, want %d created", w, want)
	}
	e.checkOnePerVolume(ctx, f)
	e.queueEmpty(ctx, url)
}

// TestFIFOInstanceGroup: an instance job (consistency: instance) goes to the message group
// of its instance, account/region/i-…, since it covers all the instance's volumes, and is
// deduplicated by its key.
func TestFIFOInstanceGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.config = writeFile(t, "crash.yaml", crashPolicy)
	ids, _ := e.instancesWithData(ctx, 2, nil)
	url := e.fifoQueues(ctx, "jobs")
	if p := e.jsonCLI(0, "plan", "--queue", url, "--now", e.at(0)); num(t, p, "enqueued") != len(ids) {
		t.Fatalf("plan: %v, want %d enqueued", p, len(ids))
	}
	groups := map[string]bool{}
	for _, m := range e.fifoPeek(ctx, url, len(ids)) {
		if m.job.Kind != job.KindCreateInstance || m.group != motoAccount+"/"+mototest.Region+"/"+m.job.Instance || m.dedup != m.job.Key {
			t.Errorf("%s job %s: MessageGroupId %q, MessageDeduplicationId %q; want account/region/instance and the job key", m.job.Kind, m.job.Key, m.group, m.dedup)
		}
		groups[m.group] = true
	}
	for _, id := range ids {
		if !groups[motoAccount+"/"+mototest.Region+"/"+id] {
			t.Errorf("no message in the group of instance %s: groups %v", id, groups)
		}
	}
}

// fifoMessage is a job message as received from a FIFO queue, with its FIFO ids.
type fifoMessage struct {
	job          job.Job
	group, dedup string
}

// fifoPeek receives the n messages of the FIFO queue at url with their MessageGroupId and
// MessageDeduplicationId, then makes them visible again.
func (e *e2e) fifoPeek(ctx context.Context, url string, n int) []fifoMessage {
	t := e.t
	t.Helper()
	var got []fifoMessage
	var receipts []string
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
				sqstypes.MessageSystemAttributeNameMessageGroupId, sqstypes.MessageSystemAttributeNameMessageDeduplicationId,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			j, err := job.Decode([]byte(aws.ToString(m.Body)))
			if err != nil {
				t.Fatalf("message %s: %v", aws.ToString(m.MessageId), err)
			}
			got = append(got, fifoMessage{job: j,
				group: m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)],
				dedup: m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageDeduplicationId)]})
			receipts = append(receipts, aws.ToString(m.ReceiptHandle))
		}
	}
	for _, r := range receipts {
		if _, err := e.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: &r, VisibilityTimeout: 0}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != n {
		t.Fatalf("received %d messages from %s, want %d", len(got), url, n)
	}
	return got
}
