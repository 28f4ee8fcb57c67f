package mototest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"
)

func TestShiftClockMovesSnapshotStartTime(t *testing.T) {
	t.Parallel()
	s, c, vol := withVolume(t)
	ctx := context.Background()
	s.ShiftClock(t, -10*24*time.Hour)
	snap, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{*snap.SnapshotId}})
	if err != nil {
		t.Fatal(err)
	}
	got := aws.ToTime(out.Snapshots[0].StartTime)
	if d := time.Since(got); d < 10*24*time.Hour-time.Minute || d > 10*24*time.Hour+time.Minute {
		t.Fatalf("snapshot StartTime %v is %v ago, want 10 days", got, d)
	}
	if out.Snapshots[0].State != types.SnapshotStateCompleted {
		t.Fatalf("state %s", out.Snapshots[0].State)
	}
}

// TestStopClock: snapshots made while the clock is stopped all get its time.
func TestStopClock(t *testing.T) {
	t.Parallel()
	s, c, vol := withVolume(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	s.StopClock(t, at)
	for range 2 {
		snap, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{*snap.SnapshotId}})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToTime(out.Snapshots[0].StartTime); !got.Equal(at) {
			t.Fatalf("snapshot StartTime %v, want %v", got, at)
		}
	}
}

// withVolume starts moto and makes one volume in it (the fleet builder imports this
// package, so these tests cannot use it).
func withVolume(t *testing.T) (*Server, *ec2.Client, *ec2.CreateVolumeOutput) {
	t.Helper()
	s := Start(t)
	c := ec2.NewFromConfig(s.AWSConfig(t))
	vol, err := c.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String(Region + "a"), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, vol
}

// TestSQSAtomic: SQS hands a message to one receiver per visibility timeout and a delete
// stays deleted; moto alone, serving requests on threads without a lock, did neither
// under concurrent receives and deletes (a CI run saw a FIFO message dead-lettered twice).
// 24 receivers drain 200 messages, deleting each as they go: each is received once (the
// visibility timeout of 60 s is far beyond the test's time, loaded or not), and nothing
// is left, visible or in flight. (Without the wrapper's lock it failed one run in three
// here: a race, so not every run can catch it.)
func TestSQSAtomic(t *testing.T) {
	t.Parallel()
	s := Start(t)
	ctx := context.Background()
	c := sqs.NewFromConfig(s.AWSConfig(t))
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("atomic"), Attributes: map[string]string{"VisibilityTimeout": "60"}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := 0; i < n; i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j := range 10 {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(fmt.Sprint(i + j))})
		}
		if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var g errgroup.Group
	for range 24 {
		g.Go(func() error {
			for empty := 0; empty < 2; {
				out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 2, WaitTimeSeconds: 1})
				if err != nil {
					return err
				}
				if len(out.Messages) == 0 {
					empty++
					continue
				}
				empty = 0
				for _, m := range out.Messages {
					mu.Lock()
					seen[aws.ToString(m.Body)]++
					mu.Unlock()
					if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for body, k := range seen {
		if k != 1 {
			t.Errorf("message %s received %d times", body, k)
		}
	}
	if len(seen) != n {
		t.Errorf("%d of %d messages received", len(seen), n)
	}
	// Nothing is left, visible or in flight (moto counts both from the same list a lost
	// delete would leave the message in).
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range attrs.Attributes {
		if v != "0" {
			t.Errorf("after every message was deleted, %s is %s", k, v)
		}
	}
}
