package awslimits

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/snapfleet/snapfleet/internal/cloud"
)

// stub answers CreateSnapshot and AssumeRole as EC2 and STS do (the parts the SDK reads).
// The endpoint's behaviour is AWS's admission control, which moto does not have; the
// forwarding itself is exercised against moto by `make bench`.
func stub(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		w.Header().Set("Content-Type", "text/xml")
		switch form.Get("Action") {
		case "CreateSnapshot":
			fmt.Fprintf(w, `<CreateSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><snapshotId>snap-0123456789abcdef0</snapshotId><volumeId>%s</volumeId><status>pending</status></CreateSnapshotResponse>`, form.Get("VolumeId"))
		case "AssumeRole":
			fmt.Fprint(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAROLE222</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::222222222222:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>`)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func clientCfg(s *Server, key string) aws.Config {
	return aws.Config{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider(key, "secret", ""),
		BaseEndpoint: aws.String(s.URL),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

func TestServerThrottlesPerAccountAsEC2Does(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, err := New(stub(t).URL, "127.0.0.1:0", Options{Now: c.now, Limits: map[string]Limit{BucketCreateSnapshot: {Burst: 3, Refill: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()

	// The default account's bucket of 3 empties; the 4th call is RequestLimitExceeded, 503.
	own := ec2.NewFromConfig(clientCfg(s, "testing"))
	for i := range 4 {
		_, err := own.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(fmt.Sprintf("vol-%d", i))})
		if i < 3 {
			if err != nil {
				t.Fatalf("create %d: %v", i, err)
			}
			continue
		}
		var ae smithy.APIError
		var re interface{ HTTPStatusCode() int }
		if !errors.As(err, &ae) || ae.ErrorCode() != "RequestLimitExceeded" || !errors.As(err, &re) || re.HTTPStatusCode() != 503 {
			t.Fatalf("4th create: %v, want RequestLimitExceeded with HTTP 503", err)
		}
		if cl, _ := cloud.Classify(err); cl != cloud.Throttled {
			t.Fatalf("snapfleet classifies the endpoint's throttle as %v", cl)
		}
	}

	// Credentials from an AssumeRole through the endpoint belong to the role's account,
	// which has its own full bucket.
	out, err := sts.NewFromConfig(clientCfg(s, "testing")).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::222222222222:role/snapfleet-member"), RoleSessionName: aws.String("snapfleet")})
	if err != nil {
		t.Fatal(err)
	}
	other := ec2.NewFromConfig(clientCfg(s, aws.ToString(out.Credentials.AccessKeyId)))
	for i := range 3 {
		if _, err := other.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(fmt.Sprintf("vol-%d", i))}); err != nil {
			t.Fatalf("create %d in 222222222222: %v", i, err)
		}
	}

	// A second snapshot of one volume within 15 s: SnapshotCreationPerVolumeRateExceeded.
	c.add(time.Second)
	_, err = own.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String("vol-0")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "SnapshotCreationPerVolumeRateExceeded" {
		t.Fatalf("second create of vol-0 within 15s: %v", err)
	}

	if got := s.AssumeRoles(); got["222222222222"] != 1 || len(got) != 1 {
		t.Errorf("AssumeRoles %v", got)
	}
	done := s.Done()
	if done[Done{"123456789012", "eu-west-1", "CreateSnapshot"}] != 3 || done[Done{"222222222222", "eu-west-1", "CreateSnapshot"}] != 3 {
		t.Errorf("done %v", done)
	}
	k := Done{"123456789012", "eu-west-1", "CreateSnapshot"}
	if at := c.now(); s.DoneBy(at.Add(-time.Second))[k] != 0 || s.DoneBy(at)[k] != 3 {
		t.Errorf("DoneBy: %d before the calls, %d after", s.DoneBy(at.Add(-time.Second))[k], s.DoneBy(at)[k])
	}
	var lines []string
	for _, st := range s.Limiter.Stats() {
		lines = append(lines, fmt.Sprintf("%s/%s/%s allowed=%d throttled=%d per_volume=%d", st.Account, st.Region, st.Bucket, st.Allowed, st.Throttled, st.PerVolume))
	}
	want := "123456789012/eu-west-1/CreateSnapshot allowed=4 throttled=1 per_volume=1\n222222222222/eu-west-1/CreateSnapshot allowed=3 throttled=0 per_volume=0"
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("stats:\n%s\nwant:\n%s", got, want)
	}
	// Calls counts what the clients sent: the throttled and the per-volume refusal too.
	if got := s.Calls(); got["ec2:CreateSnapshot"] != 8 || got["sts:AssumeRole"] != 1 || len(got) != 2 {
		t.Errorf("calls %v, want 8 ec2:CreateSnapshot and 1 sts:AssumeRole", got)
	}
	if s.Reset(); len(s.Calls()) != 0 {
		t.Errorf("calls after Reset: %v", s.Calls())
	}
}

func TestServerFaultRateAndLatency(t *testing.T) {
	t.Parallel()
	s, err := New(stub(t).URL, "127.0.0.1:0", Options{FaultRate: 0.5, Seed: 7, Latency: 20 * time.Millisecond, PerVolume: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cl := ec2.NewFromConfig(clientCfg(s, "testing"))
	start := time.Now()
	var failed int
	for range 40 {
		_, err := cl.CreateSnapshot(context.Background(), &ec2.CreateSnapshotInput{VolumeId: aws.String("vol-1")})
		var ae smithy.APIError
		switch {
		case err == nil:
		case errors.As(err, &ae) && ae.ErrorCode() == "InternalError":
			failed++
		default:
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 40*20*time.Millisecond {
		t.Errorf("40 calls took %s, want at least 40 × 20ms of latency", el)
	}
	if failed != s.Faults() || failed < 10 || failed > 30 {
		t.Errorf("%d of 40 failed (server counted %d), want about half", failed, s.Faults())
	}
	if d := s.Done()[Done{"123456789012", "eu-west-1", "CreateSnapshot"}]; d != 40-failed {
		t.Errorf("done %d, want %d: a faulted call does not take effect", d, 40-failed)
	}
}

// TestUnfilteredInput: UnfilteredInput, the rule on SDK inputs that tests apply to
// snapfleet's calls, agrees with the endpoint, which sees the calls as the SDK serializes
// them: each input below lands in the unfiltered bucket exactly when UnfilteredInput says so.
func TestUnfilteredInput(t *testing.T) {
	t.Parallel()
	f := []types.Filter{{Name: aws.String("tag:snapfleet:job"), Values: []string{"k"}}}
	for _, in := range []any{
		&ec2.DescribeSnapshotsInput{},
		&ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}},
		&ec2.DescribeSnapshotsInput{Filters: f},
		&ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-1"}},
		&ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(1000)},
		&ec2.DescribeSnapshotsInput{NextToken: aws.String("t")},
		&ec2.DescribeVolumesInput{},
		&ec2.DescribeVolumesInput{VolumeIds: []string{"vol-1"}},
		&ec2.DescribeVolumesInput{Filters: f},
		&ec2.DescribeVolumesInput{MaxResults: aws.Int32(500)},
		&ec2.DescribeInstancesInput{},
		&ec2.DescribeInstancesInput{InstanceIds: []string{"i-1"}},
		&ec2.DescribeInstancesInput{Filters: f},
		&ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000)},
		&ec2.DescribeImagesInput{},
	} {
		s, err := New(stub(t).URL, "127.0.0.1:0", Options{})
		if err != nil {
			t.Fatal(err)
		}
		cl := ec2.NewFromConfig(clientCfg(s, "testing"))
		ctx := context.Background()
		switch in := in.(type) { // the stub answers 400: only the endpoint's count matters
		case *ec2.DescribeSnapshotsInput:
			_, _ = cl.DescribeSnapshots(ctx, in)
		case *ec2.DescribeVolumesInput:
			_, _ = cl.DescribeVolumes(ctx, in)
		case *ec2.DescribeInstancesInput:
			_, _ = cl.DescribeInstances(ctx, in)
		case *ec2.DescribeImagesInput:
			_, _ = cl.DescribeImages(ctx, in)
		}
		s.Close()
		st := s.Limiter.Stats()
		action, unfiltered := UnfilteredInput(in)
		want := "DescribeImages"
		if action != "" {
			want = action
		}
		if unfiltered {
			want = Unfiltered(action)
		}
		if len(st) != 1 || st[0].Bucket != want {
			t.Errorf("%T%+v: the endpoint counted %+v, UnfilteredInput says bucket %s", in, in, st, want)
		}
	}
}
