package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
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
	if w := e.workers(2, url, "--now", now); w["created"] != want || w["dead_lettered"] != 0 {
		t.Fatalf("workers: %v, want %d created", w, want)
	}
	e.checkOnePerVolume(ctx, f)
	e.queueEmpty(ctx, url)
}
