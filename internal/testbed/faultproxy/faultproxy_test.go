package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/snapfleet/snapfleet/internal/cloud"
)

// backend is a tiny EC2 stand-in: it answers CreateSnapshot and DescribeSnapshots and
// records every form it receives.
type backend struct {
	mu    sync.Mutex
	forms []url.Values
	srv   *httptest.Server
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.forms = append(b.forms, form)
		n := len(b.forms)
		b.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		switch form.Get("Action") {
		case "CreateSnapshot":
			fmt.Fprintf(w, `<CreateSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r%d</requestId><snapshotId>snap-%017x</snapshotId><volumeId>%s</volumeId><status>pending</status></CreateSnapshotResponse>`, n, n, form.Get("VolumeId"))
		case "DescribeSnapshots":
			fmt.Fprintf(w, `<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r%d</requestId><snapshotSet/></DescribeSnapshotsResponse>`, n)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<Response><Errors><Error><Code>InvalidAction</Code><Message>no</Message></Error></Errors><RequestID>x</RequestID></Response>`)
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) actions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var a []string
	for _, f := range b.forms {
		a = append(a, f.Get("Action"))
	}
	return a
}

// client is an EC2 client on the proxy. attempts 1 shows the raw errors; more uses the
// SDK's standard retryer without waits between attempts.
func client(p *Proxy, attempts int) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(p.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			o.RateLimiter = ratelimit.None
		}),
	})
}

func create(ctx context.Context, c *ec2.Client) (*ec2.CreateSnapshotOutput, error) {
	return c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String("vol-0123456789abcdef0"), Description: aws.String("a b&c")})
}

func describe(ctx context.Context, c *ec2.Client) error {
	_, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	return err
}

func TestForwards(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.srv.URL)
	ctx := context.Background()
	out, err := create(ctx, client(p, 1))
	if err != nil {
		t.Fatalf("CreateSnapshot through the proxy: %v", err)
	}
	if aws.ToString(out.SnapshotId) != "snap-00000000000000001" {
		t.Errorf("snapshot id %q, want the backend's", aws.ToString(out.SnapshotId))
	}
	b.mu.Lock()
	form := b.forms[0]
	b.mu.Unlock()
	if form.Get("Action") != "CreateSnapshot" || form.Get("VolumeId") != "vol-0123456789abcdef0" || form.Get("Description") != "a b&c" {
		t.Errorf("backend got form %v, want the client's whole body", form)
	}
	if err := describe(ctx, client(p, 1)); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Count("CreateSnapshot"), (Count{Calls: 1, Forwarded: 1}); got != want {
		t.Errorf("CreateSnapshot count %+v, want %+v", got, want)
	}
	if got, want := p.Count(All), (Count{Calls: 2, Forwarded: 2}); got != want {
		t.Errorf("total count %+v, want %+v", got, want)
	}
	if env := p.Env(); len(env) != 1 || env[0] != "AWS_ENDPOINT_URL_EC2="+p.URL {
		t.Errorf("Env() = %v", env)
	}
}

// TestFaultsAsTheSDKSeesThem: each fault reaches the SDK as AWS's own failure would, and
// cloud.Classify sorts it as snapfleet's worker expects.
func TestFaultsAsTheSDKSeesThem(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		rule      Rule
		class     cloud.Class
		minWait   time.Duration
		code      string
		status    int // 0: no HTTP answer
		forwarded bool
	}{
		{"throttle", Rule{Fault: Throttle}, cloud.Throttled, 0, "RequestLimitExceeded", 503, false},
		{"rate code", Rule{Fault: Throttle, Code: "SnapshotCreationPerVolumeRateExceeded"}, cloud.Throttled, 15 * time.Second, "SnapshotCreationPerVolumeRateExceeded", 400, false},
		{"internal error", Rule{Fault: Error}, cloud.Transient, 0, "InternalError", 500, false},
		{"unavailable", Rule{Fault: Error, Code: "Unavailable", Status: 503}, cloud.Transient, 0, "Unavailable", 503, false},
		{"lost response", Rule{Fault: LoseResponse}, cloud.Transient, 0, "InternalError", 500, true},
		{"dropped response", Rule{Fault: DropResponse}, cloud.Transient, 0, "", 0, true},
		{"outage", Rule{Fault: Outage}, cloud.Transient, 0, "", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t)
			p := Start(t, b.srv.URL)
			tc.rule.Action = "CreateSnapshot"
			p.Add(tc.rule)
			_, err := create(context.Background(), client(p, 1))
			if err == nil {
				t.Fatal("CreateSnapshot succeeded, want the injected fault")
			}
			if class, wait := cloud.Classify(err); class != tc.class || wait != tc.minWait {
				t.Errorf("Classify(%v) = %v, %v; want %v, %v", err, class, wait, tc.class, tc.minWait)
			}
			if code := cloud.Code(err); code != tc.code {
				t.Errorf("error code %q, want %q", code, tc.code)
			}
			var re *smithyhttp.ResponseError
			var ne net.Error
			switch {
			case tc.status == 0 && (!errors.As(err, &ne) || errors.As(err, &re) && re.HTTPStatusCode() != 0):
				t.Errorf("error %v, want a network error and no HTTP answer", err)
			case tc.status != 0 && (!errors.As(err, &re) || re.HTTPStatusCode() != tc.status):
				t.Errorf("error %v, want HTTP %d", err, tc.status)
			}
			wantFwd := 0
			if tc.forwarded {
				wantFwd = 1
			}
			if n := len(b.actions()); n != wantFwd {
				t.Errorf("backend saw %d calls, want %d", n, wantFwd)
			}
			if got, want := p.Count("CreateSnapshot"), (Count{Calls: 1, Forwarded: wantFwd, Injected: 1}); got != want {
				t.Errorf("count %+v, want %+v", got, want)
			}
			// Other actions are untouched.
			if err := describe(context.Background(), client(p, 1)); err != nil {
				t.Errorf("DescribeSnapshots: %v", err)
			}
		})
	}
}

// TestRegionRule: a rule with a Region picks only the calls signed for that region.
func TestRegionRule(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.srv.URL)
	p.Add(Rule{Action: "DescribeSnapshots", Region: "eu-west-1", Fault: Error})
	ctx := context.Background()
	west := client(p, 1)
	west = ec2.New(west.Options(), func(o *ec2.Options) { o.Region = "eu-west-1" })
	if err := describe(ctx, west); cloud.Code(err) != "InternalError" {
		t.Fatalf("DescribeSnapshots in eu-west-1: %v, want the injected InternalError", err)
	}
	if err := describe(ctx, client(p, 1)); err != nil {
		t.Fatalf("DescribeSnapshots in us-east-1: %v, want it forwarded", err)
	}
	if _, err := create(ctx, west); err != nil {
		t.Fatalf("CreateSnapshot in eu-west-1: %v, want it forwarded", err)
	}
	if got, want := p.Count("DescribeSnapshots"), (Count{Calls: 2, Forwarded: 1, Injected: 1}); got != want {
		t.Errorf("count %+v, want %+v", got, want)
	}
	if got := b.actions(); len(got) != 2 {
		t.Errorf("backend saw %v, want the us-east-1 describe and the create", got)
	}
}

// TestEveryOtherCall: with every other call throttled, the SDK's own retryer sees each
// throttle as retryable and every operation succeeds on its second attempt.
func TestEveryOtherCall(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.srv.URL)
	p.Add(Rule{Action: All, Every: 2, Fault: Throttle})
	c := client(p, 3)
	for i := 0; i < 10; i++ {
		if err := describe(context.Background(), c); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// Call 1 passes; then each operation is one throttled call and one that passes.
	if got, want := p.Count("DescribeSnapshots"), (Count{Calls: 19, Forwarded: 10, Injected: 9}); got != want {
		t.Errorf("count %+v, want %+v", got, want)
	}
}

// TestSeededRate: a Rate rule picks the same calls for the same seed.
func TestSeededRate(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	pattern := func(seed uint64) []bool {
		p, err := New(b.srv.URL, Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.Add(Rule{Action: "DescribeSnapshots", Rate: 0.3, Fault: Error})
		c := client(p, 1)
		var got []bool
		for i := 0; i < 60; i++ {
			got = append(got, describe(context.Background(), c) != nil)
		}
		return got
	}
	a, b2, other := pattern(7), pattern(7), pattern(8)
	failed := 0
	for i := range a {
		if a[i] != b2[i] {
			t.Fatalf("call %d: seed 7 gave %v then %v", i, a[i], b2[i])
		}
		if a[i] {
			failed++
		}
	}
	if failed < 6 || failed > 30 {
		t.Errorf("%d of 60 calls failed at rate 0.3", failed)
	}
	same := true
	for i := range a {
		same = same && a[i] == other[i]
	}
	if same {
		t.Error("seeds 7 and 8 picked the same calls")
	}
}

// TestWindowLimitRemove: a rule ends after For, after Limit picks, or when removed.
func TestWindowLimitRemove(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.srv.URL)
	c := client(p, 1)
	ctx := context.Background()

	p.Add(Rule{Action: All, Fault: Outage, For: 300 * time.Millisecond})
	if err := describe(ctx, c); err == nil {
		t.Error("call during the outage succeeded")
	}
	time.Sleep(350 * time.Millisecond)
	if err := describe(ctx, c); err != nil {
		t.Errorf("call after the outage: %v", err)
	}

	p.Add(Rule{Action: "CreateSnapshot", Fault: Error, Limit: 2})
	var errs int
	for i := 0; i < 4; i++ {
		if _, err := create(ctx, c); err != nil {
			errs++
		}
	}
	if errs != 2 {
		t.Errorf("%d of 4 calls failed under Limit 2", errs)
	}

	id := p.Add(Rule{Action: "DescribeSnapshots", Fault: Throttle})
	if err := describe(ctx, c); err == nil {
		t.Error("throttle rule did not apply")
	}
	p.Remove(id)
	if err := describe(ctx, c); err != nil {
		t.Errorf("after Remove: %v", err)
	}
	p.Add(Rule{Action: All, Fault: Error})
	p.Reset()
	if err := describe(ctx, c); err != nil {
		t.Errorf("after Reset: %v", err)
	}
}

func TestLatencyAndTimeout(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.srv.URL)
	c := client(p, 1)

	p.Add(Rule{Action: "CreateSnapshot", Latency: 200 * time.Millisecond})
	start := time.Now()
	if _, err := create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("call took %v, want ≥ 200ms of added latency", took)
	}
	if got := p.Count("CreateSnapshot"); got.Injected != 0 || got.Forwarded != 1 {
		t.Errorf("latency alone: count %+v, want forwarded and not injected", got)
	}

	p.Add(Rule{Action: "DescribeSnapshots", Fault: Timeout, Hold: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	err := describe(ctx, c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("held call: %v, want the client's deadline", err)
	}
	if class, _ := cloud.Classify(err); class != cloud.Transient {
		t.Errorf("Classify(timeout) = %v, want transient", class)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("held call returned after %v", took)
	}
	for _, a := range b.actions() {
		if a == "DescribeSnapshots" {
			t.Error("a held call was forwarded")
		}
	}
}

// TestLatencyAfter: LatencyAfter forwards the call at once and holds its response, so a
// client that gives up meanwhile has had its call take effect; Latency holds the call
// before it is forwarded, so the same client's call never reaches the backend.
func TestLatencyAfter(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.srv.URL)
	c := client(p, 1)
	const hold, patience = 500 * time.Millisecond, 100 * time.Millisecond

	after := p.Add(Rule{Action: "CreateSnapshot", LatencyAfter: hold, Limit: 2})
	start := time.Now()
	out, err := create(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < hold {
		t.Errorf("call took %v, want ≥ %v of latency after forwarding", took, hold)
	}
	if aws.ToString(out.SnapshotId) != "snap-00000000000000001" {
		t.Errorf("snapshot id %q, want the backend's", aws.ToString(out.SnapshotId))
	}

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := create(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a client that gives up during the slow answer: %v, want its deadline", err)
	}
	if got := b.actions(); len(got) != 2 || got[1] != "CreateSnapshot" {
		t.Errorf("backend calls %v, want both creates: the abandoned one took effect", got)
	}
	if got := p.Count("CreateSnapshot"); got != (Count{Calls: 2, Forwarded: 2}) {
		t.Errorf("count %+v, want 2 calls forwarded, none injected", got)
	}
	if n := p.Picked(after); n != 2 {
		t.Errorf("Picked = %d, want 2", n)
	}

	before := p.Add(Rule{Action: "CreateSnapshot", Latency: hold})
	ctx, cancel = context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := create(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a client that gives up during the latency before forwarding: %v, want its deadline", err)
	}
	time.Sleep(hold) // the proxy would have forwarded by now, had it held the answer instead
	if got := b.actions(); len(got) != 2 {
		t.Errorf("backend calls %v, want the third create never forwarded", got)
	}
	if n, m := p.Picked(before), p.Picked(after); n != 1 || m != 2 {
		t.Errorf("Picked = %d and %d, want 1 and 2 (the LatencyAfter rule ended after its limit)", n, m)
	}
}

// TestConcurrentRules: calls and rule changes at once (run with -race).
func TestConcurrentRules(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.srv.URL)
	c := client(p, 1)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				_ = describe(context.Background(), c)
			}
		}()
	}
	for j := 0; j < 50; j++ {
		id := p.Add(Rule{Action: All, Every: 3, Fault: Throttle})
		_ = p.Counts()
		p.Remove(id)
	}
	wg.Wait()
	got := p.Count("DescribeSnapshots")
	if got.Calls != 160 || got.Forwarded+got.Injected != 160 {
		t.Errorf("count %+v, want 160 calls each forwarded or injected", got)
	}
}

// TestFirstPassed: a call refused by a rule is not a pass; the first call let through is,
// at the time it came.
func TestFirstPassed(t *testing.T) {
	t.Parallel()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer target.Close()
	p := Start(t, target.URL)
	id := p.Add(Rule{Action: All, Fault: Outage, Limit: 1})
	call := func() {
		resp, err := http.PostForm(p.URL, url.Values{"Action": {"DescribeVolumes"}})
		if err == nil {
			resp.Body.Close()
		}
	}
	call()
	if p.Picked(id) != 1 || !p.FirstPassed().IsZero() {
		t.Fatalf("after a refused call: picked %d, first passed %v; want 1 and never", p.Picked(id), p.FirstPassed())
	}
	before := time.Now()
	call()
	if got := p.FirstPassed(); got.Before(before) || got.After(time.Now()) {
		t.Errorf("first passed %v, want the time of the second call (after %v)", got, before)
	}
}

// TestFromFirstPick: a window counted from the rule's first pick, not from its Add: a
// rule added long before the first call still holds for all of For after it.
func TestFromFirstPick(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.srv.URL)
	c := client(p, 1)
	ctx := context.Background()

	id := p.Add(Rule{Action: All, Fault: Outage, For: 300 * time.Millisecond, FromFirstPick: true})
	time.Sleep(400 * time.Millisecond) // past For counted from Add
	if !p.FirstPick(id).IsZero() {
		t.Fatalf("first pick %v before any call", p.FirstPick(id))
	}
	if err := describe(ctx, c); err == nil {
		t.Error("the first call, after For counted from Add, succeeded")
	}
	first := p.FirstPick(id)
	if first.IsZero() {
		t.Fatal("no first pick after a refused call")
	}
	time.Sleep(time.Until(first.Add(350 * time.Millisecond)))
	if err := describe(ctx, c); err != nil {
		t.Errorf("call after For counted from the first pick: %v", err)
	}
}
