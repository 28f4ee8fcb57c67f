package queue

// The dead-letter side of the SQS backend: requeueing without counting towards the
// RedrivePolicy, dead-lettering, and moving dead letters back.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Requeue sends a copy of m, delayed by d, and deletes m: the copy starts again at receive
// count 0, so that redrive does not dead-letter a job that was only throttled. On FIFO, or
// beyond SQS's 900 s delay, the copy carries a not-before time that Receive honours; the
// FIFO copy's deduplication id is "requeue-" and m's id (README: Failure handling).
func (q *sqsQueue) Requeue(ctx context.Context, m Message, d time.Duration) error {
	if q.isDLQ {
		return fmt.Errorf("queue %s is a dead-letter queue: cannot requeue message %s", q.url, m.ID)
	}
	// Unknown (an error) is treated as not 1: the worker asked already, so it is cached.
	maxReceive, _ := q.MaxReceive(ctx)
	d = max(d, 0)
	attrs := map[string]types.MessageAttributeValue{}
	timeAttrs(attrs, m)
	in := &sqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(string(m.Body))}
	var delayed time.Duration
	if q.fifo {
		group := m.GroupID
		if group == "" {
			group = m.ID
		}
		in.MessageDeduplicationId = aws.String(sqsID("requeue-" + m.ID))
		in.MessageGroupId = aws.String(sqsID(group))
	} else {
		in.DelaySeconds = int32(min(ceilSeconds(d), sqsMaxDelay))
		delayed = time.Duration(in.DelaySeconds) * time.Second
	}
	if delayed < d && maxReceive != 1 {
		attrs[attrNotBefore] = stringAttr(time.Now().Add(d).UTC().Format(time.RFC3339Nano))
	}
	if len(attrs) > 0 {
		in.MessageAttributes = attrs
	}
	if _, err := q.api.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("requeueing message %s in %s: %w", m.ID, q.url, err)
	}
	if err := q.Delete(ctx, []Message{m}); err != nil {
		return fmt.Errorf("requeued message %s in %s, but: %w", m.ID, q.url, err)
	}
	return nil
}

// MaxReceive reads the maxReceiveCount of the queue's RedrivePolicy, once.
func (q *sqsQueue) MaxReceive(ctx context.Context) (int, error) {
	if q.isDLQ {
		return 0, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.policyRead {
		return q.maxReceive, nil
	}
	rp, err := q.redrivePolicy(ctx)
	if err == nil {
		err = rp.maxErr
	}
	if err != nil {
		return 0, err
	}
	q.maxReceive, q.policyRead = rp.maxReceive, true
	return q.maxReceive, nil
}

func (q *sqsQueue) DeadLetter(ctx context.Context, m Message, reason, lastErr string) error {
	if q.isDLQ {
		return fmt.Errorf("queue %s is a dead-letter queue: cannot dead-letter message %s again", q.url, m.ID)
	}
	dlq, err := q.findDLQ(ctx)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = unknownReason
	}
	now := time.Now().UTC()
	attrs := map[string]types.MessageAttributeValue{
		attrReason:   stringAttr(reason),
		attrAttempts: {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(m.Attempts))},
		attrFailedAt: stringAttr(now.Format(time.RFC3339Nano)),
	}
	if e := attrText(lastErr); e != "" {
		attrs[attrError] = stringAttr(e)
	}
	timeAttrs(attrs, m)
	in := &sqs.SendMessageInput{QueueUrl: &dlq, MessageBody: aws.String(string(m.Body)), MessageAttributes: attrs}
	if strings.HasSuffix(dlq, ".fifo") {
		// A group of its own: one shared group would let a FIFO DLQ hand out only one
		// batch at a time, and a listing would stop at the first ten.
		in.MessageDeduplicationId = aws.String(sqsID(m.ID))
		in.MessageGroupId = aws.String(sqsID(m.ID))
	}
	if _, err := q.api.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("dead-lettering message %s to %s: %w", m.ID, dlq, err)
	}
	if err := q.Delete(ctx, []Message{m}); err != nil {
		return fmt.Errorf("dead-lettered message %s to %s, but: %w", m.ID, dlq, err)
	}
	return nil
}

// timeAttrs sets the attributes that carry m's SentAt and FirstReceivedAt to a copy of m.
func timeAttrs(attrs map[string]types.MessageAttributeValue, m Message) {
	for k, t := range map[string]time.Time{attrSentAt: m.SentAt, attrFirstReceived: m.FirstReceivedAt} {
		if !t.IsZero() {
			attrs[k] = stringAttr(t.UTC().Format(time.RFC3339Nano))
		}
	}
}

func stringAttr(s string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
}

// attrText makes s a valid SQS attribute value: characters SQS refuses become '?', and
// it is cut to about maxErrorLen bytes on a character boundary.
func attrText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxErrorLen {
			b.WriteString("…")
			break
		}
		switch {
		case r == utf8.RuneError, r < 0x20 && r != '\t' && r != '\n' && r != '\r',
			r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// redrive is what snapfleet reads of a queue's RedrivePolicy.
type redrive struct {
	dlqARN     string // empty: the queue has no RedrivePolicy
	maxReceive int
	maxErr     error // maxReceiveCount unreadable: only MaxReceive fails on it
}

// redrivePolicy reads and parses this queue's RedrivePolicy. The caller holds q.mu.
func (q *sqsQueue) redrivePolicy(ctx context.Context) (redrive, error) {
	out, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       &q.url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		return redrive{}, fmt.Errorf("reading the RedrivePolicy of %s: %w", q.url, err)
	}
	policy := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if policy == "" {
		return redrive{}, nil
	}
	return parseRedrive(q.url, policy)
}

// parseRedrive parses a RedrivePolicy. AWS gives maxReceiveCount as a number; a policy
// set by hand may hold it as a string.
func parseRedrive(url, policy string) (redrive, error) {
	var rp struct {
		DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(policy), &rp); err != nil {
		return redrive{}, fmt.Errorf("parsing the RedrivePolicy of %s: %w", url, err)
	}
	r := redrive{dlqARN: rp.DeadLetterTargetArn}
	n, err := strconv.Atoi(strings.Trim(string(rp.MaxReceiveCount), `"`))
	if err != nil || n < 1 {
		r.maxErr = fmt.Errorf("queue %s: RedrivePolicy maxReceiveCount %s is not a positive integer", url, rp.MaxReceiveCount)
	}
	r.maxReceive = n
	return r, nil
}

// findDLQ returns the URL of the queue named by this queue's RedrivePolicy.
func (q *sqsQueue) findDLQ(ctx context.Context) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dlqURL != "" {
		return q.dlqURL, nil
	}
	rp, err := q.redrivePolicy(ctx)
	if err != nil {
		return "", err
	}
	if rp.dlqARN == "" {
		return "", fmt.Errorf("queue %s has no RedrivePolicy: cannot dead-letter", q.url)
	}
	// arn:PARTITION:sqs:REGION:ACCOUNT:NAME
	arn := strings.Split(rp.dlqARN, ":")
	if len(arn) != 6 || arn[0] != "arn" || arn[2] != "sqs" || arn[4] == "" || arn[5] == "" {
		return "", fmt.Errorf("queue %s: RedrivePolicy deadLetterTargetArn %q is not an SQS queue ARN", q.url, rp.dlqARN)
	}
	got, err := q.api.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &arn[5], QueueOwnerAWSAccountId: &arn[4]})
	if err != nil {
		return "", fmt.Errorf("finding the dead-letter queue %s of %s: %w", rp.dlqARN, q.url, err)
	}
	q.dlqURL = aws.ToString(got.QueueUrl)
	if rp.maxErr == nil {
		q.maxReceive, q.policyRead = rp.maxReceive, true
	}
	return q.dlqURL, nil
}

func (q *sqsQueue) DLQ(ctx context.Context) (Queue, error) {
	if q.isDLQ {
		return nil, fmt.Errorf("queue %s is a dead-letter queue: it has no dead-letter queue of its own here", q.url)
	}
	u, err := q.findDLQ(ctx)
	if err != nil {
		return nil, err
	}
	return newSQS(q.api, u, q.o, true), nil
}

// movePoll is how often moveAll asks how a move task is doing.
var movePoll = 2 * time.Second

// queueARN returns the ARN of this queue.
func (q *sqsQueue) queueARN(ctx context.Context) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.arn != "" {
		return q.arn, nil
	}
	out, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       &q.url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", fmt.Errorf("reading the ARN of %s: %w", q.url, err)
	}
	q.arn = out.Attributes[string(types.QueueAttributeNameQueueArn)]
	if q.arn == "" {
		return "", fmt.Errorf("reading the ARN of %s: no QueueArn attribute", q.url)
	}
	return q.arn, nil
}

// moveAll moves every message of this DLQ to dst with StartMessageMoveTask and waits for
// the task to end. The start is tried once: an endpoint without move tasks (an emulator, a
// policy without sqs:StartMessageMoveTask) is errMoveUnsupported, and nothing has moved.
func (q *sqsQueue) moveAll(ctx context.Context, dst Queue) (int, error) {
	to, ok := dst.(*sqsQueue)
	if !ok || !q.isDLQ {
		return 0, fmt.Errorf("%w: %s and %s are not an SQS dead-letter queue and an SQS queue", errMoveUnsupported, q.url, dst.URL())
	}
	src, err := q.queueARN(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errMoveUnsupported, err)
	}
	dstARN, err := to.queueARN(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errMoveUnsupported, err)
	}
	start, err := q.api.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &src, DestinationArn: &dstARN},
		func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
	if err != nil {
		return 0, fmt.Errorf("%w: StartMessageMoveTask from %s to %s: %v", errMoveUnsupported, src, dstARN, err)
	}
	handle := aws.ToString(start.TaskHandle)
	for {
		if err := sleep(ctx, movePoll); err != nil {
			return 0, fmt.Errorf("waiting for move task %s (it goes on without us): %w", handle, err)
		}
		out, err := q.api.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &src, MaxResults: aws.Int32(10)})
		if err != nil {
			return 0, fmt.Errorf("reading the status of move task %s: %w", handle, err)
		}
		// The newest task comes first; only a running task carries its handle.
		if len(out.Results) == 0 {
			return 0, fmt.Errorf("move task %s from %s is not listed", handle, src)
		}
		t := out.Results[0]
		if h := aws.ToString(t.TaskHandle); h != "" && h != handle {
			return 0, fmt.Errorf("move task %s from %s: another task %s is the newest", handle, src, h)
		}
		moved := int(t.ApproximateNumberOfMessagesMoved)
		switch aws.ToString(t.Status) {
		case "RUNNING", "CANCELLING":
		case "COMPLETED":
			return moved, nil
		default:
			return moved, fmt.Errorf("move task %s from %s to %s ended %s after moving about %d messages: %s",
				handle, src, dstARN, aws.ToString(t.Status), moved, aws.ToString(t.FailureReason))
		}
	}
}
