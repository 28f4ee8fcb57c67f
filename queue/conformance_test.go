package queue_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/internal/testbed/sim"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// A backend opens a fresh, empty queue with a dead-letter queue for each test. maxReceive
// is the redrive threshold (SQS: the RedrivePolicy's maxReceiveCount).
type backend struct {
	name string
	open func(t *testing.T, visibility time.Duration, maxReceive int) queue.Queue
}

var queueSeq atomic.Int64

// moto is the package's one moto_server, started by the first test that needs it and
// stopped by TestMain: each test gets queues of its own in it, and a loaded machine
// starts one Python process instead of three.
var moto struct {
	once sync.Once
	s    *mototest.Server
	err  error
}

func sharedMoto(t *testing.T) *mototest.Server {
	t.Helper()
	moto.once.Do(func() { moto.s, moto.err = mototest.StartServer() })
	if moto.err != nil {
		t.Fatalf("starting moto_server (python3 with moto[server] is required): %v", moto.err)
	}
	return moto.s
}

// sqsBackend gives each test its own queue pair in the shared moto_server.
func sqsBackend(t *testing.T, fifo bool) backend {
	name := "sqs-standard"
	if fifo {
		name = "sqs-fifo"
	}
	return sqsBackendOn(name, sharedMoto(t).AWSConfig(t), fifo)
}

// simBackend is the SQS of internal/testbed/sim, the benchmark's queue: proved by the same suite.
func simBackend(t *testing.T, fifo bool) backend {
	s := sim.New(nil)
	url, stop, err := s.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	cfg := aws.Config{Region: mototest.Region, BaseEndpoint: aws.String(url), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")}
	name := "sim-standard"
	if fifo {
		name = "sim-fifo"
	}
	return sqsBackendOn(name, cfg, fifo)
}

func sqsBackendOn(name string, cfg aws.Config, fifo bool) backend {
	client := sqs.NewFromConfig(cfg)
	return backend{name: name, open: func(t *testing.T, visibility time.Duration, maxReceive int) queue.Queue {
		t.Helper()
		ctx := context.Background()
		dlqURL := createSQSQueue(t, client, fmt.Sprintf("dlq-%d", queueSeq.Add(1)), fifo, nil)
		arn := queueARN(t, client, dlqURL)
		u := createSQSQueue(t, client, fmt.Sprintf("jobs-%d", queueSeq.Add(1)), fifo, map[string]string{
			"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, arn, maxReceive),
		})
		q, err := queue.Open(ctx, u, queue.Options{AWS: cfg, Visibility: visibility})
		if err != nil {
			t.Fatalf("opening %s: %v", u, err)
		}
		t.Cleanup(func() { _ = q.Close() })
		return q
	}}
}

func createSQSQueue(t *testing.T, client *sqs.Client, name string, fifo bool, attrs map[string]string) string {
	t.Helper()
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs["VisibilityTimeout"] = "30"
	if fifo {
		name += ".fifo"
		attrs["FifoQueue"] = "true"
	}
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		t.Fatalf("creating queue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

func queueARN(t *testing.T, client *sqs.Client, u string) string {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: &u, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("reading the ARN of %s: %v", u, err)
	}
	return out.Attributes[string(types.QueueAttributeNameQueueArn)]
}

func embeddedBackend() backend {
	return backend{name: "embedded", open: func(t *testing.T, visibility time.Duration, maxReceive int) queue.Queue {
		t.Helper()
		u := "file:" + filepath.Join(t.TempDir(), "queue.db")
		q, err := queue.Open(context.Background(), u, queue.Options{Visibility: visibility, MaxReceive: maxReceive})
		if err != nil {
			t.Fatalf("opening %s: %v", u, err)
		}
		t.Cleanup(func() { _ = q.Close() })
		return q
	}}
}

// conformance is the behaviour every backend must show.
var conformance = []struct {
	name string
	test func(t *testing.T, b backend)
}{
	{"RoundTrip", testRoundTrip},
	{"Batch25ExactlyOnce", testBatch25},
	{"VisibilityTimeout", testVisibilityTimeout},
	{"SetVisibilityZeroReleases", testSetVisibilityZero},
	{"SetVisibilityExtends", testSetVisibilityExtends},
	{"DeadLetter", testDeadLetter},
	{"RedriveAfterMaxReceives", testRedrive},
	{"RequeueNeverRedrives", testRequeue},
	{"DLQReceiveDoesNotLose", testDLQNoLoss},
	{"DLQHasNoDLQ", testDLQOfDLQ},
	{"Stats", testStats},
	{"ReceiveWaits", testReceiveWaits},
	{"ReceiveWakesOnSend", testReceiveWakes},
	{"ReceiveHonoursCancel", testReceiveCancel},
}

func TestConformance(t *testing.T) {
	t.Parallel()
	backends := []struct {
		name  string
		start func(t *testing.T) backend
	}{
		{"embedded", func(*testing.T) backend { return embeddedBackend() }},
		{"sqs-standard", func(t *testing.T) backend { return sqsBackend(t, false) }},
		{"sqs-fifo", func(t *testing.T) backend { return sqsBackend(t, true) }},
		{"sim-standard", func(t *testing.T) backend { return simBackend(t, false) }},
		{"sim-fifo", func(t *testing.T) backend { return simBackend(t, true) }},
	}
	// The cases mostly wait for visibility timeouts: run them all at once, in goroutines,
	// rather than -parallel (GOMAXPROCS) at a time.
	var wg sync.WaitGroup
	for _, bk := range backends {
		wg.Go(func() {
			t.Run(bk.name, func(t *testing.T) {
				b := bk.start(t)
				var cases sync.WaitGroup
				for _, c := range append(conformance[:len(conformance):len(conformance)], dlqCases...) {
					cases.Go(func() {
						t.Run(c.name, func(t *testing.T) { c.test(t, b) })
					})
				}
				cases.Wait()
			})
		})
	}
	wg.Wait()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var dedupSeq atomic.Int64

func send(t *testing.T, q queue.Queue, bodies ...string) {
	t.Helper()
	msgs := make([]queue.Outgoing, len(bodies))
	for i, b := range bodies {
		msgs[i] = queue.Outgoing{Body: []byte(b), DedupID: fmt.Sprintf("dedup-%d", dedupSeq.Add(1))}
	}
	if err := q.Send(testCtx(t), msgs); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

// receiveN receives until it has n messages or within has passed.
func receiveN(t *testing.T, q queue.Queue, n int, within time.Duration) []queue.Message {
	t.Helper()
	var got []queue.Message
	deadline := time.Now().Add(within)
	for len(got) < n && time.Now().Before(deadline) {
		ms, err := q.Receive(testCtx(t), min(10, n-len(got)), time.Second)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		got = append(got, ms...)
	}
	if len(got) != n {
		t.Fatalf("received %d messages within %s, want %d", len(got), within, n)
	}
	return got
}

func receiveNone(t *testing.T, q queue.Queue) {
	t.Helper()
	ms, err := q.Receive(testCtx(t), 10, 0)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(ms) != 0 {
		t.Fatalf("received %d messages (first %q), want none", len(ms), ms[0].Body)
	}
}

// receiveHidden checks that a hidden message is not received before until, then receives
// it: a receive at once must get nothing, unless it returned after until (a loaded
// machine), when what it got is not early and counts.
func receiveHidden(t *testing.T, q queue.Queue, until time.Time) queue.Message {
	t.Helper()
	ms, err := q.Receive(testCtx(t), 10, 0)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(ms) != 0 && time.Now().Before(until) {
		t.Fatalf("received %d messages (first %q) %v before they were due, want none", len(ms), ms[0].Body, time.Until(until))
	}
	if len(ms) == 0 {
		ms = receiveN(t, q, 1, 10*time.Second)
	}
	return ms[0]
}

func wantStats(t *testing.T, q queue.Queue, want queue.Stats) {
	t.Helper()
	got, err := q.Stats(testCtx(t))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func dlq(t *testing.T, q queue.Queue) queue.Queue {
	t.Helper()
	d, err := q.DLQ(testCtx(t))
	if err != nil {
		t.Fatalf("DLQ: %v", err)
	}
	return d
}

func near(t *testing.T, what string, got, from, to time.Time) {
	t.Helper()
	if got.Before(from.Add(-2*time.Second)) || got.After(to.Add(2*time.Second)) {
		t.Errorf("%s = %s, want between %s and %s", what, got, from, to)
	}
}

func testRoundTrip(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 3)
	bodies := []string{
		`{"v":1,"kind":"snapshot.create","key":"111111111111/us-east-1/vol-0abc/daily/2026-11-22T00:00:00Z"}`,
		"héllo wörld ✓ — 日本語",
		"line1\nline2\ttab\r\nend",
		"  spaces around  ",
		`<xml a="&amp;">]]></xml>`,
	}
	start := time.Now()
	send(t, q, bodies...)
	got := receiveN(t, q, len(bodies), 10*time.Second)
	var gotBodies []string
	for _, m := range got {
		gotBodies = append(gotBodies, string(m.Body))
		if m.ID == "" || m.Receipt == "" {
			t.Errorf("message %q: ID %q, Receipt %q: want both set", m.Body, m.ID, m.Receipt)
		}
		if m.Attempts != 1 {
			t.Errorf("message %q: Attempts = %d, want 1", m.Body, m.Attempts)
		}
		if m.Reason != "" || m.LastError != "" || !m.FailedAt.IsZero() {
			t.Errorf("message %q carries dead-letter attributes: %+v", m.Body, m)
		}
		near(t, "SentAt", m.SentAt, start, time.Now())
	}
	slices.Sort(gotBodies)
	slices.Sort(bodies)
	if !slices.Equal(gotBodies, bodies) {
		t.Fatalf("bodies = %q, want %q", gotBodies, bodies)
	}
	receiveNone(t, q)
	if err := q.Delete(testCtx(t), got); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantStats(t, q, queue.Stats{})
	receiveNone(t, q)
}

func testBatch25(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 3)
	var bodies []string
	for i := range 25 {
		bodies = append(bodies, fmt.Sprintf("message %02d", i))
	}
	send(t, q, bodies...)
	got := receiveN(t, q, 25, 20*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		if seen[string(m.Body)] {
			t.Errorf("%q received twice", m.Body)
		}
		seen[string(m.Body)] = true
	}
	for _, body := range bodies {
		if !seen[body] {
			t.Errorf("%q never received", body)
		}
	}
	receiveNone(t, q)
	if err := q.Delete(testCtx(t), got); err != nil {
		t.Fatalf("Delete of 25: %v", err)
	}
	wantStats(t, q, queue.Stats{})
}

func testVisibilityTimeout(t *testing.T, b backend) {
	q := b.open(t, time.Second, 5)
	send(t, q, "comes back")
	first := receiveN(t, q, 1, 10*time.Second)[0]
	received := time.Now()
	again := receiveHidden(t, q, received.Add(800*time.Millisecond))
	if waited := time.Since(received); waited < 800*time.Millisecond {
		t.Errorf("message came back after %s, before its 1 s visibility timeout", waited)
	}
	if again.ID != first.ID || string(again.Body) != "comes back" {
		t.Errorf("got %s %q back, want %s %q", again.ID, again.Body, first.ID, "comes back")
	}
	if again.Attempts != 2 {
		t.Errorf("Attempts = %d, want 2", again.Attempts)
	}
	if err := q.Delete(testCtx(t), []queue.Message{again}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantStats(t, q, queue.Stats{})
}

func testSetVisibilityZero(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 5)
	send(t, q, "released")
	m := receiveN(t, q, 1, 10*time.Second)[0]
	receiveNone(t, q)
	if err := q.SetVisibility(testCtx(t), m, 0); err != nil {
		t.Fatalf("SetVisibility(0): %v", err)
	}
	start := time.Now()
	again := receiveN(t, q, 1, 5*time.Second)[0]
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("released message came back after %s", waited)
	}
	if again.ID != m.ID || again.Attempts != 2 {
		t.Errorf("got %s attempt %d, want %s attempt 2", again.ID, again.Attempts, m.ID)
	}
}

func testSetVisibilityExtends(t *testing.T, b backend) {
	q := b.open(t, time.Second, 5)
	send(t, q, "extended")
	m := receiveN(t, q, 1, 10*time.Second)[0]
	if err := q.SetVisibility(testCtx(t), m, 2*time.Second); err != nil {
		t.Fatalf("SetVisibility(2s): %v", err)
	}
	extended := time.Now()
	time.Sleep(1300 * time.Millisecond) // past the 1 s visibility of the receive
	again := receiveHidden(t, q, extended.Add(1800*time.Millisecond))
	if waited := time.Since(extended); waited < 1800*time.Millisecond {
		t.Errorf("message came back %s after being hidden for 2 s", waited)
	}
	if again.ID != m.ID || again.Attempts != 2 {
		t.Errorf("got %s attempt %d, want %s attempt 2", again.ID, again.Attempts, m.ID)
	}
}

func testDeadLetter(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 5)
	body := `{"v":1,"kind":"snapshot.delete","key":"x"}` + "\n✓"
	start := time.Now()
	send(t, q, body)
	m := receiveN(t, q, 1, 10*time.Second)[0]
	received := time.Now()
	near(t, "FirstReceivedAt", m.FirstReceivedAt, start, received)
	if err := q.SetVisibility(testCtx(t), m, 0); err != nil {
		t.Fatalf("SetVisibility(0): %v", err)
	}
	time.Sleep(3 * time.Second) // the second receive is later than near's slack
	m = receiveN(t, q, 1, 10*time.Second)[0]
	near(t, "FirstReceivedAt of the second receive", m.FirstReceivedAt, start, received)
	lastErr := "boom\x00: " + strings.Repeat("é", 3000)
	if err := q.DeadLetter(testCtx(t), m, "refused_not_managed", lastErr); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	failed := time.Now()
	wantStats(t, q, queue.Stats{})
	receiveNone(t, q)

	d := dlq(t, q)
	got := receiveN(t, d, 1, 10*time.Second)[0]
	if string(got.Body) != body {
		t.Errorf("dead letter body = %q, want %q", got.Body, body)
	}
	if got.Reason != "refused_not_managed" {
		t.Errorf("Reason = %q, want refused_not_managed", got.Reason)
	}
	if !strings.HasPrefix(got.LastError, "boom?: éé") || len(got.LastError) > 1100 || len(got.LastError) < 900 {
		t.Errorf("LastError = %q (%d bytes), want %q cut to about 1000 bytes", got.LastError[:min(20, len(got.LastError))], len(got.LastError), "boom?: éé…")
	}
	if got.Attempts != 2 {
		t.Errorf("Attempts = %d, want 2", got.Attempts)
	}
	near(t, "FailedAt", got.FailedAt, received.Add(3*time.Second), failed)
	near(t, "SentAt", got.SentAt, start, failed)
	near(t, "FirstReceivedAt of the dead letter", got.FirstReceivedAt, start, received)
	if err := d.Delete(testCtx(t), []queue.Message{got}); err != nil {
		t.Fatalf("Delete from the DLQ: %v", err)
	}
	wantStats(t, d, queue.Stats{})
}

func testRedrive(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 2)
	start := time.Now()
	send(t, q, "crashes the worker")
	var received time.Time
	for attempt := 1; attempt <= 2; attempt++ {
		m := receiveN(t, q, 1, 10*time.Second)[0]
		if m.Attempts != attempt {
			t.Fatalf("receive %d: Attempts = %d", attempt, m.Attempts)
		}
		if attempt == 1 {
			received = time.Now()
			time.Sleep(3 * time.Second) // the second receive is later than near's slack
		}
		if err := q.SetVisibility(testCtx(t), m, 0); err != nil {
			t.Fatalf("SetVisibility(0): %v", err)
		}
	}
	ms, err := q.Receive(testCtx(t), 10, time.Second)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(ms) != 0 {
		t.Fatalf("a message received 2 times was returned again (Attempts %d), want it moved to the DLQ", ms[0].Attempts)
	}
	wantStats(t, q, queue.Stats{})
	got := receiveN(t, dlq(t, q), 1, 10*time.Second)[0]
	if string(got.Body) != "crashes the worker" || got.Reason != reason.ExhaustedRetries || got.Attempts < 2 {
		t.Errorf("dead letter = body %q reason %q attempts %d, want %q %q ≥ 2", got.Body, got.Reason, got.Attempts, "crashes the worker", reason.ExhaustedRetries)
	}
	// moto keeps the message's own first receive, from the jobs queue, when it redrives.
	near(t, "FirstReceivedAt of the dead letter", got.FirstReceivedAt, start, received)
}

// testRequeue: a message requeued more times than the redrive threshold is never moved to
// the dead-letter queue: each copy starts again with a fresh receive count, keeps the body,
// SentAt and (FIFO) the group, and is not handed out before its delay. On FIFO, where SQS
// has no per-message delay, Receive holds the copy back itself (one receive of its count),
// and the copy is not dropped as a duplicate of the original.
func testRequeue(t *testing.T, b backend) {
	const maxReceive = 2
	q := b.open(t, 30*time.Second, maxReceive)
	if got, err := q.MaxReceive(testCtx(t)); err != nil || got != maxReceive {
		t.Fatalf("MaxReceive = %d, %v; want %d", got, err, maxReceive)
	}
	body := `{"v":1,"kind":"snapshot.create","key":"throttled"}` + "\n✓"
	start := time.Now()
	send(t, q, body)
	sent := time.Now()
	m := receiveN(t, q, 1, 10*time.Second)[0]
	received := time.Now()
	group := m.GroupID
	if b.name == "sqs-fifo" && group == "" {
		t.Errorf("a FIFO message has no GroupID")
	}
	const delay = time.Second
	for i := 1; i <= 2*maxReceive+1; i++ {
		// The copy is sent during Requeue, so hidden until before+delay at the earliest:
		// the waits below are measured from before, which a slow Requeue (a loaded
		// machine) cannot make look early.
		before := time.Now()
		if err := q.Requeue(testCtx(t), m, delay); err != nil {
			t.Fatalf("Requeue %d: %v", i, err)
		}
		m = receiveHidden(t, q, before.Add(delay))
		if waited := time.Since(before); waited < delay-100*time.Millisecond {
			t.Errorf("requeue %d: the copy came back after %s, before its %s delay", i, waited, delay)
		}
		if string(m.Body) != body {
			t.Fatalf("requeue %d: body = %q, want %q", i, m.Body, body)
		}
		if m.Attempts < 1 || m.Attempts > maxReceive {
			t.Errorf("requeue %d: Attempts = %d, want a fresh count (1 to %d)", i, m.Attempts, maxReceive)
		}
		if m.GroupID != group {
			t.Errorf("requeue %d: GroupID = %q, want %q", i, m.GroupID, group)
		}
		near(t, "SentAt", m.SentAt, start, sent)
		near(t, "FirstReceivedAt", m.FirstReceivedAt, start, received)
	}
	if err := q.Delete(testCtx(t), []queue.Message{m}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantStats(t, q, queue.Stats{})
	d := dlq(t, q)
	receiveNone(t, d)
	wantStats(t, d, queue.Stats{})
	if err := d.Requeue(testCtx(t), m, 0); err == nil {
		t.Errorf("Requeue on the DLQ succeeded, want an error")
	}
	if got, err := d.MaxReceive(testCtx(t)); err != nil || got != 0 {
		t.Errorf("MaxReceive of the DLQ = %d, %v; want 0", got, err)
	}
}

func testDLQNoLoss(t *testing.T, b backend) {
	q := b.open(t, time.Second, 5)
	send(t, q, "kept")
	m := receiveN(t, q, 1, 10*time.Second)[0]
	if err := q.DeadLetter(testCtx(t), m, "permanent", "it failed"); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	d := dlq(t, q)
	first := receiveN(t, d, 1, 10*time.Second)[0]
	receiveNone(t, d)
	again := receiveN(t, d, 1, 10*time.Second)[0] // not deleted: back after the timeout
	for _, got := range []queue.Message{first, again} {
		if string(got.Body) != "kept" || got.Reason != "permanent" || got.LastError != "it failed" || got.Attempts != 1 {
			t.Errorf("dead letter = %q %q %q attempts %d, want kept permanent %q attempts 1", got.Body, got.Reason, got.LastError, got.Attempts, "it failed")
		}
	}
	if again.ID != first.ID {
		t.Errorf("DLQ gave %s back, want %s", again.ID, first.ID)
	}
	if err := d.Delete(testCtx(t), []queue.Message{again}); err != nil {
		t.Fatalf("Delete from the DLQ: %v", err)
	}
	wantStats(t, d, queue.Stats{})
}

func testDLQOfDLQ(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 5)
	send(t, q, "dead")
	m := receiveN(t, q, 1, 10*time.Second)[0]
	if err := q.DeadLetter(testCtx(t), m, "permanent", ""); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	d := dlq(t, q)
	if _, err := d.DLQ(testCtx(t)); err == nil || !strings.Contains(err.Error(), "dead-letter queue") {
		t.Errorf("DLQ of the DLQ: err = %v, want an error saying it is a dead-letter queue", err)
	}
	dm := receiveN(t, d, 1, 10*time.Second)[0]
	if dm.LastError != "" {
		t.Errorf("LastError = %q, want empty", dm.LastError)
	}
	if err := d.DeadLetter(testCtx(t), dm, "again", "x"); err == nil {
		t.Fatalf("DeadLetter on the DLQ succeeded, want an error")
	}
	wantStats(t, d, queue.Stats{InFlight: 1}) // still there
}

func testStats(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 5)
	wantStats(t, q, queue.Stats{})
	send(t, q, "a", "b", "c")
	wantStats(t, q, queue.Stats{Visible: 3})
	m := receiveN(t, q, 1, 10*time.Second)[0]
	wantStats(t, q, queue.Stats{Visible: 2, InFlight: 1})
	if err := q.SetVisibility(testCtx(t), m, 0); err != nil {
		t.Fatalf("SetVisibility(0): %v", err)
	}
	wantStats(t, q, queue.Stats{Visible: 3})
	if got := (queue.Stats{Visible: 2, InFlight: 1, Delayed: 4}).Total(); got != 7 {
		t.Errorf("Total = %d, want 7", got)
	}
}

func testReceiveWaits(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 5)
	start := time.Now()
	ms, err := q.Receive(testCtx(t), 10, time.Second)
	took := time.Since(start)
	if err != nil || len(ms) != 0 {
		t.Fatalf("Receive on an empty queue = %d messages, %v; want none, nil", len(ms), err)
	}
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("Receive with a 1 s wait returned after %s", took)
	}
	// A receive that waits cannot return before its wait; one that does not, can. The
	// quickest of three is judged: under load one call to moto took 1.15 s.
	quickest := time.Hour
	for range 3 {
		start = time.Now()
		if _, err := q.Receive(testCtx(t), 10, 0); err != nil {
			t.Fatalf("Receive without wait: %v", err)
		}
		quickest = min(quickest, time.Since(start))
	}
	if quickest > 900*time.Millisecond {
		t.Errorf("Receive without wait took %s at the quickest of three", quickest)
	}
}

func testReceiveWakes(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 5)
	go func() {
		time.Sleep(300 * time.Millisecond)
		if err := q.Send(context.Background(), []queue.Outgoing{{Body: []byte("late"), DedupID: fmt.Sprintf("late-%d", dedupSeq.Add(1))}}); err != nil {
			t.Errorf("Send: %v", err)
		}
	}()
	start := time.Now()
	ms, err := q.Receive(testCtx(t), 10, 10*time.Second)
	if err != nil || len(ms) != 1 || string(ms[0].Body) != "late" {
		t.Fatalf("Receive = %d messages, %v; want the late one", len(ms), err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a message sent during a 10 s wait was returned after %s", took)
	}
}

func testReceiveCancel(t *testing.T, b backend) {
	q := b.open(t, 30*time.Second, 5)
	ctx, cancel := context.WithCancel(testCtx(t))
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	ms, err := q.Receive(ctx, 10, 15*time.Second)
	if !errors.Is(err, context.Canceled) || len(ms) != 0 {
		t.Errorf("Receive cancelled = %d messages, %v; want none, context.Canceled", len(ms), err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Receive returned %s after its context was cancelled", took)
	}
}
