package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// sqsAPI is the part of the SQS client the backend uses, with the SDK's exact signatures.
type sqsAPI interface {
	SendMessage(ctx context.Context, params *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, params *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ReceiveMessage(ctx context.Context, params *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, params *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(ctx context.Context, params *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributes(ctx context.Context, params *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	GetQueueUrl(ctx context.Context, params *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	StartMessageMoveTask(ctx context.Context, params *sqs.StartMessageMoveTaskInput, optFns ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error)
	ListMessageMoveTasks(ctx context.Context, params *sqs.ListMessageMoveTasksInput, optFns ...func(*sqs.Options)) (*sqs.ListMessageMoveTasksOutput, error)
}

// Message attributes snapfleet sets on a message it dead-letters.
const (
	attrReason   = "snapfleet.reason"
	attrError    = "snapfleet.error"
	attrAttempts = "snapfleet.attempts"
	attrFailedAt = "snapfleet.failed_at"
	attrSentAt   = "snapfleet.sent_at"
	// attrFirstReceived is the first receive of the job's message, carried by a requeued
	// copy and a dead letter: their own ApproximateFirstReceiveTimestamp is later.
	attrFirstReceived = "snapfleet.first_received_at"
	// attrNotBefore is set on a requeued copy that SQS could not delay for all of d (FIFO,
	// or more than 15 minutes): Receive hides it again until then instead of returning it.
	attrNotBefore = "snapfleet.not_before"
)

const (
	sqsBatch      = 10    // SQS's batch limit
	sqsMaxWait    = 20    // seconds, SQS's long-poll limit
	sqsMaxVisible = 43200 // seconds, SQS's visibility limit
	sqsMaxDelay   = 900   // seconds, SQS's per-message DelaySeconds limit
	maxErrorLen   = 1000
	sendRetries   = 3
	unknownReason = "unspecified"
)

type sqsQueue struct {
	api   sqsAPI
	url   string
	fifo  bool
	isDLQ bool
	o     Options

	mu         sync.Mutex
	dlqURL     string // cached once found
	arn        string // cached once read
	maxReceive int    // the RedrivePolicy's maxReceiveCount (0: none), once policyRead
	policyRead bool
}

// openSQS opens an SQS queue URL that CheckURL accepted.
func openSQS(_ context.Context, rawURL string, o Options) (Queue, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadURL, rawURL, err)
	}
	region, isAWS := sqsRegion(u.Hostname())
	cfg := o.AWS.Copy()
	if region != "" {
		cfg.Region = region
	}
	if cfg.Region == "" {
		// An emulator needs some region to sign with; the queue URL names none.
		cfg.Region = "us-east-1"
	}
	endpoint := u.Scheme + "://" + u.Host
	client := sqs.NewFromConfig(cfg, func(so *sqs.Options) {
		if !isAWS && so.BaseEndpoint == nil {
			so.BaseEndpoint = &endpoint
		}
	})
	return newSQS(client, rawURL, o, false), nil
}

func newSQS(api sqsAPI, u string, o Options, isDLQ bool) *sqsQueue {
	return &sqsQueue{api: api, url: u, fifo: strings.HasSuffix(u, ".fifo"), isDLQ: isDLQ, o: o}
}

// sqsRegion returns the region named by an SQS host (sqs.REGION.amazonaws.com or the
// legacy REGION.queue.amazonaws.com) and whether the host is AWS's at all.
func sqsRegion(host string) (region string, isAWS bool) {
	host = strings.ToLower(host)
	var rest string
	switch {
	case strings.HasSuffix(host, ".amazonaws.com"):
		rest = strings.TrimSuffix(host, ".amazonaws.com")
	case strings.HasSuffix(host, ".amazonaws.com.cn"):
		rest = strings.TrimSuffix(host, ".amazonaws.com.cn")
	default:
		return "", false
	}
	labels := strings.Split(rest, ".")
	switch {
	case len(labels) >= 2 && strings.HasPrefix(labels[0], "sqs"): // sqs.R, sqs-fips.R
		return labels[1], true
	case len(labels) == 2 && labels[1] == "queue":
		return labels[0], true
	}
	return "", true
}

func (q *sqsQueue) URL() string  { return q.url }
func (q *sqsQueue) Close() error { return nil }

func (q *sqsQueue) Send(ctx context.Context, msgs []Outgoing) error {
	failed := 0
	var firstErr error
	for start := 0; start < len(msgs); start += sqsBatch {
		chunk := msgs[start:min(start+sqsBatch, len(msgs))]
		n, err := q.sendBatch(ctx, chunk)
		failed += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if failed > 0 {
		return fmt.Errorf("sending to %s: %d of %d messages failed: %w", q.url, failed, len(msgs), firstErr)
	}
	return nil
}

// sendBatch sends up to 10 messages, retrying the entries SQS failed on its side, and
// returns how many could not be sent.
func (q *sqsQueue) sendBatch(ctx context.Context, msgs []Outgoing) (int, error) {
	pending := make(map[string]types.SendMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		e := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(m.Body))}
		if q.fifo {
			e.MessageDeduplicationId, e.MessageGroupId = fifoIDs(m.DedupID, m.GroupID)
		}
		pending[*e.Id] = e
	}
	var lastErr error
	permanent := 0
	for attempt := 0; attempt < sendRetries && len(pending) > 0; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, time.Duration(attempt)*200*time.Millisecond); err != nil {
				return len(pending) + permanent, err
			}
		}
		entries := make([]types.SendMessageBatchRequestEntry, 0, len(pending))
		for i := range msgs { // keep the order the caller gave
			if e, ok := pending[strconv.Itoa(i)]; ok {
				entries = append(entries, e)
			}
		}
		out, err := q.api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		for _, ok := range out.Successful {
			delete(pending, aws.ToString(ok.Id))
		}
		for _, f := range out.Failed {
			id := aws.ToString(f.Id)
			lastErr = fmt.Errorf("entry failed: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
			if f.SenderFault {
				// The entry itself is wrong; sending it again will not help.
				delete(pending, id)
				permanent++
			}
		}
	}
	return len(pending) + permanent, lastErr
}

// fifoIDs turns a dedup and group id into ones SQS accepts: 1–128 printable ASCII
// characters, else the sha256 hex of the id. A missing group id is the dedup id, so
// unrelated jobs do not wait on each other.
func fifoIDs(dedup, group string) (*string, *string) {
	if group == "" {
		group = dedup
	}
	if group == "" {
		group = "snapfleet"
	}
	var d *string
	if dedup != "" {
		d = aws.String(sqsID(dedup))
	}
	return d, aws.String(sqsID(group))
}

func sqsID(s string) string {
	ok := len(s) <= 128
	for i := 0; ok && i < len(s); i++ {
		ok = s[i] >= 0x21 && s[i] <= 0x7e
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (q *sqsQueue) Receive(ctx context.Context, n int, wait time.Duration) ([]Message, error) {
	n = min(max(n, 1), sqsBatch)
	deadline := time.Now().Add(wait)
	for {
		msgs, held, err := q.receive(ctx, n, time.Until(deadline))
		if err != nil || len(msgs) > 0 || held == 0 || time.Until(deadline) <= 0 {
			return msgs, err
		}
		// Every message received was a requeued copy held back: wait on for others.
	}
}

// receive is one ReceiveMessage call. A requeued copy whose not-before time is still to
// come (see Requeue) is hidden until then and counted in held instead of returned.
func (q *sqsQueue) receive(ctx context.Context, n int, wait time.Duration) (msgs []Message, held int, err error) {
	in := &sqs.ReceiveMessageInput{
		QueueUrl:            &q.url,
		MaxNumberOfMessages: int32(n),
		WaitTimeSeconds:     int32(min(ceilSeconds(wait), sqsMaxWait)),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
			types.MessageSystemAttributeNameApproximateFirstReceiveTimestamp,
			types.MessageSystemAttributeNameMessageGroupId,
		},
		MessageAttributeNames: []string{"All"},
	}
	if q.o.Visibility > 0 {
		in.VisibilityTimeout = int32(min(ceilSeconds(q.o.Visibility), sqsMaxVisible))
	}
	out, err := q.api.ReceiveMessage(ctx, in)
	if err != nil {
		return nil, 0, fmt.Errorf("receiving from %s: %w", q.url, err)
	}
	msgs = make([]Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msg := q.message(m)
		if left := time.Until(notBefore(m)); left > 0 && !q.isDLQ {
			// Not due yet. Should hiding it fail, it comes back after the visibility
			// timeout and is held again then.
			_ = q.SetVisibility(ctx, msg, left)
			held++
			continue
		}
		msgs = append(msgs, msg)
	}
	return msgs, held, nil
}

// notBefore is the time before which a requeued copy must not be handled; zero if none.
func notBefore(m types.Message) time.Time {
	v, ok := m.MessageAttributes[attrNotBefore]
	if !ok {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, aws.ToString(v.StringValue))
	return t
}

func (q *sqsQueue) message(m types.Message) Message {
	msg := Message{ID: aws.ToString(m.MessageId), Receipt: aws.ToString(m.ReceiptHandle), Body: []byte(aws.ToString(m.Body))}
	msg.Attempts, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	msg.GroupID = m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
	msg.SentAt = unixMilli(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)])
	firstReceived := unixMilli(m.Attributes[string(types.MessageSystemAttributeNameApproximateFirstReceiveTimestamp)])
	attr := func(k string) string {
		if v, ok := m.MessageAttributes[k]; ok {
			return aws.ToString(v.StringValue)
		}
		return ""
	}
	attrTime := func(k string) time.Time {
		t, _ := time.Parse(time.RFC3339Nano, attr(k))
		return t
	}
	if t := attrTime(attrSentAt); !t.IsZero() {
		msg.SentAt = t
	}
	why := attr(attrReason)
	if q.isDLQ && why != "" {
		// Dead-lettered by snapfleet: a new message, whose own first receive is a listing's.
		msg.Reason = why
		msg.LastError = attr(attrError)
		if n, err := strconv.Atoi(attr(attrAttempts)); err == nil {
			msg.Attempts = n
		}
		msg.FailedAt = attrTime(attrFailedAt)
		msg.FirstReceivedAt = attrTime(attrFirstReceived)
		return msg
	}
	// A job's message, or one SQS's own redrive moved to the DLQ: its first receive is
	// its own, or a requeued copy's original's. A message with a reason on the jobs queue
	// came back from the DLQ with its attributes (a move task): they are an earlier round's.
	msg.FirstReceivedAt = firstReceived
	if t := attrTime(attrFirstReceived); !t.IsZero() && why == "" {
		msg.FirstReceivedAt = t
	}
	if q.isDLQ {
		msg.Reason = reason.ExhaustedRetries
	}
	return msg
}

// unixMilli parses an SQS timestamp attribute (milliseconds since the epoch); zero if
// absent or malformed.
func unixMilli(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func (q *sqsQueue) Delete(ctx context.Context, msgs []Message) error {
	failed := 0
	var firstErr error
	for start := 0; start < len(msgs); start += sqsBatch {
		chunk := msgs[start:min(start+sqsBatch, len(msgs))]
		entries := make([]types.DeleteMessageBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.Receipt)}
		}
		out, err := q.api.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			failed += len(chunk)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, f := range out.Failed {
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("entry failed: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("deleting from %s: %d of %d messages failed: %w", q.url, failed, len(msgs), firstErr)
	}
	return nil
}

func (q *sqsQueue) SetVisibility(ctx context.Context, m Message, d time.Duration) error {
	_, err := q.api.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          &q.url,
		ReceiptHandle:     aws.String(m.Receipt),
		VisibilityTimeout: int32(min(ceilSeconds(d), sqsMaxVisible)),
	})
	if err != nil {
		return fmt.Errorf("setting visibility of message %s in %s to %s: %w", m.ID, q.url, d, err)
	}
	return nil
}

func (q *sqsQueue) Stats(ctx context.Context) (Stats, error) {
	out, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &q.url,
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return Stats{}, fmt.Errorf("counting messages of %s: %w", q.url, err)
	}
	var s Stats
	var errs []error
	for name, dst := range map[types.QueueAttributeName]*int{
		types.QueueAttributeNameApproximateNumberOfMessages:           &s.Visible,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible: &s.InFlight,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed:    &s.Delayed,
	} {
		v, ok := out.Attributes[string(name)]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s = %q: %w", name, v, err))
		}
		*dst = n
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("counting messages of %s: %w", q.url, err)
	}
	return s, nil
}

// ceilSeconds rounds d up to whole seconds: a positive wait or timeout never becomes 0.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
