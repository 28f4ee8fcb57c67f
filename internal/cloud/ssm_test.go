package cloud

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/limit"
)

// TestSSMClassify: SSM's error codes as Run Command answers them, read through the SDK:
// an instance that is not managed is Unmanaged (not retried forever), an invocation not
// there yet NotFound, a bad document Invalid.
func TestSSMClassify(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]Class{"InvalidInstanceId": Unmanaged, "InvocationDoesNotExist": NotFound,
		"InvalidDocument": Invalid, "ThrottlingException": Throttled} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				w.WriteHeader(400)
				_, _ = w.Write([]byte(`{"__type":"` + code + `","message":"test"}`))
			}))
			defer srv.Close()
			c := ssm.New(ssm.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
				Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""), RetryMaxAttempts: 1})
			_, err := c.SendCommand(context.Background(), &ssm.SendCommandInput{DocumentName: aws.String("AWS-RunShellScript")})
			if got, _ := Classify(err); got != want {
				t.Fatalf("Classify(%v) = %s, want %s", err, got, want)
			}
		})
	}
}

// TestSSMLimits: Clients.SSM's calls take tokens of their own buckets per account-region
// (limits.send_command): a second SendCommand when the bucket holds one waits for a
// token, and a bound on the wait turns it into a *limit.WaitError.
func TestSSMLimits(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"Command":{"CommandId":"c-1"}}`))
	}))
	defer srv.Close()
	cfg, err := config.Parse(strings.NewReader("limits: {send_command: {burst: 1, per_second: 0.01}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := NewClients(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}, cfg)
	api := c.SSM("111111111111", "us-east-1")
	ctx := limit.WithMaxWait(context.Background(), 10*time.Millisecond)
	in := &ssm.SendCommandInput{DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: []string{"i-0123456789abcdef0"}}
	if _, err := api.SendCommand(ctx, in); err != nil {
		t.Fatalf("first SendCommand: %v", err)
	}
	var we *limit.WaitError
	if _, err := api.SendCommand(ctx, in); !errors.As(err, &we) || we.Action != "SendCommand" {
		t.Fatalf("second SendCommand: %v, want a wait for the SendCommand bucket", err)
	}
	if _, err := c.SSM("111111111111", "eu-west-1").SendCommand(ctx, in); err != nil {
		t.Errorf("another region's bucket: %v", err)
	}
}
