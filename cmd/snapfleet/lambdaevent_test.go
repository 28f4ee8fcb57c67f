package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// instanceOf returns the instance each volume is attached to.
func (w *world) instanceOf(ctx context.Context, vols []string) map[string]string {
	w.t.Helper()
	out, err := w.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: vols})
	if err != nil {
		w.t.Fatal(err)
	}
	m := map[string]string{}
	for _, v := range out.Volumes {
		m[aws.ToString(v.VolumeId)] = aws.ToString(v.Attachments[0].InstanceId)
	}
	return m
}

// inbox routes the bus's snapfleet events to a new SQS queue and returns a reader of it.
func (w *world) inbox(ctx context.Context, bus string) func(want int) []map[string]any {
	w.t.Helper()
	t := w.t
	eb := eventbridge.NewFromConfig(w.moto.AWSConfig(t))
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatal(err)
	}
	q, err := w.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(bus + "-inbox")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("inbox"), EventBusName: aws.String(bus),
		EventPattern: outcomePattern()}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("inbox"), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("inbox"), Arn: aws.String(w.arn(ctx, aws.ToString(q.QueueUrl)))}}}); err != nil {
		t.Fatal(err)
	}
	return func(want int) []map[string]any {
		t.Helper()
		var got []map[string]any
		for deadline := time.Now().Add(10 * time.Second); len(got) < want && time.Now().Before(deadline); {
			out, err := w.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range out.Messages {
				var ev map[string]any
				if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
					t.Fatal(err)
				}
				got = append(got, ev)
				if _, err := w.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
					t.Fatal(err)
				}
			}
		}
		return got
	}
}

// TestEventHandlers drives the handlers with real payloads: an EC2 state-change
// notification of an opted-in instance delivered twice makes one snapshot of its volume
// and none of the instance not opted in; a BackupNow event selecting by tag snapshots the
// selected volumes; a poison record in the batch is dead-lettered and published as
// snapfleet.JobFailed, next to the plan summaries and the batch's one
// snapfleet.WorkSummary, on the events bus.
func TestEventHandlers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.cfg.Events.Bus = "ops"
	read := w.inbox(ctx, "ops")
	vols := w.instances(ctx, 4)
	inst := w.instanceOf(ctx, vols)
	optedIn, other, shop1, shop2 := vols[0], vols[1], vols[2], vols[3]
	for vol, tags := range map[string]map[string]string{
		optedIn: {"AutoSnapshot": "true"}, other: {"AutoSnapshot": "no"}, shop1: {"App": "shop"}, shop2: {"App": "shop"},
	} {
		for k, v := range tags {
			if _, err := w.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{inst[vol]},
				Tags: []ec2types.Tag{{Key: aws.String(k), Value: aws.String(v)}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	plan := w.function(lambdaModePlan)
	stop := func(id, instance string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"version":"0","id":%q,"detail-type":"EC2 Instance State-change Notification",
"source":"aws.ec2","account":%q,"time":"2026-11-22T05:00:00Z","region":%q,"resources":[],
"detail":{"instance-id":%q,"state":"stopped"}}`, id, mototest.Account, mototest.Region, instance))
	}
	const id = "5d1c0e4a-8b7f-4f3e-9c1a-2b3c4d5e6f70"
	for i := range 2 {
		s, err := plan.Plan(ctx, stop(id, inst[optedIn]))
		if err != nil || s.Enqueued != 1 {
			t.Fatalf("delivery %d: %+v, %v; want 1 job", i+1, s, err)
		}
	}
	if s, err := plan.Plan(ctx, stop("evt-other", inst[other])); err != nil || s.Enqueued != 0 {
		t.Fatalf("instance not opted in: %+v, %v; want no job", s, err)
	}
	release := json.RawMessage(fmt.Sprintf(`{"version":"0","id":"release-2","detail-type":"snapfleet.BackupNow","source":"ci",
"account":%q,"time":"2026-11-22T05:00:00Z","region":%q,"resources":[],"detail":{"tags":{"App":"shop"}}}`, mototest.Account, mototest.Region))
	if s, err := plan.Plan(ctx, release); err != nil || s.Enqueued != 2 || s.Instances != 2 {
		t.Fatalf("BackupNow: %+v, %v; want 2 jobs", s, err)
	}
	if _, err := plan.Plan(ctx, json.RawMessage(`{"id":"x","detail-type":"snapfleet.BackupNow","detail":{"tagz":{}}}`)); err == nil ||
		!strings.Contains(err.Error(), "tagz") {
		t.Fatalf("malformed BackupNow: %v, want an error naming tagz", err)
	}

	poison := `{"v":1,"kind":"snapshot.create","key":"oops"}`
	if _, err := w.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &w.queueURL, MessageBody: aws.String(poison)}); err != nil {
		t.Fatal(err)
	}
	batch := w.receive(ctx, w.queueURL, w.queueARN, 5)
	var sqsEv events.SQSEvent
	if err := json.Unmarshal(batch, &sqsEv); err != nil {
		t.Fatal(err)
	}
	var poisonID string
	for _, r := range sqsEv.Records {
		if r.Body == poison {
			poisonID = r.MessageId
		}
	}
	resp := w.work(ctx, w.function(lambdaModeWork), batch)
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != poisonID {
		t.Fatalf("batch item failures %v, want only the poison record %s", resp.BatchItemFailures, poisonID)
	}
	managed := w.managed(ctx)
	for _, vol := range []string{optedIn, shop1, shop2} {
		if len(managed[vol]) != 1 {
			t.Errorf("volume %s has %d snapshots, want 1", vol, len(managed[vol]))
		}
	}
	if len(managed[other]) != 0 {
		t.Errorf("volume of the instance not opted in has %d snapshots", len(managed[other]))
	}
	wantKey := job.EventKey(mototest.Account, mototest.Region, optedIn, "daily", id)
	for _, s := range managed[optedIn] {
		var key string
		for _, tg := range s.Tags {
			if aws.ToString(tg.Key) == tag.Job {
				key = aws.ToString(tg.Value)
			}
		}
		if key != wantKey {
			t.Errorf("snapshot %s of the stopped instance: %s tag %q, want the event's key %q", aws.ToString(s.SnapshotId), tag.Job, key, wantKey)
		}
	}

	got := read(6)
	kinds := map[string]int{}
	for _, ev := range got {
		kinds[ev["detail-type"].(string)]++
		d := ev["detail"].(map[string]any)
		switch ev["detail-type"] {
		case "snapfleet.JobFailed":
			if d["reason"] != "invalid_message" || d["message"] != poison {
				t.Errorf("JobFailed detail %v", d)
			}
		case "snapfleet.WorkSummary":
			// The batch: 3 snapshots made, the second delivery of the stop event's job found
			// its snapshot, the poison record dead-lettered.
			if d["processed"] != 5.0 || d["created"] != 3.0 || d["dead_lettered"] != 1.0 {
				t.Errorf("WorkSummary detail %v, want 5 processed, 3 created, 1 dead-lettered", d)
			}
		}
	}
	if kinds["snapfleet.PlanSummary"] != 4 || kinds["snapfleet.JobFailed"] != 1 || kinds["snapfleet.WorkSummary"] != 1 || len(got) != 6 {
		t.Errorf("events on the bus: %v, want 4 plan summaries, 1 job failure and 1 work summary", kinds)
	}
}
