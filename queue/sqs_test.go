package queue_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/queue"
)

// TestSQS is the SQS-only behaviour, on the shared moto_server.
func TestSQS(t *testing.T) {
	t.Parallel()
	s := sharedMoto(t)
	cfg := s.AWSConfig(t)
	client := sqs.NewFromConfig(cfg)

	t.Run("NoRedrivePolicyKeepsTheMessage", func(t *testing.T) {
		t.Parallel()
		u := createSQSQueue(t, client, fmt.Sprintf("no-redrive-%d", queueSeq.Add(1)), false, nil)
		q, err := queue.Open(testCtx(t), u, queue.Options{AWS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		send(t, q, "precious")
		m := receiveN(t, q, 1, 10*time.Second)[0]
		want := fmt.Sprintf("queue %s has no RedrivePolicy: cannot dead-letter", u)
		if err := q.DeadLetter(testCtx(t), m, "permanent", "x"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DeadLetter = %v, want %q", err, want)
		}
		if _, err := q.DLQ(testCtx(t)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DLQ = %v, want %q", err, want)
		}
		wantStats(t, q, queue.Stats{InFlight: 1})
		if err := q.SetVisibility(testCtx(t), m, 0); err != nil {
			t.Fatal(err)
		}
		if again := receiveN(t, q, 1, 10*time.Second)[0]; string(again.Body) != "precious" {
			t.Errorf("got %q back, want the message that could not be dead-lettered", again.Body)
		}
	})

	t.Run("OpenWithJustTheURL", func(t *testing.T) {
		t.Parallel()
		u := createSQSQueue(t, client, fmt.Sprintf("url-only-%d", queueSeq.Add(1)), false, nil)
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Fatalf("moto queue URL %q is not a loopback URL", u)
		}
		bare := cfg.Copy() // credentials only: no endpoint, no region
		bare.BaseEndpoint, bare.Region = nil, ""
		q, err := queue.Open(testCtx(t), u, queue.Options{AWS: bare})
		if err != nil {
			t.Fatal(err)
		}
		send(t, q, "found the host")
		if got := receiveN(t, q, 1, 10*time.Second)[0]; string(got.Body) != "found the host" {
			t.Errorf("body = %q", got.Body)
		}
	})

	t.Run("SendRetriesFailedEntries", func(t *testing.T) {
		t.Parallel()
		calls := 0
		faults := middleware.InitializeMiddlewareFunc("faults", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			batch, ok := in.Parameters.(*sqs.SendMessageBatchInput)
			if !ok {
				return next.HandleInitialize(ctx, in)
			}
			calls++
			if calls == 2 {
				return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "InternalError", Message: "injected"}
			}
			var pass []types.SendMessageBatchRequestEntry
			var failed []types.BatchResultErrorEntry
			for i, e := range batch.Entries {
				switch {
				case *e.MessageBody == "poison":
					failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: ptr("InvalidMessageContents"), Message: ptr("injected"), SenderFault: true})
				case calls == 1 && i%2 == 1:
					failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: ptr("InternalError"), Message: ptr("injected"), SenderFault: false})
				default:
					pass = append(pass, e)
				}
			}
			out := &sqs.SendMessageBatchOutput{}
			var md middleware.Metadata
			if len(pass) > 0 {
				cp := *batch
				cp.Entries = pass
				in.Parameters = &cp
				res, m, err := next.HandleInitialize(ctx, in)
				if err != nil {
					return res, m, err
				}
				out, md = res.Result.(*sqs.SendMessageBatchOutput), m
			}
			out.Failed = append(out.Failed, failed...)
			return middleware.InitializeOutput{Result: out}, md, nil
		})
		faulty := cfg.Copy()
		faulty.APIOptions = append(faulty.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(faults, middleware.Before)
		})
		u := createSQSQueue(t, client, fmt.Sprintf("faulty-%d", queueSeq.Add(1)), false, nil)
		q, err := queue.Open(testCtx(t), u, queue.Options{AWS: faulty, Visibility: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []queue.Outgoing
		var want []string
		for i := range 12 {
			body := fmt.Sprintf("m%02d", i)
			if i == 11 {
				body = "poison"
			} else {
				want = append(want, body)
			}
			msgs = append(msgs, queue.Outgoing{Body: []byte(body)})
		}
		err = q.Send(testCtx(t), msgs)
		if err == nil || !strings.Contains(err.Error(), "1 of 12 messages failed") {
			t.Errorf("Send = %v, want an error saying 1 of 12 failed", err)
		}
		var got []string
		for _, m := range receiveN(t, q, 11, 20*time.Second) {
			got = append(got, string(m.Body))
		}
		receiveNone(t, q)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("received %q, want each of %q once", got, want)
		}
		if calls != 4 {
			t.Errorf("SendMessageBatch calls = %d, want 4 (partial failure, call error, success; second batch)", calls)
		}
	})

	t.Run("FIFODeduplicates", func(t *testing.T) {
		t.Parallel()
		u := createSQSQueue(t, client, fmt.Sprintf("dedup-%d", queueSeq.Add(1)), true, nil)
		q, err := queue.Open(testCtx(t), u, queue.Options{AWS: cfg, Visibility: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		// Unique per run: moto outlives a test with -count=N and remembers dedup ids.
		key := fmt.Sprintf("111111111111/us-east-1/vol-0abc/daily/%d", queueSeq.Add(1))
		long := key + " a dedup id with spaces, " + strings.Repeat("x", 200)
		err = q.Send(testCtx(t), []queue.Outgoing{
			{Body: []byte("first"), DedupID: key},
			{Body: []byte("duplicate"), DedupID: key},
			{Body: []byte("long"), DedupID: long, GroupID: long},
			{Body: []byte("long duplicate"), DedupID: long},
		})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		var got []string
		for _, m := range receiveN(t, q, 2, 10*time.Second) {
			got = append(got, string(m.Body))
		}
		receiveNone(t, q)
		slices.Sort(got)
		if !slices.Equal(got, []string{"first", "long"}) {
			t.Errorf("received %q, want first and long once each", got)
		}
	})
}

func ptr(s string) *string { return &s }
