package sim

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The SQS half of the simulator: standard and FIFO queues with visibility timeouts,
// receive counts, delays, long polls, redrive to a dead-letter queue at maxReceiveCount
// (RedrivePolicy), message attributes and the system attributes snapfleet reads, over
// SQS's JSON 1.0 protocol. moto's SQS scans every message on every receive and, with a
// few thousand messages queued, its one Python process bounds a benchmark before the EC2
// buckets do. StartMessageMoveTask is not modelled (UnsupportedOperation, as moto).

type sqsMessage struct {
	id, body, handle string
	attrs            map[string]sqsAttr
	group, dedup     string
	sent, first      time.Time // first: zero until received
	visible          time.Time
	receives         int
	seq              uint64
}

type sqsAttr struct {
	DataType    string `json:"DataType"`
	StringValue string `json:"StringValue,omitempty"`
}

type sqsQueue struct {
	name, url, arn string
	fifo           bool
	visibility     time.Duration
	redrive        string // the RedrivePolicy attribute as set
	dlqARN         string
	maxReceive     int
	msgs           []*sqsMessage // in send order
	dedup          map[string]time.Time
}

func (s *Sim) queueByURL(u string) *sqsQueue {
	for _, q := range s.queues {
		if q.url == u || strings.HasSuffix(u, strings.TrimPrefix(q.url, s.base)) {
			return q
		}
	}
	return nil
}

func (s *Sim) queueByARN(arn string) *sqsQueue {
	for _, q := range s.queues {
		if q.arn == arn {
			return q
		}
	}
	return nil
}

// sqsError is SQS's JSON error: its __type is the code the SDK reports.
func sqsError(code, format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, code, fmt.Sprintf(format, a...)}
}

func writeSQSError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + e.code, "message": e.message})
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

type sqsSend struct {
	ID                     string             `json:"Id"`
	QueueURL               string             `json:"QueueUrl"`
	MessageBody            string             `json:"MessageBody"`
	DelaySeconds           int                `json:"DelaySeconds"`
	MessageAttributes      map[string]sqsAttr `json:"MessageAttributes"`
	MessageGroupID         string             `json:"MessageGroupId"`
	MessageDeduplicationID string             `json:"MessageDeduplicationId"`
}

// sqsEntry is an entry of SendMessageBatch or DeleteMessageBatch, decoded with the request
// (a plan sends 13,000 batches: decoding each entry again, under s.mu, was more than half
// of the simulator's SQS CPU in a plan).
type sqsEntry struct {
	sqsSend
	ReceiptHandle string `json:"ReceiptHandle"`
}

// sqsBatchResult is an entry of a batch answer's Successful or Failed.
type sqsBatchResult struct {
	ID               string `json:"Id"`
	MessageID        string `json:"MessageId,omitempty"`
	MD5OfMessageBody string `json:"MD5OfMessageBody,omitempty"`
	Code             string `json:"Code,omitempty"`
	Message          string `json:"Message,omitempty"`
	SenderFault      bool   `json:"SenderFault,omitempty"`
}

// sqsBatchAnswer is the answer of SendMessageBatch and DeleteMessageBatch.
type sqsBatchAnswer struct {
	Successful []sqsBatchResult `json:"Successful"`
	Failed     []sqsBatchResult `json:"Failed"`
}

type sqsRequest struct {
	sqsSend
	QueueName               string            `json:"QueueName"`
	Attributes              map[string]string `json:"Attributes"`
	AttributeNames          []string          `json:"AttributeNames"`
	Entries                 []sqsEntry        `json:"Entries"`
	MaxNumberOfMessages     int               `json:"MaxNumberOfMessages"`
	WaitTimeSeconds         int               `json:"WaitTimeSeconds"`
	VisibilityTimeout       *int              `json:"VisibilityTimeout"`
	ReceiptHandle           string            `json:"ReceiptHandle"`
	QueueOwnerAWSAccountID  string            `json:"QueueOwnerAWSAccountId"`
	MessageAttributeNames   []string          `json:"MessageAttributeNames"`
	MessageSystemAttributes []string          `json:"MessageSystemAttributeNames"`
}

// serveSQS answers one SQS call; it takes s.mu itself (a long poll waits without it).
func (s *Sim) serveSQS(w http.ResponseWriter, r *http.Request, body []byte) {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	var in sqsRequest
	if err := json.Unmarshal(body, &in); err != nil {
		writeSQSError(w, sqsError("InvalidParameterValue", "request body: %v", err))
		return
	}
	if s.base == "" {
		s.mu.Lock()
		s.base = "http://" + r.Host
		s.mu.Unlock()
	}
	var out any
	var err *apiError
	if action == "ReceiveMessage" {
		out, err = s.receive(r.Context(), in)
	} else {
		s.mu.Lock()
		s.calls["sqs:"+action]++
		out, err = s.sqsLocked(action, in)
		s.mu.Unlock()
	}
	if err != nil {
		writeSQSError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(out)
}

// queueActions are the actions on a queue that the simulator models.
var queueActions = map[string]bool{"SendMessage": true, "SendMessageBatch": true, "DeleteMessage": true,
	"DeleteMessageBatch": true, "ChangeMessageVisibility": true, "GetQueueAttributes": true}

func (s *Sim) sqsLocked(action string, in sqsRequest) (any, *apiError) {
	now := s.now()
	if action == "CreateQueue" {
		return s.createQueueLocked(in)
	}
	if action == "GetQueueUrl" {
		for _, q := range s.queues {
			if q.name == in.QueueName {
				return map[string]string{"QueueUrl": q.url}, nil
			}
		}
		return nil, sqsError("QueueDoesNotExist", "The specified queue %s does not exist.", in.QueueName)
	}
	if !queueActions[action] {
		return nil, sqsError("UnsupportedOperation", "the simulator does not model sqs:%s", action)
	}
	q := s.queueByURL(in.QueueURL)
	if q == nil {
		return nil, sqsError("QueueDoesNotExist", "The specified queue %s does not exist.", in.QueueURL)
	}
	switch action {
	case "SendMessage":
		id, e := s.sendLocked(q, in.sqsSend, now)
		if e != nil {
			return nil, e
		}
		return map[string]string{"MessageId": id, "MD5OfMessageBody": md5Hex(in.MessageBody)}, nil
	case "SendMessageBatch":
		out := sqsBatchAnswer{Successful: []sqsBatchResult{}, Failed: []sqsBatchResult{}}
		for _, e := range in.Entries {
			id, err := s.sendLocked(q, e.sqsSend, now)
			if err != nil {
				out.Failed = append(out.Failed, sqsBatchResult{ID: e.ID, Code: err.code, Message: err.message, SenderFault: true})
				continue
			}
			out.Successful = append(out.Successful, sqsBatchResult{ID: e.ID, MessageID: id, MD5OfMessageBody: md5Hex(e.MessageBody)})
		}
		return out, nil
	case "DeleteMessage":
		q.deleteLocked(in.ReceiptHandle)
		return map[string]any{}, nil
	case "DeleteMessageBatch":
		out := sqsBatchAnswer{Successful: []sqsBatchResult{}, Failed: []sqsBatchResult{}}
		for _, e := range in.Entries {
			// As SQS: an outdated handle succeeds without deleting anything.
			q.deleteLocked(e.ReceiptHandle)
			out.Successful = append(out.Successful, sqsBatchResult{ID: e.ID})
		}
		return out, nil
	case "ChangeMessageVisibility":
		for _, m := range q.msgs {
			if m.handle == in.ReceiptHandle && in.ReceiptHandle != "" {
				if !m.visible.After(now) {
					return nil, sqsError("MessageNotInflight", "The message is not in flight.")
				}
				m.visible = now.Add(time.Duration(derefInt(in.VisibilityTimeout)) * time.Second)
				return map[string]any{}, nil
			}
		}
		return nil, sqsError("ReceiptHandleIsInvalid", "The receipt handle %q is not valid.", in.ReceiptHandle)
	case "GetQueueAttributes":
		return map[string]any{"Attributes": q.attributes(in.AttributeNames, now)}, nil
	}
	return nil, sqsError("UnsupportedOperation", "sqs:%s is in queueActions but not answered", action)
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func (s *Sim) createQueueLocked(in sqsRequest) (any, *apiError) {
	for _, q := range s.queues {
		if q.name == in.QueueName {
			return map[string]string{"QueueUrl": q.url}, nil
		}
	}
	q := &sqsQueue{name: in.QueueName, url: s.base + "/" + DefaultAccount + "/" + in.QueueName,
		arn: "arn:aws:sqs:us-east-1:" + DefaultAccount + ":" + in.QueueName, fifo: strings.HasSuffix(in.QueueName, ".fifo"),
		visibility: 30 * time.Second, dedup: map[string]time.Time{}}
	if v, ok := in.Attributes["VisibilityTimeout"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, sqsError("InvalidAttributeValue", "VisibilityTimeout %q", v)
		}
		q.visibility = time.Duration(n) * time.Second
	}
	if v := in.Attributes["RedrivePolicy"]; v != "" {
		var rp struct {
			Target string          `json:"deadLetterTargetArn"`
			Max    json.RawMessage `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(v), &rp); err != nil {
			return nil, sqsError("InvalidAttributeValue", "RedrivePolicy %q: %v", v, err)
		}
		n, err := strconv.Atoi(strings.Trim(string(rp.Max), `"`))
		if err != nil || n < 1 || s.queueByARN(rp.Target) == nil {
			return nil, sqsError("InvalidAttributeValue", "RedrivePolicy %q: no such dead-letter queue or bad maxReceiveCount", v)
		}
		q.redrive, q.dlqARN, q.maxReceive = v, rp.Target, n
	}
	s.queues = append(s.queues, q)
	return map[string]string{"QueueUrl": q.url}, nil
}

func (s *Sim) sendLocked(q *sqsQueue, in sqsSend, now time.Time) (string, *apiError) {
	if q.fifo {
		if in.MessageGroupID == "" || in.MessageDeduplicationID == "" {
			return "", sqsError("MissingParameter", "a FIFO queue needs MessageGroupId and MessageDeduplicationId")
		}
		if at, ok := q.dedup[in.MessageDeduplicationID]; ok && now.Sub(at) < 5*time.Minute {
			return fmt.Sprintf("dedup-%s", in.MessageDeduplicationID), nil // accepted, not enqueued again
		}
		q.dedup[in.MessageDeduplicationID] = now
	}
	s.seq++
	m := &sqsMessage{id: fmt.Sprintf("%08x-sim-%016x", s.seq, s.seq), body: in.MessageBody, attrs: in.MessageAttributes,
		group: in.MessageGroupID, dedup: in.MessageDeduplicationID, sent: now,
		visible: now.Add(time.Duration(in.DelaySeconds) * time.Second), seq: s.seq}
	q.msgs = append(q.msgs, m)
	return m.id, nil
}

func (q *sqsQueue) deleteLocked(handle string) {
	for i, m := range q.msgs {
		if handle != "" && m.handle == handle {
			q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			return
		}
	}
}

func (q *sqsQueue) attributes(names []string, now time.Time) map[string]string {
	visible, inFlight, delayed := 0, 0, 0
	for _, m := range q.msgs {
		switch {
		case !m.visible.After(now):
			visible++
		case m.receives == 0:
			delayed++
		default:
			inFlight++
		}
	}
	all := map[string]string{
		"QueueArn": q.arn, "VisibilityTimeout": strconv.Itoa(int(q.visibility.Seconds())),
		"ApproximateNumberOfMessages": strconv.Itoa(visible), "ApproximateNumberOfMessagesNotVisible": strconv.Itoa(inFlight),
		"ApproximateNumberOfMessagesDelayed": strconv.Itoa(delayed), "DelaySeconds": "0", "MessageRetentionPeriod": "345600",
	}
	if q.redrive != "" {
		all["RedrivePolicy"] = q.redrive
	}
	if q.fifo {
		all["FifoQueue"], all["ContentBasedDeduplication"] = "true", "false"
	}
	out := map[string]string{}
	for _, n := range names {
		if n == "All" {
			return all
		}
		if v, ok := all[n]; ok {
			out[n] = v
		}
	}
	return out
}

// receive long-polls for up to WaitTimeSeconds, checking every 20 ms. It is one call,
// as SQS bills it, however many checks it takes.
func (s *Sim) receive(ctx context.Context, in sqsRequest) (any, *apiError) {
	s.mu.Lock()
	s.calls["sqs:ReceiveMessage"]++
	s.mu.Unlock()
	deadline := time.Now().Add(time.Duration(in.WaitTimeSeconds) * time.Second)
	for {
		s.mu.Lock()
		out, err, n := s.receiveLocked(in)
		s.mu.Unlock()
		if err != nil || n > 0 || !time.Now().Before(deadline) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Sim) receiveLocked(in sqsRequest) (any, *apiError, int) {
	q := s.queueByURL(in.QueueURL)
	if q == nil {
		return nil, sqsError("QueueDoesNotExist", "The specified queue %s does not exist.", in.QueueURL), 0
	}
	now := s.now()
	limit := min(max(in.MaxNumberOfMessages, 1), 10)
	vis := q.visibility
	if in.VisibilityTimeout != nil {
		vis = time.Duration(*in.VisibilityTimeout) * time.Second
	}
	var got []map[string]any
	busy := map[string]bool{} // FIFO groups with a message in flight or waiting ahead
	for i := 0; i < len(q.msgs) && len(got) < limit; i++ {
		m := q.msgs[i]
		if q.fifo && busy[m.group] {
			continue
		}
		if m.visible.After(now) {
			busy[m.group] = true
			continue
		}
		if q.maxReceive > 0 && m.receives >= q.maxReceive {
			// Redrive: the message moves to the dead-letter queue as it is.
			if dlq := s.queueByARN(q.dlqARN); dlq != nil {
				m.visible, m.handle = now, ""
				dlq.msgs = append(dlq.msgs, m)
			}
			q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			i--
			continue
		}
		m.receives++
		if m.first.IsZero() {
			m.first = now
		}
		s.seq++
		m.handle = fmt.Sprintf("%s#%d", m.id, s.seq)
		m.visible = now.Add(vis)
		busy[m.group] = true
		attrs := map[string]string{
			"ApproximateReceiveCount":          strconv.Itoa(m.receives),
			"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.first.UnixMilli(), 10),
			"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
		}
		if q.fifo {
			attrs["MessageGroupId"], attrs["MessageDeduplicationId"] = m.group, m.dedup
			attrs["SequenceNumber"] = strconv.FormatUint(m.seq, 10)
		}
		msg := map[string]any{"MessageId": m.id, "ReceiptHandle": m.handle, "Body": m.body,
			"MD5OfBody": md5Hex(m.body), "Attributes": attrs}
		if len(m.attrs) > 0 {
			msg["MessageAttributes"] = m.attrs
		}
		got = append(got, msg)
	}
	if got == nil {
		return map[string]any{}, nil, 0
	}
	return map[string]any{"Messages": got}, nil, len(got)
}
