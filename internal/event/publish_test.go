package event

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

var _ PutEventsAPI = (*eventbridge.Client)(nil)

var busSeq atomic.Int64

// busToQueue creates a bus and a rule sending every snapfleet event on it to a new SQS
// queue, and returns the bus name and a function reading the queue's events.
func busToQueue(t *testing.T, cfg aws.Config) (string, func(want int) []map[string]any) {
	t.Helper()
	ctx := context.Background()
	n := busSeq.Add(1)
	bus := fmt.Sprintf("ops-%d", n)
	eb, sq := eventbridge.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatal(err)
	}
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(bus + "-events")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(bus + "-rule"), EventBusName: aws.String(bus),
		EventPattern: aws.String(`{"source":["snapfleet"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(bus + "-rule"), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(attrs.Attributes["QueueArn"])}}}); err != nil {
		t.Fatal(err)
	}
	return bus, func(want int) []map[string]any {
		t.Helper()
		var got []map[string]any
		deadline := time.Now().Add(10 * time.Second)
		for len(got) < want && time.Now().Before(deadline) {
			out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range out.Messages {
				var ev map[string]any
				if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
					t.Fatalf("event on the queue: %v: %s", err, aws.ToString(m.Body))
				}
				got = append(got, ev)
				_, _ = sq.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle})
			}
		}
		return got
	}
}

func TestPublishThroughMoto(t *testing.T) {
	t.Parallel()
	srv := mototest.Start(t)
	cfg := srv.AWSConfig(t)
	bus, read := busToQueue(t, cfg)
	p := NewPublisher(cfg, bus)
	var outs []Outcome
	outs = append(outs, Outcome{DetailType: DetailPlanSummary, Detail: map[string]any{"run_id": "r1", "enqueued": 3}})
	for i := range 11 { // two PutEvents calls
		outs = append(outs, Outcome{DetailType: DetailJobFailed, Detail: JobFailed{Key: fmt.Sprintf("k%d", i), Reason: "invalid_message", Error: "bad", Attempts: 1}})
	}
	if err := p.Publish(context.Background(), outs...); err != nil {
		t.Fatal(err)
	}
	got := read(12)
	if len(got) != 12 {
		t.Fatalf("%d events arrived, want 12", len(got))
	}
	types := map[string]int{}
	for _, ev := range got {
		types[ev["detail-type"].(string)]++
		if ev["source"] != Source {
			t.Errorf("source %v", ev["source"])
		}
		d := ev["detail"].(map[string]any)
		if ev["detail-type"] == DetailPlanSummary && d["run_id"] != "r1" {
			t.Errorf("summary detail %v", d)
		}
		if ev["detail-type"] == DetailJobFailed && d["reason"] != "invalid_message" {
			t.Errorf("job failed detail %v", d)
		}
	}
	if types[DetailPlanSummary] != 1 || types[DetailJobFailed] != 11 {
		t.Errorf("detail-types %v", types)
	}
	var none *Publisher
	if err := none.Publish(context.Background(), outs...); err != nil {
		t.Errorf("nil publisher: %v", err)
	}
	if NewPublisher(cfg, "") != nil {
		t.Error("NewPublisher with no bus is not nil")
	}
}

type rejecting struct{ calls int }

func (r *rejecting) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	r.calls++
	out := &eventbridge.PutEventsOutput{FailedEntryCount: 1}
	for i := range in.Entries {
		e := ebtypes.PutEventsResultEntry{EventId: aws.String("ok")}
		if i == 0 {
			e = ebtypes.PutEventsResultEntry{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("try later")}
		}
		out.Entries = append(out.Entries, e)
	}
	return out, nil
}

func TestPublishRejectedEntries(t *testing.T) {
	t.Parallel()
	api := &rejecting{}
	p := &Publisher{API: api, Bus: "b"}
	outs := make([]Outcome, 15)
	for i := range outs {
		outs[i] = Outcome{DetailType: DetailJobFailed, Detail: JobFailed{}}
	}
	err := p.Publish(context.Background(), outs...)
	if err == nil || api.calls != 2 {
		t.Fatalf("err %v after %d calls, want an error after 2", err, api.calls)
	}
	if want := "2 rejected"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
