package queue

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

var _ sqsAPI = (*sqs.Client)(nil)

func TestSQSRegion(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		host   string
		region string
		isAWS  bool
	}{
		{"sqs.eu-west-1.amazonaws.com", "eu-west-1", true},
		{"SQS.us-east-2.AmazonAWS.com", "us-east-2", true},
		{"sqs-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1", true},
		{"ap-south-1.queue.amazonaws.com", "ap-south-1", true},
		{"sqs.cn-north-1.amazonaws.com.cn", "cn-north-1", true},
		{"amazonaws.com", "", false},
		{"127.0.0.1", "", false},
		{"localhost", "", false},
		{"sqs.us-east-1.amazonaws.com.evil.example", "", false},
	} {
		region, isAWS := sqsRegion(c.host)
		if region != c.region || isAWS != c.isAWS {
			t.Errorf("sqsRegion(%q) = %q, %v; want %q, %v", c.host, region, isAWS, c.region, c.isAWS)
		}
	}
}

func TestSQSID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 129)
	for _, c := range []struct {
		in     string
		hashed bool
	}{
		{"111111111111/us-east-1/vol-0abc/daily/2026-11-22T00:00:00Z", false},
		{`!"#$%&'()*+,-./:;<=>?@[\]^_{|}~`, false},
		{strings.Repeat("a", 128), false},
		{long, true},
		{"has space", true},
		{"ünïcode", true},
		{"tab\there", true},
	} {
		got := sqsID(c.in)
		if hashed := got != c.in; hashed != c.hashed {
			t.Errorf("sqsID(%q) = %q: hashed %v, want %v", c.in, got, hashed, c.hashed)
		}
		if c.hashed && len(got) != 64 {
			t.Errorf("sqsID(%q) = %q, want a sha256 hex", c.in, got)
		}
	}
	if sqsID(long) != sqsID(long) || sqsID(long) == sqsID(long+"b") {
		t.Error("sqsID is not a stable, distinct hash")
	}
	d, g := fifoIDs("job-key", "")
	if *d != "job-key" || *g != "job-key" {
		t.Errorf("fifoIDs without a group = %q, %q; want the dedup id for both", *d, *g)
	}
	d, g = fifoIDs("", "")
	if d != nil || *g == "" {
		t.Errorf("fifoIDs with nothing = %v, %q; want no dedup id and some group", d, *g)
	}
}

func TestAttrText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, want string
	}{
		{"plain error", "plain error"},
		{"nul\x00 and bell\a", "nul? and bell?"},
		{"keeps\ttab\nnewline\r", "keeps\ttab\nnewline\r"},
		{"bad utf8 \xff", "bad utf8 ?"},
		{"", ""},
	} {
		if got := attrText(c.in); got != c.want {
			t.Errorf("attrText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := attrText(strings.Repeat("日", 2000))
	if !utf8.ValidString(got) || len(got) > maxErrorLen+8 || !strings.HasSuffix(got, "…") {
		t.Errorf("attrText of a long error = %d bytes, valid %v, want ≈%d bytes ending in …", len(got), utf8.ValidString(got), maxErrorLen)
	}
}

func TestParseRedrive(t *testing.T) {
	t.Parallel()
	const arn = "arn:aws:sqs:us-east-1:123456789012:dlq"
	for _, c := range []struct {
		policy string
		max    int
		maxErr bool
	}{
		{`{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":5}`, 5, false},
		{`{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":"3"}`, 3, false},
		{`{"deadLetterTargetArn":"` + arn + `"}`, 0, true},
		{`{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":0}`, 0, true},
	} {
		r, err := parseRedrive("q", c.policy)
		if err != nil || r.dlqARN != arn || (r.maxErr != nil) != c.maxErr || (!c.maxErr && r.maxReceive != c.max) {
			t.Errorf("parseRedrive(%s) = %+v, %v; want ARN %s, max %d (error %v)", c.policy, r, err, arn, c.max, c.maxErr)
		}
	}
	if _, err := parseRedrive("q", "{"); err == nil {
		t.Error("parseRedrive of bad JSON: no error")
	}
}

// requeueAPI records what Requeue sends and deletes.
type requeueAPI struct {
	sqsAPI
	maxReceive string
	sent       []*sqs.SendMessageInput
	deleted    []string
}

func (a *requeueAPI) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":` + a.maxReceive + `}`,
	}}, nil
}

func (a *requeueAPI) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	a.sent = append(a.sent, in)
	return &sqs.SendMessageOutput{}, nil
}

func (a *requeueAPI) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	for _, e := range in.Entries {
		a.deleted = append(a.deleted, aws.ToString(e.ReceiptHandle))
	}
	return &sqs.DeleteMessageBatchOutput{}, nil
}

// TestRequeueDelay: SQS delays a standard queue's copy up to 900 s; what it cannot delay
// (longer waits, any wait on FIFO) becomes a not-before time, unless maxReceiveCount 1
// leaves no receive to hold the copy with.
func TestRequeueDelay(t *testing.T) {
	t.Parallel()
	sentAt := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	m := Message{ID: "id-1", Receipt: "r-1", Body: []byte("job"), SentAt: sentAt, GroupID: "acct/region/vol"}
	for _, c := range []struct {
		name       string
		url        string
		maxReceive string
		d          time.Duration
		delay      int32
		notBefore  bool
	}{
		{"standard", "http://h/1/jobs", "5", 10 * time.Second, 10, false},
		{"standard rounds up", "http://h/1/jobs", "5", 1500 * time.Millisecond, 2, false},
		{"standard over 900s", "http://h/1/jobs", "5", 20 * time.Minute, 900, true},
		{"standard over 900s, max 1", "http://h/1/jobs", "1", 20 * time.Minute, 900, false},
		{"fifo", "http://h/1/jobs.fifo", "5", 10 * time.Second, 0, true},
		{"fifo, max 1", "http://h/1/jobs.fifo", "1", 10 * time.Second, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			api := &requeueAPI{maxReceive: c.maxReceive}
			q := newSQS(api, c.url, Options{}, false)
			start := time.Now()
			if err := q.Requeue(context.Background(), m, c.d); err != nil {
				t.Fatalf("Requeue: %v", err)
			}
			if len(api.sent) != 1 || len(api.deleted) != 1 || api.deleted[0] != m.Receipt {
				t.Fatalf("sent %d, deleted %v; want one copy sent and %s deleted", len(api.sent), api.deleted, m.Receipt)
			}
			in := api.sent[0]
			if aws.ToString(in.MessageBody) != "job" || in.DelaySeconds != c.delay {
				t.Errorf("copy = %q delayed %d s, want %q delayed %d s", aws.ToString(in.MessageBody), in.DelaySeconds, "job", c.delay)
			}
			if got := aws.ToString(in.MessageAttributes[attrSentAt].StringValue); got != sentAt.Format(time.RFC3339Nano) {
				t.Errorf("copy's sent_at = %q, want the original's %s", got, sentAt)
			}
			nb, ok := in.MessageAttributes[attrNotBefore]
			if ok != c.notBefore {
				t.Fatalf("not-before attribute present %v, want %v", ok, c.notBefore)
			}
			if ok {
				got, err := time.Parse(time.RFC3339Nano, aws.ToString(nb.StringValue))
				if err != nil || got.Before(start.Add(c.d)) || got.After(time.Now().Add(c.d)) {
					t.Errorf("not before %s (%v), want %s from now", got, err, c.d)
				}
			}
			fifo := strings.HasSuffix(c.url, ".fifo")
			if fifo && (aws.ToString(in.MessageDeduplicationId) != "requeue-id-1" || aws.ToString(in.MessageGroupId) != m.GroupID) {
				t.Errorf("FIFO copy: dedup %q group %q, want requeue-id-1 and %s", aws.ToString(in.MessageDeduplicationId), aws.ToString(in.MessageGroupId), m.GroupID)
			}
			if !fifo && (in.MessageDeduplicationId != nil || in.MessageGroupId != nil) {
				t.Errorf("standard copy has FIFO ids")
			}
		})
	}
}
