// Package mototest starts a real moto_server for tests: on a free loopback port, with a
// movable EBS clock, stopped by PID when the test ends. A test that needs moto and cannot
// start it fails; it never skips.
package mototest

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

//go:embed moto_clock.py
var wrapper []byte

// amis are the images moto loads (MOTO_AMIS_PATH): three public AMIs of other owners, whose
// snapshots are the other owners' snapshots moto lists, in place of its ~1,200 default
// images, which made every DescribeImages and filtered DescribeSnapshots scan them all.
//
//go:embed amis.json
var amis []byte

// Region is the default region of the test environment.
const Region = "us-east-1"

// Account is moto's default account, the caller's own in tests.
const Account = "123456789012"

// Server is one running moto_server.
type Server struct {
	// Endpoint is the base URL, e.g. http://127.0.0.1:40123.
	Endpoint string
	clock    string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Start runs moto_server for the lifetime of t. It fails t when python3 or moto cannot be
// started.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartServer()
	if err != nil {
		t.Fatalf("starting moto_server (python3 with moto[server] is required; run make test): %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartServer runs moto_server until Stop; for TestMain and tools.
func StartServer() (*Server, error) {
	dir, err := os.MkdirTemp("", "mototest-")
	if err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "moto_clock.py")
	if err := os.WriteFile(script, wrapper, 0o644); err != nil {
		return nil, err
	}
	amisPath := filepath.Join(dir, "amis.json")
	if err := os.WriteFile(amisPath, amis, 0o644); err != nil {
		return nil, err
	}
	s := &Server{clock: filepath.Join(dir, "clock")}
	if err := os.WriteFile(s.clock, []byte("0"), 0o644); err != nil {
		return nil, err
	}
	python := os.Getenv("SNAPFLEET_PYTHON")
	if python == "" {
		python = "python3"
	}
	for attempt := 0; attempt < 3; attempt++ {
		// Port 0: moto_server binds a port the kernel picks and says which. A port picked
		// here and handed over could be picked by a parallel test too: both servers started
		// on it, one failed to bind, and its test used the other's server until that test
		// stopped it (connection refused mid-test, and two tests' resources mixed).
		cmd := exec.Command(python, script, "-H", "127.0.0.1", "-p", "0")
		cmd.Env = append(os.Environ(), "SNAPFLEET_MOTO_CLOCK="+s.clock, "MOTO_AMIS_PATH="+amisPath)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		logf, err := os.Create(filepath.Join(dir, "moto.log"))
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("running %s: %w", python, err)
		}
		s.cmd = cmd
		s.done = make(chan struct{})
		go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)
		err = s.waitPort(logf.Name(), 60*time.Second)
		if err == nil {
			err = s.waitReady(60 * time.Second)
		}
		if err == nil {
			return s, nil
		}
		s.Stop()
		out, _ := os.ReadFile(logf.Name())
		if attempt == 2 {
			return nil, fmt.Errorf("moto_server did not become ready: %v: %s", err, tail(out))
		}
	}
	return nil, fmt.Errorf("moto_server did not start")
}

// listening is the line werkzeug logs once it listens, with the port it bound.
var listening = regexp.MustCompile(`Running on http://127\.0\.0\.1:(\d+)`)

// waitPort reads the server's log until it says where it listens, and sets Endpoint.
func (s *Server) waitPort(log string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(log); err == nil {
			if m := listening.FindSubmatch(b); m != nil {
				s.Endpoint = "http://127.0.0.1:" + string(m[1])
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("moto_server exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out waiting for moto_server to listen")
}

func tail(b []byte) string {
	if len(b) > 800 {
		b = b[len(b)-800:]
	}
	return string(b)
}

func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("moto_server exited")
		default:
		}
		resp, err := http.Get(s.Endpoint + "/moto-api/data.json")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("timed out")
}

// Stop kills moto_server by PID (its whole process group) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// ShiftClock moves moto's EBS clock by d from real time: snapshots created afterwards get
// StartTime = now + d.
func (s *Server) ShiftClock(t testing.TB, d time.Duration) {
	t.Helper()
	s.writeClock(t, strconv.FormatFloat(d.Seconds(), 'f', 3, 64))
}

// StopClock stops moto's EBS clock at at: every snapshot created afterwards, until the
// next ShiftClock, gets StartTime at (the same second for all: a race within one second).
// Only for a server of the test's own.
func (s *Server) StopClock(t testing.TB, at time.Time) {
	t.Helper()
	s.writeClock(t, "="+strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
}

func (s *Server) writeClock(t testing.TB, text string) {
	t.Helper()
	// Write and rename: moto reads the file at every snapshot, and a read between the
	// truncation and the write of an in-place WriteFile would see no offset at all.
	tmp := s.clock + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatalf("setting moto's clock: %v", err)
	}
	if err := os.Rename(tmp, s.clock); err != nil {
		t.Fatalf("setting moto's clock: %v", err)
	}
}

// Env is the environment a snapfleet process needs to talk to this server.
func (s *Server) Env() []string { return EnvFor(s.Endpoint) }

// EnvFor is the environment of a snapfleet process talking to an emulator at endpoint
// with the test credentials and region, and nothing from the machine's AWS config.
func EnvFor(endpoint string) []string {
	return []string{
		"AWS_ENDPOINT_URL=" + endpoint,
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// AWSConfig is an SDK configuration pointed at this server, with static test credentials.
func (s *Server) AWSConfig(t testing.TB) aws.Config {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(),
		awsconfig.WithRegion(Region),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")),
		awsconfig.WithBaseEndpoint(s.Endpoint),
		awsconfig.WithSharedConfigFiles(nil),
		awsconfig.WithSharedCredentialsFiles(nil),
		awsconfig.WithEC2IMDSClientEnableState(imds.ClientDisabled),
	)
	if err != nil {
		t.Fatalf("loading SDK config for moto: %v", err)
	}
	return cfg
}

// TransportRetryer retries only what the SDK classes as a broken connection, up to three
// attempts: moto's server now and then resets a kept-alive connection mid-response
// ("use of closed network connection"), which a real client retries too. Every API error,
// an injected fault included, is returned at the first attempt.
func TransportRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.Retryables = []retry.IsErrorRetryable{retry.RetryableConnectionError{}}
		o.RateLimiter = ratelimit.None
		o.MaxBackoff = 50 * time.Millisecond
	})
}
