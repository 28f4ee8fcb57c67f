package queue

import (
	"strings"
	"testing"
	"unicode/utf8"

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
