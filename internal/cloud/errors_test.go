package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "test", Fault: smithy.FaultServer}
}

func httpErr(status int, inner error) *smithyhttp.ResponseError {
	return &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
		Err:      inner,
	}
}

// opErr wraps err the way an SDK operation returns it.
func opErr(err error) error {
	return &smithy.OperationError{ServiceID: "EC2", OperationName: "CreateSnapshot", Err: err}
}

type netErr struct{}

func (netErr) Error() string   { return "connection reset" }
func (netErr) Timeout() bool   { return false }
func (netErr) Temporary() bool { return true }

var _ net.Error = netErr{}

// retryable is an error that says whether it is retryable, as several SDK errors do.
type retryable bool

func (r retryable) Error() string        { return "retryable?" }
func (r retryable) RetryableError() bool { return bool(r) }

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		err         error
		want        Class
		wantMinWait time.Duration // at least
		wantCode    string
	}{
		{"nil", nil, Unknown, 0, ""},
		{"RequestLimitExceeded", apiErr("RequestLimitExceeded"), Throttled, 0, "RequestLimitExceeded"},
		{"Throttling", apiErr("Throttling"), Throttled, 0, "Throttling"},
		{"SnapshotCreationPerVolumeRateExceeded", apiErr("SnapshotCreationPerVolumeRateExceeded"), Throttled, 15 * time.Second, "SnapshotCreationPerVolumeRateExceeded"},
		{"ConcurrentSnapshotLimitExceeded", apiErr("ConcurrentSnapshotLimitExceeded"), Throttled, 15 * time.Second, "ConcurrentSnapshotLimitExceeded"},
		{"PendingSnapshotLimitExceeded", apiErr("PendingSnapshotLimitExceeded"), Throttled, 15 * time.Second, "PendingSnapshotLimitExceeded"},
		{"InvalidSnapshot.InUse", apiErr("InvalidSnapshot.InUse"), InUse, 0, "InvalidSnapshot.InUse"},
		{"InvalidSnapshot.NotFound", apiErr("InvalidSnapshot.NotFound"), NotFound, 0, "InvalidSnapshot.NotFound"},
		{"InvalidVolume.NotFound", apiErr("InvalidVolume.NotFound"), NotFound, 0, "InvalidVolume.NotFound"},
		{"UnauthorizedOperation", apiErr("UnauthorizedOperation"), Denied, 0, "UnauthorizedOperation"},
		{"AuthFailure", apiErr("AuthFailure"), Denied, 0, "AuthFailure"},
		{"InvalidParameterValue", apiErr("InvalidParameterValue"), Invalid, 0, "InvalidParameterValue"},
		{"InternalError", apiErr("InternalError"), Transient, 0, "InternalError"},
		{"unknown code", apiErr("SomethingNew"), Unknown, 0, "SomethingNew"},
		{"code matching is exact", apiErr("requestlimitexceeded"), Unknown, 0, "requestlimitexceeded"},
		{"wrapped with %w", fmt.Errorf("creating snapshot of vol-1: %w", apiErr("RequestLimitExceeded")), Throttled, 0, "RequestLimitExceeded"},
		{"wrapped twice in an operation error", fmt.Errorf("job x: %w", opErr(apiErr("InvalidSnapshot.InUse"))), InUse, 0, "InvalidSnapshot.InUse"},
		{"wrapped with %v is opaque", fmt.Errorf("creating: %v", apiErr("RequestLimitExceeded")), Unknown, 0, ""},
		{"503 response", httpErr(503, errors.New("bad gateway body")), Transient, 0, ""},
		{"500 response in an operation error", opErr(&awshttp.ResponseError{ResponseError: httpErr(500, errors.New("x")), RequestID: "r"}), Transient, 0, ""},
		{"400 response without a code", httpErr(400, errors.New("x")), Unknown, 0, ""},
		{"API code wins over HTTP status", opErr(&awshttp.ResponseError{ResponseError: httpErr(503, apiErr("RequestLimitExceeded"))}), Throttled, 0, "RequestLimitExceeded"},
		{"404 with NotFound code", httpErr(400, apiErr("InvalidSnapshot.NotFound")), NotFound, 0, "InvalidSnapshot.NotFound"},
		{"network error", opErr(&net.OpError{Op: "dial", Err: netErr{}}), Transient, 0, ""},
		{"deadline exceeded", fmt.Errorf("waiting: %w", context.DeadlineExceeded), Transient, 0, ""},
		{"retryable error", fmt.Errorf("x: %w", retryable(true)), Transient, 0, ""},
		{"not retryable error", retryable(false), Unknown, 0, ""},
		{"retry quota exhausted", opErr(&retry.MaxAttemptsError{Attempt: 3, Err: ratelimit.QuotaExceededError{Available: 0, Requested: 5}}), Throttled, 0, ""},
		{"canceled is not transient", context.Canceled, Unknown, 0, ""},
		{"plain error", errors.New("boom"), Unknown, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, wait := Classify(tt.err)
			if got != tt.want {
				t.Errorf("Classify(%v) = %s, want %s", tt.err, got, tt.want)
			}
			if wait < tt.wantMinWait || (tt.wantMinWait == 0 && wait != 0) {
				t.Errorf("Classify(%v) minWait = %v, want %v", tt.err, wait, tt.wantMinWait)
			}
			if c := Code(tt.err); c != tt.wantCode {
				t.Errorf("Code(%v) = %q, want %q", tt.err, c, tt.wantCode)
			}
		})
	}
}

// TestCodeTable checks the table itself: every row is reachable through Classify, only
// throttling rows carry a wait, and every class has a name for logs and DLQ reasons.
func TestCodeTable(t *testing.T) {
	t.Parallel()
	for c, row := range codes {
		got, wait := Classify(opErr(apiErr(c)))
		if got != row.class || wait != row.minWait {
			t.Errorf("%s: Classify = %s %v, table says %s %v", c, got, wait, row.class, row.minWait)
		}
		if row.minWait != 0 && row.class != Throttled {
			t.Errorf("%s: a wait on a %s row", c, row.class)
		}
	}
	seen := map[string]bool{}
	for c := Unknown; c <= Transient; c++ {
		n := c.String()
		if n == "" || seen[n] || !regexp.MustCompile(`^[a-z_]+$`).MatchString(n) {
			t.Errorf("class %d has name %q", c, n)
		}
		seen[n] = true
	}
}

// TestNoCodeMatchingOutsideTheTable keeps AWS error codes in errors.go: the rule of the
// house is one table, never string matching across the code.
func TestNoCodeMatchingOutsideTheTable(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "errors.go" || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for c := range codes {
			if strings.Contains(string(b), `"`+c+`"`) {
				t.Errorf("%s matches AWS error code %q outside the table", name, c)
			}
		}
	}
}

// TestClassifySDKErrors classifies errors as a real EC2 client returns them, after the
// SDK's own deserialisation, retries and wrapping.
func TestClassifySDKErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		want     Class
		wantWait time.Duration
	}{
		{"throttled", 503, ec2Error("RequestLimitExceeded"), Throttled, 0},
		{"per-volume rate", 400, ec2Error("SnapshotCreationPerVolumeRateExceeded"), Throttled, 15 * time.Second},
		{"in use", 400, ec2Error("InvalidSnapshot.InUse"), InUse, 0},
		{"not found", 400, ec2Error("InvalidSnapshot.NotFound"), NotFound, 0},
		{"denied", 403, ec2Error("UnauthorizedOperation"), Denied, 0},
		{"unknown code", 400, ec2Error("BrandNewError"), Unknown, 0},
		{"503 without a body", 503, "", Transient, 0},
		{"502 with HTML", 502, "<html>bad gateway</html>", Transient, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := ec2.New(ec2.Options{
				Region:       "us-east-1",
				BaseEndpoint: aws.String(srv.URL),
				Credentials:  credentials.NewStaticCredentialsProvider("k", "s", ""),
				Retryer:      retry.AddWithMaxBackoffDelay(retry.AddWithMaxAttempts(retry.NewStandard(), 2), time.Millisecond),
			})
			_, err := c.DeleteSnapshot(context.Background(), &ec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-0abc1234")})
			if err == nil {
				t.Fatal("no error")
			}
			err = fmt.Errorf("deleting snapshot snap-0abc1234: %w", err)
			got, wait := Classify(err)
			if got != tt.want || wait < tt.wantWait {
				t.Fatalf("Classify(%v) = %s %v, want %s ≥%v", err, got, wait, tt.want, tt.wantWait)
			}
		})
	}
}

func ec2Error(code string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>` + code +
		`</Code><Message>test</Message></Error></Errors><RequestID>req-1</RequestID></Response>`
}

func ExampleClassify() {
	err := fmt.Errorf("creating snapshot of vol-0abc1234: %w",
		&smithy.GenericAPIError{Code: "SnapshotCreationPerVolumeRateExceeded"})
	class, wait := Classify(err)
	fmt.Println(class, wait)
	// Output: throttled 15s
}
