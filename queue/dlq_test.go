package queue_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// dlqCases are Peek and Replay; TestConformance runs them on every backend.
var dlqCases = []struct {
	name string
	test func(t *testing.T, b backend)
}{
	{"PeekConsumesNothing", testPeek},
	{"ReplayMovesOnlyMatches", testReplay},
	{"RedriveReasonInPeek", testRedriveReason},
}

// deadLetters sends bodies to q and dead-letters each with reason(i) and "error i".
func deadLetters(t *testing.T, q queue.Queue, reason func(i int) string, bodies ...string) {
	t.Helper()
	send(t, q, bodies...)
	for _, m := range receiveN(t, q, len(bodies), 20*time.Second) {
		i := slices.Index(bodies, string(m.Body))
		if err := q.DeadLetter(testCtx(t), m, reason(i), fmt.Sprintf("error %d", i)); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
	}
}

func evenOdd(i int) string {
	if i%2 == 0 {
		return "unknown_policy"
	}
	return "invalid_message"
}

func numberedBodies(prefix string, n int) []string {
	var bs []string
	for i := range n {
		bs = append(bs, fmt.Sprintf("%s%02d", prefix, i))
	}
	return bs
}

func bodiesOf(ms []queue.Message) []string {
	var bs []string
	for _, m := range ms {
		bs = append(bs, string(m.Body))
	}
	slices.Sort(bs)
	return bs
}

// testPeek: a listing sees every dead letter (more than one batch, also on a FIFO DLQ)
// with its reason, last error and attempts, and leaves them all visible.
func testPeek(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 5)
	bodies := numberedBodies("peek", 13)
	start := time.Now()
	deadLetters(t, q, evenOdd, bodies...)
	failed := time.Now()
	d := dlq(t, q)

	for round := 1; round <= 2; round++ {
		got, err := queue.Peek(testCtx(t), d, 0)
		if err != nil {
			t.Fatalf("Peek %d: %v", round, err)
		}
		if bs := bodiesOf(got); !slices.Equal(bs, bodies) {
			t.Fatalf("Peek %d = %q, want each of %q once", round, bs, bodies)
		}
		for _, m := range got {
			i := slices.Index(bodies, string(m.Body))
			if m.Reason != evenOdd(i) || m.LastError != fmt.Sprintf("error %d", i) || m.Attempts != 1 {
				t.Errorf("Peek %d: %s: reason %q, last error %q, attempts %d; want %q, %q, 1", round, m.Body, m.Reason, m.LastError, m.Attempts, evenOdd(i), fmt.Sprintf("error %d", i))
			}
			near(t, "FailedAt", m.FailedAt, start, failed)
		}
		wantStats(t, d, queue.Stats{Visible: len(bodies)})
	}
	some, err := queue.Peek(testCtx(t), d, 4)
	if err != nil || len(some) != 4 {
		t.Fatalf("Peek(limit 4) = %d messages, %v; want 4", len(some), err)
	}
	wantStats(t, d, queue.Stats{Visible: len(bodies)})
}

// testReplay: dry run, a bound, a filter, then everything; moved messages are in the jobs
// queue exactly once, the others stay in the DLQ untouched.
func testReplay(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 5)
	bodies := numberedBodies("replay", 6)
	deadLetters(t, q, evenOdd, bodies...)
	d := dlq(t, q)
	unknownPolicy := func(m queue.Message) bool { return m.Reason == "unknown_policy" }
	var built sync.Map // dead-letter id → true, for the messages Outgoing was asked for
	outgoing := func(m queue.Message) queue.Outgoing {
		built.Store(m.ID, true)
		return queue.Outgoing{Body: m.Body, DedupID: "replay-" + m.ID}
	}
	replay := func(o queue.ReplayOptions, want queue.ReplayResult) {
		t.Helper()
		got, err := queue.Replay(testCtx(t), d, q, o)
		if err != nil {
			t.Fatalf("Replay(%+v): %v", o, err)
		}
		got.Fallback = ""
		if got != want {
			t.Fatalf("Replay(max %d, dry run %v) = %+v, want %+v", o.Max, o.DryRun, got, want)
		}
	}

	replay(queue.ReplayOptions{Match: unknownPolicy, DryRun: true},
		queue.ReplayResult{Matched: 3, Skipped: 3, DryRun: true, Method: queue.MethodReceive})
	wantStats(t, d, queue.Stats{Visible: 6})
	wantStats(t, q, queue.Stats{})

	// How many it skips before the bound depends on how the receives batch: not checked.
	bounded, err := queue.Replay(testCtx(t), d, q, queue.ReplayOptions{Match: unknownPolicy, Outgoing: outgoing, Max: 2})
	if err != nil || bounded.Matched != 2 || bounded.Moved != 2 || bounded.Failed != 0 || bounded.Skipped > 4 {
		t.Fatalf("Replay(max 2) = %+v, %v; want 2 matched and moved", bounded, err)
	}
	wantStats(t, d, queue.Stats{Visible: 4})
	wantStats(t, q, queue.Stats{Visible: 2})

	replay(queue.ReplayOptions{Match: unknownPolicy, Outgoing: outgoing},
		queue.ReplayResult{Matched: 1, Moved: 1, Skipped: 3, Method: queue.MethodReceive})
	wantStats(t, d, queue.Stats{Visible: 3})
	moved := receiveN(t, q, 3, 20*time.Second)
	receiveNone(t, q)
	if got, want := bodiesOf(moved), []string{"replay00", "replay02", "replay04"}; !slices.Equal(got, want) {
		t.Errorf("jobs queue got %q, want %q", got, want)
	}
	if err := q.Delete(testCtx(t), moved); err != nil {
		t.Fatal(err)
	}
	n := 0
	built.Range(func(any, any) bool { n++; return true })
	if n != 3 {
		t.Errorf("Outgoing was called for %d dead letters, want the 3 moved", n)
	}
	left, err := queue.Peek(testCtx(t), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range left {
		if m.Reason != "invalid_message" || m.Attempts != 1 || !strings.HasPrefix(m.LastError, "error ") {
			t.Errorf("left in the DLQ: %s reason %q attempts %d last error %q, want an untouched invalid_message", m.Body, m.Reason, m.Attempts, m.LastError)
		}
	}

	// No filter: SQS tries a move task first; moto has none, so the loop does it.
	got, err := queue.Replay(testCtx(t), d, q, queue.ReplayOptions{})
	if err != nil {
		t.Fatalf("Replay(all): %v", err)
	}
	if got.Moved != 3 || got.Matched != 3 || got.Skipped != 0 || got.Failed != 0 || got.Method != queue.MethodReceive {
		t.Errorf("Replay(all) = %+v, want 3 moved by the receive loop", got)
	}
	isSQS := b.name != "embedded" // moto's and the simulator's SQS
	if isSQS != strings.Contains(got.Fallback, "StartMessageMoveTask") {
		t.Errorf("Replay(all) on %s: Fallback = %q", b.name, got.Fallback)
	}
	wantStats(t, d, queue.Stats{})
	if got := bodiesOf(receiveN(t, q, 3, 20*time.Second)); !slices.Equal(got, []string{"replay01", "replay03", "replay05"}) {
		t.Errorf("jobs queue got %q after replaying all", got)
	}

	if _, err := queue.Replay(testCtx(t), d, q, queue.ReplayOptions{Max: -1}); err == nil {
		t.Error("Replay with Max -1 succeeded, want an error")
	}
}

// testRedriveReason: a message the queue itself moved to the DLQ (a worker that crashed on
// each receive) lists as exhausted_retries with its receive count.
func testRedriveReason(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 2)
	send(t, q, "crashes every worker")
	for range 2 {
		m := receiveN(t, q, 1, 10*time.Second)[0]
		if err := q.SetVisibility(testCtx(t), m, 0); err != nil {
			t.Fatal(err)
		}
	}
	receiveNone(t, q) // the third receive moves it
	got, err := queue.Peek(testCtx(t), dlq(t, q), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Reason != reason.ExhaustedRetries || got[0].Attempts < 2 || got[0].LastError != "" {
		t.Fatalf("Peek = %+v, want one exhausted_retries dead letter with attempts ≥ 2", got)
	}
}

// TestReplayMoveTask: with no filter, an SQS endpoint that has StartMessageMoveTask moves
// the messages itself. moto has no move task: a middleware serves it, moving the messages
// through moto as SQS would and answering the task's status.
func TestReplayMoveTask(t *testing.T) {
	t.Parallel()
	s := sharedMoto(t)
	cfg := s.AWSConfig(t)
	client := sqs.NewFromConfig(cfg)
	dlqURL := createSQSQueue(t, client, fmt.Sprintf("move-dlq-%d", queueSeq.Add(1)), false, nil)
	dlqARN := queueARN(t, client, dlqURL)
	jobsURL := createSQSQueue(t, client, fmt.Sprintf("move-jobs-%d", queueSeq.Add(1)), false, map[string]string{
		"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, dlqARN),
	})
	jobsARN := queueARN(t, client, jobsURL)

	var mu sync.Mutex
	var starts []sqs.StartMessageMoveTaskInput
	moved := 0
	task := middleware.InitializeMiddlewareFunc("move-task", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		mu.Lock()
		defer mu.Unlock()
		switch p := in.Parameters.(type) {
		case *sqs.StartMessageMoveTaskInput:
			starts = append(starts, *p)
			for {
				out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &dlqURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					return middleware.InitializeOutput{}, middleware.Metadata{}, err
				}
				if len(out.Messages) == 0 {
					break
				}
				for _, m := range out.Messages {
					if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &jobsURL, MessageBody: m.Body}); err != nil {
						return middleware.InitializeOutput{}, middleware.Metadata{}, err
					}
					if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &dlqURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
						return middleware.InitializeOutput{}, middleware.Metadata{}, err
					}
					moved++
				}
			}
			return middleware.InitializeOutput{Result: &sqs.StartMessageMoveTaskOutput{TaskHandle: aws.String("task-1")}}, middleware.Metadata{}, nil
		case *sqs.ListMessageMoveTasksInput:
			return middleware.InitializeOutput{Result: &sqs.ListMessageMoveTasksOutput{Results: []types.ListMessageMoveTasksResultEntry{{
				SourceArn: p.SourceArn, DestinationArn: &jobsARN, Status: aws.String("COMPLETED"), ApproximateNumberOfMessagesMoved: int64(moved),
			}}}}, middleware.Metadata{}, nil
		}
		return next.HandleInitialize(ctx, in)
	})
	withTask := cfg.Copy()
	withTask.APIOptions = append(withTask.APIOptions, func(s *middleware.Stack) error { return s.Initialize.Add(task, middleware.Before) })

	q, err := queue.Open(testCtx(t), jobsURL, queue.Options{AWS: withTask, Visibility: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bodies := numberedBodies("moved", 4)
	deadLetters(t, q, evenOdd, bodies...)
	d := dlq(t, q)

	// A filter, a bound or a dry run never use the task: it moves everything.
	if got, err := queue.Replay(testCtx(t), d, q, queue.ReplayOptions{DryRun: true}); err != nil || got.Method != queue.MethodReceive || got.Matched != 4 {
		t.Fatalf("dry run = %+v, %v; want the receive loop counting 4", got, err)
	}
	got, err := queue.Replay(testCtx(t), d, q, queue.ReplayOptions{})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if got != (queue.ReplayResult{Matched: 4, Moved: 4, Method: queue.MethodMoveTask}) {
		t.Errorf("Replay = %+v, want 4 moved by the move task", got)
	}
	if len(starts) != 1 || aws.ToString(starts[0].SourceArn) != dlqARN || aws.ToString(starts[0].DestinationArn) != jobsARN {
		t.Errorf("StartMessageMoveTask calls = %+v, want one from %s to %s", starts, dlqARN, jobsARN)
	}
	wantStats(t, d, queue.Stats{})
	if bs := bodiesOf(receiveN(t, q, 4, 20*time.Second)); !slices.Equal(bs, bodies) {
		t.Errorf("jobs queue got %q, want %q", bs, bodies)
	}
}
