package worker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// snoozeThenCreate snoozes every job n times, then succeeds; calls counts its calls.
func snoozeThenCreate(n int, calls *atomic.Int32) Handler {
	return HandlerFunc(func(context.Context, job.Job) (Result, error) {
		if int(calls.Add(1)) <= n {
			return Result{}, Snooze(10*time.Millisecond, errors.New("RequestLimitExceeded"))
		}
		return Result{Action: Created, Snapshot: "snap-0123456789abcdef0"}, nil
	})
}

func fastRetries(int) time.Duration { return 10 * time.Millisecond }

// TestSnoozeKeepsReceiveBudget: a job snoozed more times than the queue's max receive count
// is never dead-lettered for it. Ordinary snoozes hide the message (SetVisibility); at the
// last receive but one it is requeued with a fresh receive count instead.
func TestSnoozeKeepsReceiveBudget(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	q.maxReceive = 3
	q.add(0, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	var calls atomic.Int32
	w := testWorker(q, snoozeThenCreate(7, &calls))
	w.retryDelay = fastRetries
	st := runFor(t, w, 10*time.Second)
	if want := (Stats{Processed: 8, Created: 1, Retried: 7}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	left, deleted, dead, vis := q.state()
	if len(dead) != 0 || left != 0 || len(deleted) != 1 || calls.Load() != 8 {
		t.Errorf("dead letters %+v, %d left, deleted %v, %d handler calls; want none, 0, one, 8", dead, left, deleted, calls.Load())
	}
	// Attempts 1 (SetVisibility), 2 = max-1 (Requeue), then again from 1 on each copy.
	if rq := q.requeues(); len(vis) != 4 || len(rq) != 3 {
		t.Errorf("%d visibility calls %+v and %d requeues %+v, want 4 and 3", len(vis), vis, len(rq), rq)
	}
}

// TestRetryStillExhausts: a job that fails (not throttled) is not requeued: on its last
// receive the worker dead-letters it as exhausted_retries, with the last error.
func TestRetryStillExhausts(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	q.maxReceive = 3
	ids := q.add(0, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) {
		return Result{}, errors.New("something odd")
	}))
	w.retryDelay = fastRetries
	st := runFor(t, w, 10*time.Second)
	if want := (Stats{Processed: 3, Retried: 2, DeadLettered: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if _, _, dead, _ := q.state(); len(dead) != 1 || dead[0] != (deadLetter{ids[0], reason.ExhaustedRetries, "something odd"}) {
		t.Errorf("dead letters %+v, want %s %s with its error", dead, ids[0], reason.ExhaustedRetries)
	}
	if rq := q.requeues(); len(rq) != 0 {
		t.Errorf("requeues %+v, want none", rq)
	}
}

// TestSnoozeNeverDeadLetters runs the worker on the real backends — the embedded queue and
// SQS standard and FIFO on moto, each with a redrive after 2 receives — and snoozes a job
// 5 times before it succeeds: it is handled once successfully and never dead-lettered.
func TestSnoozeNeverDeadLetters(t *testing.T) {
	t.Parallel()
	const maxReceive, snoozes = 2, 5
	for _, backend := range []string{"embedded", "sqs-standard", "sqs-fifo"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			q := openBackend(t, backend, maxReceive, 0)
			sendJob(t, q, createJob("vol-0123456789abcdef0", "default", plannedAt))
			var calls atomic.Int32
			w := testWorker(q, snoozeThenCreate(snoozes, &calls))
			w.retryDelay = fastRetries
			st := runFor(t, w, 30*time.Second)
			if want := (Stats{Processed: snoozes + 1, Created: 1, Retried: snoozes}); st != want || calls.Load() != snoozes+1 {
				t.Errorf("stats = %+v after %d handler calls, want %+v after %d", st, calls.Load(), want, snoozes+1)
			}
			dlq, err := q.DLQ(ctx)
			if err != nil {
				t.Fatalf("opening the DLQ: %v", err)
			}
			msgs, err := dlq.Receive(ctx, 10, 0)
			if err != nil || len(msgs) != 0 {
				t.Errorf("DLQ: %d messages, %v; want none", len(msgs), err)
			}
			for _, d := range []queue.Queue{q, dlq} {
				if s, err := d.Stats(ctx); err != nil || s.Total() != 0 {
					t.Errorf("%s holds %+v (%v), want nothing", d.URL(), s, err)
				}
			}
		})
	}
}

// TestRetryExhaustsWithLastError runs the worker on the real backends with a redrive after
// 2 receives and a job that fails (not throttled) every time: on its last receive the
// worker dead-letters it itself, as exhausted_retries with the attempt count and the text
// of the last error, instead of leaving it to the queue's redrive (which knows no error).
func TestRetryExhaustsWithLastError(t *testing.T) {
	t.Parallel()
	const maxReceive = 2
	for _, backend := range []string{"embedded", "sqs-standard", "sqs-fifo"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			q := openBackend(t, backend, maxReceive, 0)
			sendJob(t, q, createJob("vol-0123456789abcdef0", "default", plannedAt))
			var calls atomic.Int32
			w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) {
				return Result{}, fmt.Errorf("creating snapshot: attempt %d: connection reset by peer", calls.Add(1))
			}))
			w.retryDelay = fastRetries
			st := runFor(t, w, 30*time.Second)
			if want := (Stats{Processed: maxReceive, Retried: maxReceive - 1, DeadLettered: 1}); st != want || calls.Load() != maxReceive {
				t.Errorf("stats = %+v after %d handler calls, want %+v after %d", st, calls.Load(), want, maxReceive)
			}
			dlq, err := q.DLQ(ctx)
			if err != nil {
				t.Fatalf("opening the DLQ: %v", err)
			}
			got, err := queue.Peek(ctx, dlq, 0)
			if err != nil {
				t.Fatalf("listing the DLQ: %v", err)
			}
			wantErr := fmt.Sprintf("attempt %d: connection reset by peer", maxReceive)
			if len(got) != 1 || got[0].Reason != reason.ExhaustedRetries || got[0].Attempts != maxReceive ||
				!strings.Contains(got[0].LastError, wantErr) {
				for _, m := range got {
					t.Logf("dead letter %s: reason %s, attempts %d, last error %q", m.ID, m.Reason, m.Attempts, m.LastError)
				}
				t.Fatalf("%d dead letters, want one %s with attempts %d and last error %q", len(got), reason.ExhaustedRetries, maxReceive, wantErr)
			}
			if s, err := q.Stats(ctx); err != nil || s.Total() != 0 {
				t.Errorf("%s holds %+v (%v), want nothing", q.URL(), s, err)
			}
		})
	}
}

// openBackend opens a jobs queue of backend ("embedded", "sqs-standard" or "sqs-fifo",
// the SQS ones on moto) that moves a message to its dead-letter queue after maxReceive
// receives; visibility 0 is the backend's default.
func openBackend(t *testing.T, backend string, maxReceive int, visibility time.Duration) queue.Queue {
	t.Helper()
	q, _ := openBackendOptions(t, backend, maxReceive, visibility)
	return q
}

// openBackendOptions is openBackend, and the options another handle on the same queue
// opens with.
func openBackendOptions(t *testing.T, backend string, maxReceive int, visibility time.Duration) (queue.Queue, queue.Options) {
	t.Helper()
	var url string
	o := queue.Options{Visibility: visibility}
	switch backend {
	case "embedded":
		url = "file:" + filepath.Join(t.TempDir(), "jobs.db")
		o.MaxReceive = maxReceive
	default:
		m := startMoto(t)
		url = redriveQueue(t, m.cfg, backend == "sqs-fifo", maxReceive)
		o.AWS = m.cfg
	}
	q, err := queue.Open(context.Background(), url, o)
	if err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	t.Cleanup(func() { q.Close() })
	return q, o
}

// sendJob enqueues j as the planner would.
func sendJob(t *testing.T, q queue.Queue, j job.Job) {
	t.Helper()
	if err := q.Send(context.Background(), []queue.Outgoing{{Body: encode(t, j), DedupID: j.Key, GroupID: job.GroupID(j)}}); err != nil {
		t.Fatalf("sending the job: %v", err)
	}
}

var redriveSeq atomic.Int32

// redriveQueue makes an SQS jobs queue in moto whose RedrivePolicy sends a message to a
// dead-letter queue after maxReceive receives, and returns its URL.
func redriveQueue(t *testing.T, cfg aws.Config, fifo bool, maxReceive int) string {
	t.Helper()
	ctx := context.Background()
	client := sqs.NewFromConfig(cfg)
	create := func(name string, attrs map[string]string) string {
		attrs["VisibilityTimeout"] = "30"
		if fifo {
			name += ".fifo"
			attrs["FifoQueue"] = "true"
		}
		out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
		if err != nil {
			t.Fatalf("creating queue %s: %v", name, err)
		}
		return aws.ToString(out.QueueUrl)
	}
	n := redriveSeq.Add(1)
	dlq := create(fmt.Sprintf("snooze-dlq-%d", n), map[string]string{})
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &dlq, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("reading the ARN of %s: %v", dlq, err)
	}
	arn := out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	return create(fmt.Sprintf("snooze-jobs-%d", n), map[string]string{
		"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, arn, maxReceive),
	})
}
