package limit

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(rates map[string]Bucket) (*Limiter, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)}
	l := New(rates)
	l.now = c.now
	return l, c
}

var ec2Rates = map[string]Bucket{
	"CreateSnapshot":            {Burst: 100, PerSecond: 5},
	"DeleteSnapshot":            {Burst: 100, PerSecond: 5},
	"DescribeSnapshots":         {Burst: 100, PerSecond: 20},
	"DescribeVolumes":           {Burst: 100, PerSecond: 20},
	"DescribeSnapshotAttribute": {Burst: 100, PerSecond: 20},
	"DescribeLockedSnapshots":   {Burst: 100, PerSecond: 20},
}

// held is what a bucket of ec2Rates holds when full: its burst less the reserve AWS's
// bucket keeps (reserveDivisor).
const held = 100 - 100/reserveDivisor

// bounded reserves one token with a zero wait bound: nil when a token is there now.
func bounded(l *Limiter, account, region, action string) error {
	_, _, err := l.reserve(key{account, region, action}, l.now(), 0, true)
	return err
}

func TestBurstThenRefill(t *testing.T) {
	t.Parallel()
	l, c := newTest(ec2Rates)
	for i := range held {
		if err := bounded(l, "a", "r", "CreateSnapshot"); err != nil {
			t.Fatalf("token %d of the burst: %v", i, err)
		}
	}
	err := bounded(l, "a", "r", "CreateSnapshot")
	var we *WaitError
	if !errors.As(err, &we) || we.Delay != 200*time.Millisecond || we.Action != "CreateSnapshot" {
		t.Fatalf("token %d: %v, want a 200ms WaitError", held+1, err)
	}
	// The refused reservation took no token: after 200ms exactly one is there.
	c.add(200 * time.Millisecond)
	if err := bounded(l, "a", "r", "CreateSnapshot"); err != nil {
		t.Fatalf("after 200ms: %v", err)
	}
	if err := bounded(l, "a", "r", "CreateSnapshot"); err == nil {
		t.Fatal("a second token appeared within the same 200ms")
	}
	// One second refills five.
	c.add(time.Second)
	for i := range 5 {
		if err := bounded(l, "a", "r", "CreateSnapshot"); err != nil {
			t.Fatalf("refilled token %d: %v", i, err)
		}
	}
}

func TestBucketsAreSeparate(t *testing.T) {
	t.Parallel()
	l, _ := newTest(ec2Rates)
	for range held {
		if err := bounded(l, "a", "r", "CreateSnapshot"); err != nil {
			t.Fatal(err)
		}
	}
	// Another action, another region, another account: each its own full bucket.
	for _, k := range [][3]string{{"a", "r", "DeleteSnapshot"}, {"a", "r2", "CreateSnapshot"}, {"b", "r", "CreateSnapshot"}, {"a", "r", "DescribeSnapshots"}} {
		if err := bounded(l, k[0], k[1], k[2]); err != nil {
			t.Errorf("%v: %v", k, err)
		}
	}
	// Each Describe* action has its own bucket too: the DescribeVolumes bucket emptied,
	// DescribeLockedSnapshots still has its whole burst.
	for range held {
		if err := bounded(l, "a", "r", "DescribeVolumes"); err != nil {
			t.Fatal(err)
		}
	}
	if err := bounded(l, "a", "r", "DescribeVolumes"); err == nil {
		t.Error("DescribeVolumes: a 101st token")
	}
	for range held {
		if err := bounded(l, "a", "r", "DescribeLockedSnapshots"); err != nil {
			t.Fatalf("DescribeLockedSnapshots after DescribeVolumes emptied its bucket: %v", err)
		}
	}
	// Actions without a bucket are not limited.
	for range 1000 {
		if err := bounded(l, "a", "r", "GetCallerIdentity"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAdaptive(t *testing.T) {
	t.Parallel()
	l, c := newTest(ec2Rates)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	l.Throttled("a", "r", "CreateSnapshot", c.now())
	if cur, conf := l.Rate("a", "r", "CreateSnapshot"); !near(cur, 2.5) || conf != 5 {
		t.Fatalf("after one throttle: %v of %v, want 2.5 of 5", cur, conf)
	}
	// Throttles within a second of the cut are the same signal: no second halving.
	c.add(500 * time.Millisecond)
	l.Throttled("a", "r", "CreateSnapshot", c.now())
	if cur, _ := l.Rate("a", "r", "CreateSnapshot"); !near(cur, 2.5+5*0.05*0.5) {
		t.Fatalf("after a second throttle 0.5s later: %v, want 2.5 recovered by 0.125, not halved", cur)
	}
	c.add(500 * time.Millisecond)
	l.Throttled("a", "r", "CreateSnapshot", c.now())
	if cur, _ := l.Rate("a", "r", "CreateSnapshot"); !near(cur, (2.5+0.25)/2) {
		t.Fatalf("after a throttle 1s after the cut: %v, want 1.375", cur)
	}
	// Other buckets are untouched.
	if cur, _ := l.Rate("a", "r2", "CreateSnapshot"); cur != 5 {
		t.Errorf("another region: %v", cur)
	}
	// Additive recovery: 5% of the configured rate per second.
	c.add(5 * time.Second)
	if cur, _ := l.Rate("a", "r", "CreateSnapshot"); !near(cur, 1.375+1.25) {
		t.Errorf("after 5s: %v, want 2.625", cur)
	}
	c.add(time.Hour)
	if cur, _ := l.Rate("a", "r", "CreateSnapshot"); cur != 5 {
		t.Errorf("after an hour: %v, never above the configured 5", cur)
	}
	// Throttled every second, the rate settles where halving meets the recovery of 0.25/s
	// ((x+0.25)/2 = x: 0.25 after each halving, 0.5 a second later), above the floor of
	// 1/32 of the configured rate.
	for range 20 {
		l.Throttled("a", "r", "DeleteSnapshot", c.now())
		c.add(cutInterval)
	}
	if cur, _ := l.Rate("a", "r", "DeleteSnapshot"); math.Abs(cur-0.5) > 1e-3 || cur < 5.0/32 {
		t.Errorf("throttled every second: %v, want 0.5", cur)
	}
	// A throttle empties a full bucket: AWS's is empty, whatever this one counted.
	l.Throttled("e", "r", "CreateSnapshot", c.now())
	var full *WaitError
	if err := bounded(l, "e", "r", "CreateSnapshot"); !errors.As(err, &full) || full.Delay != 400*time.Millisecond {
		t.Errorf("throttled full bucket: %v, want a 400ms wait (empty, refilling at 2.5/s)", err)
	}
	// A halved rate refills the empty bucket at half the speed.
	for range held {
		if err := bounded(l, "b", "r", "CreateSnapshot"); err != nil {
			t.Fatal(err)
		}
	}
	l.Throttled("b", "r", "CreateSnapshot", c.now())
	var we *WaitError
	if err := bounded(l, "b", "r", "CreateSnapshot"); !errors.As(err, &we) || we.Delay != 400*time.Millisecond {
		t.Errorf("halved bucket: %v, want a 400ms wait", err)
	}
}

// TestThrottleOfEarlierToken: a throttle halves the rate only for a call whose token was
// reserved at the rate in force (Take, Throttled): the calls in flight when AWS's bucket
// ran dry were paced at the rate before the halving, and their throttles are the signal
// already taken, not a second one.
func TestThrottleOfEarlierToken(t *testing.T) {
	t.Parallel()
	l, c := newTest(ec2Rates)
	ctx := context.Background()
	var inFlight []time.Time
	for range 3 {
		reserved, err := l.Take(ctx, "a", "r", "CreateSnapshot")
		if err != nil {
			t.Fatal(err)
		}
		inFlight = append(inFlight, reserved)
	}
	c.add(time.Second)
	l.Throttled("a", "r", "CreateSnapshot", c.now()) // a call reserved now: halves
	for _, reserved := range inFlight {
		c.add(cutInterval)
		l.Throttled("a", "r", "CreateSnapshot", reserved)
	}
	want := 2.5 + 5*recoverPerSecond*3*cutInterval.Seconds()
	if cur, _ := l.Rate("a", "r", "CreateSnapshot"); math.Abs(cur-want) > 1e-9 {
		t.Errorf("after the throttles of calls reserved before the halving: %v, want %v (recovering, not halved)", cur, want)
	}
	reserved, err := l.Take(ctx, "a", "r", "CreateSnapshot") // reserved after the halving
	if err != nil {
		t.Fatal(err)
	}
	l.Throttled("a", "r", "CreateSnapshot", reserved)
	if cur, _ := l.Rate("a", "r", "CreateSnapshot"); math.Abs(cur-want/2) > 1e-9 {
		t.Errorf("after the throttle of a call reserved after the halving: %v, want %v", cur, want/2)
	}
}

// TestAdmittedBeforeHalving: a token Admit reserved before a halving is paced again at
// the rate after it — by Take when the job makes its call, or beforehand by Renew, which
// waits for it and keeps it for the call (an application-consistent snapshot renews
// before it freezes: hooks.go) — instead of a call AWS would throttle too.
func TestAdmittedBeforeHalving(t *testing.T) {
	t.Parallel()
	l, c := newTest(ec2Rates)
	need := []Need{{Action: "CreateSnapshot", N: 1}}
	admit := func() context.Context {
		ctx, release, _, ok := l.Admit(context.Background(), "a", "r", need, time.Second)
		if !ok {
			t.Fatal("not admitted with tokens to spare")
		}
		t.Cleanup(release)
		return ctx
	}
	a, b := admit(), admit()
	c.add(time.Second)
	halved := c.now()
	l.Throttled("a", "r", "CreateSnapshot", halved) // empties the bucket, rate 2.5/s
	var we *WaitError
	if _, err := l.Take(WithMaxWait(a, 100*time.Millisecond), "a", "r", "CreateSnapshot"); !errors.As(err, &we) || we.Delay != 400*time.Millisecond {
		t.Errorf("the call of a job admitted before the halving: %v, want a 400ms wait at the halved rate", err)
	}
	if err := l.Renew(b, "a", "r", "CreateSnapshot"); err != nil { // waits 400 ms
		t.Fatal(err)
	}
	c.add(400 * time.Millisecond)
	reserved, err := l.Take(WithMaxWait(b, 0), "a", "r", "CreateSnapshot")
	if err != nil {
		t.Fatalf("the call after Renew waited: %v", err)
	}
	if reserved.Before(halved) {
		t.Errorf("renewed token reserved at %v, before the halving at %v", reserved, halved)
	}
	// Renewing a token reserved after the last halving keeps it.
	d := admit()
	if err := l.Renew(WithMaxWait(d, 0), "a", "r", "CreateSnapshot"); err != nil {
		t.Errorf("renewing a token of the rate in force: %v", err)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	l := New(map[string]Bucket{"CreateSnapshot": {Burst: 1, PerSecond: 20}})
	ctx := context.Background()
	start := time.Now()
	for range 3 {
		if err := l.Wait(ctx, "a", "r", "CreateSnapshot"); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 80*time.Millisecond || took > 2*time.Second {
		t.Errorf("3 tokens at burst 1, 20/s took %v, want about 100ms", took)
	}
	// Bounded: a wait longer than the bound fails at once with a WaitError.
	l = New(map[string]Bucket{"CreateSnapshot": {Burst: 1, PerSecond: 0.1}})
	if err := l.Wait(ctx, "a", "r", "CreateSnapshot"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	var we *WaitError
	if err := l.Wait(WithMaxWait(ctx, time.Second), "a", "r", "CreateSnapshot"); !errors.As(err, &we) || we.Delay < 9*time.Second {
		t.Fatalf("bounded wait: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("a bounded wait blocked")
	}
	// Unbounded: ctx ends the wait.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(cctx, "a", "r", "CreateSnapshot"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled wait: %v", err)
	}
	// A nil Limiter limits nothing.
	var none *Limiter
	if err := none.Wait(ctx, "a", "r", "CreateSnapshot"); err != nil {
		t.Fatal(err)
	}
	none.Throttled("a", "r", "CreateSnapshot", time.Now())
}

// tokens is what the bucket of action holds at the fake clock's now.
func tokens(l *Limiter, account, region, action string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.getLocked(key{account, region, action}, l.now()).lim.TokensAt(l.now())
}

// TestAdmit: Admit reserves every token a job needs at once; the job's Waits under the
// returned context take those tokens, not others; release hands back what the job did
// not use; and when a token is not due within the bound nothing is taken and the wait is
// said.
func TestAdmit(t *testing.T) {
	t.Parallel()
	l, c := newTest(map[string]Bucket{"CreateSnapshot": {Burst: 2, PerSecond: 1}, "DescribeSnapshots": {Burst: 10, PerSecond: 10}})
	needs := []Need{{Action: "DescribeSnapshots", N: 2}, {Action: "CreateSnapshot", N: 1}, {Action: "CreateTags", N: 1}}

	ctx, release, wait, ok := l.Admit(context.Background(), "a", "r", needs, 0)
	if wait != 0 || !ok {
		t.Fatalf("first job: wait %s, want admitted", wait)
	}
	if got := tokens(l, "a", "r", "CreateSnapshot"); got != 1 {
		t.Fatalf("after Admit the create bucket holds %v, want 1", got)
	}
	// The job uses its create token and one of its two DescribeSnapshots tokens.
	for _, a := range []string{"CreateSnapshot", "DescribeSnapshots", "CreateTags"} {
		if err := l.Wait(ctx, "a", "r", a); err != nil {
			t.Fatalf("Wait %s: %v", a, err)
		}
	}
	if got := tokens(l, "a", "r", "CreateSnapshot"); got != 1 {
		t.Errorf("Wait under the admitted context took another create token: %v left, want 1", got)
	}
	if got := tokens(l, "a", "r", "DescribeSnapshots"); got != 8 {
		t.Errorf("DescribeSnapshots bucket holds %v, want 8 (two reserved)", got)
	}
	release()
	if got := tokens(l, "a", "r", "DescribeSnapshots"); got != 9 {
		t.Errorf("after release the DescribeSnapshots bucket holds %v, want 9 (the unused token back)", got)
	}
	// A Wait after the prepaid tokens are used reserves as usual.
	if err := l.Wait(WithMaxWait(ctx, 0), "a", "r", "CreateSnapshot"); err != nil {
		t.Fatalf("a second create under the context: %v", err)
	}
	if got := tokens(l, "a", "r", "CreateSnapshot"); got != 0 {
		t.Errorf("create bucket holds %v, want 0", got)
	}

	// Empty: not admitted within 500ms, nothing taken, the wait is the token's.
	_, _, wait, ok = l.Admit(context.Background(), "a", "r", needs, 500*time.Millisecond)
	if wait != time.Second || ok {
		t.Errorf("empty bucket: wait %s, want 1s", wait)
	}
	if got := tokens(l, "a", "r", "DescribeSnapshots"); got != 9 {
		t.Errorf("a refused Admit took DescribeSnapshots tokens: %v left, want 9", got)
	}
	c.add(time.Second)
	if _, _, wait, ok = l.Admit(context.Background(), "a", "r", needs, 0); wait != 0 || !ok {
		t.Errorf("after 1s: wait %s, want admitted", wait)
	}
	// Another account-region has its own buckets; a nil Limiter admits everything.
	if _, _, wait, ok = l.Admit(context.Background(), "b", "r", needs, 0); wait != 0 || !ok {
		t.Errorf("another account: wait %s, want admitted", wait)
	}
	var none *Limiter
	if _, release, wait, ok := none.Admit(context.Background(), "a", "r", needs, 0); wait != 0 || !ok || release == nil {
		t.Errorf("nil Limiter: wait %s", wait)
	}
}

// TestWithin: what a bucket could give within a time is what it holds plus its
// configured rate times the time, whatever a throttle did to its adapted rate.
func TestWithin(t *testing.T) {
	t.Parallel()
	l, c := newTest(ec2Rates)
	if got := l.Within("a", "r", "CreateSnapshot", 2*time.Second); got != held+10 {
		t.Errorf("full bucket: %v within 2s, want %d", got, held+10)
	}
	for range held {
		if err := bounded(l, "a", "r", "CreateSnapshot"); err != nil {
			t.Fatal(err)
		}
	}
	l.Throttled("a", "r", "CreateSnapshot", c.now()) // halves the adapted rate
	if got := l.Within("a", "r", "CreateSnapshot", 2*time.Second); got != 10 {
		t.Errorf("empty bucket after a throttle: %v within 2s, want 10", got)
	}
	if got := l.Within("a", "r", "CreateTags", time.Second); !math.IsInf(got, 1) {
		t.Errorf("unlimited action: %v, want +Inf", got)
	}
}

// TestAdmitRefusalsLeakNothing: refused Admits take no token from any bucket, however
// often they are tried — a reserve-then-cancel would leak the tokens of every bucket but
// the last into the future, until no job is ever admitted again.
func TestAdmitRefusalsLeakNothing(t *testing.T) {
	t.Parallel()
	l, c := newTest(map[string]Bucket{"DeleteSnapshot": {Burst: 1, PerSecond: 1},
		"DescribeSnapshots": {Burst: 10, PerSecond: 10}, "DescribeSnapshotAttribute": {Burst: 10, PerSecond: 10}})
	needs := []Need{{Action: "DescribeSnapshots", N: 1}, {Action: "DescribeSnapshotAttribute", N: 1}, {Action: "DeleteSnapshot", N: 1}}
	if _, _, wait, ok := l.Admit(context.Background(), "a", "r", needs, 0); wait != 0 || !ok {
		t.Fatalf("first: wait %s", wait)
	}
	for range 9 { // the DescribeSnapshots bucket empty too: its next tokens are in the future
		if err := bounded(l, "a", "r", "DescribeSnapshots"); err != nil {
			t.Fatal(err)
		}
	}
	for range 1000 {
		if _, _, wait, ok := l.Admit(context.Background(), "a", "r", needs, 0); wait != time.Second || ok {
			t.Fatalf("refused Admit: wait %s, want 1s", wait)
		}
	}
	c.add(time.Second)
	if got := tokens(l, "a", "r", "DescribeSnapshots"); got != 10 {
		t.Errorf("a second after 1000 refusals the DescribeSnapshots bucket holds %v, want 10", got)
	}
	if _, _, wait, ok := l.Admit(context.Background(), "a", "r", needs, 0); wait != 0 || !ok {
		t.Errorf("a second later: wait %s, want admitted", wait)
	}
}

// TestAdmitAhead: a job admitted with tokens due later holds them: a job needing one
// token of the bucket cannot take them meanwhile, so a job needing several is not
// starved by a stream of jobs needing one.
func TestAdmitAhead(t *testing.T) {
	t.Parallel()
	l, c := newTest(map[string]Bucket{"DescribeSnapshots": {Burst: 2, PerSecond: 10}})
	for range 2 {
		if err := bounded(l, "a", "r", "DescribeSnapshots"); err != nil {
			t.Fatal(err)
		}
	}
	two := []Need{{Action: "DescribeSnapshots", N: 1}, {Action: "DescribeSnapshots", N: 1}}
	ctx, _, wait, ok := l.Admit(context.Background(), "a", "r", two, time.Second)
	if !ok || wait != 200*time.Millisecond {
		t.Fatalf("two tokens of an empty bucket within 1s: wait %s ok %v, want 200ms", wait, ok)
	}
	one := []Need{{Action: "DescribeSnapshots", N: 1}}
	if _, _, wait, ok := l.Admit(context.Background(), "a", "r", one, 250*time.Millisecond); ok || wait != 300*time.Millisecond {
		t.Errorf("one token behind them: wait %s ok %v, want refused, 300ms", wait, ok)
	}
	c.add(200 * time.Millisecond)
	for i := range 2 {
		if err := l.Wait(WithMaxWait(ctx, 0), "a", "r", "DescribeSnapshots"); err != nil {
			t.Errorf("the admitted job's DescribeSnapshots %d at its due time: %v", i, err)
		}
	}
}

// TestActionsDoNotSlowEachOther: AWS gives each action its own bucket, and so does the
// limiter: a throttle of DescribeSnapshots halves that bucket's rate and empties it, and
// neither the rate nor the tokens of DescribeSnapshotAttribute or DeleteSnapshot change;
// a delete job (DescribeSnapshotAttribute, DeleteSnapshot) is admitted at once meanwhile.
func TestActionsDoNotSlowEachOther(t *testing.T) {
	t.Parallel()
	l, c := newTest(ec2Rates)
	for range held {
		if err := bounded(l, "a", "r", "DescribeSnapshots"); err != nil {
			t.Fatal(err)
		}
	}
	l.Throttled("a", "r", "DescribeSnapshots", c.now())
	if cur, conf := l.Rate("a", "r", "DescribeSnapshots"); cur != 10 || conf != 20 {
		t.Errorf("throttled DescribeSnapshots: rate %v of %v, want 10 of 20", cur, conf)
	}
	for _, a := range []string{"DescribeSnapshotAttribute", "DeleteSnapshot"} {
		if cur, conf := l.Rate("a", "r", a); cur != conf {
			t.Errorf("%s: rate %v of %v after another action was throttled", a, cur, conf)
		}
		if got := tokens(l, "a", "r", a); got != held {
			t.Errorf("%s holds %v tokens, want its full %d", a, got, held)
		}
	}
	del := []Need{{Action: "DescribeSnapshotAttribute", N: 1}, {Action: "DeleteSnapshot", N: 1}}
	if _, _, wait, ok := l.Admit(context.Background(), "a", "r", del, 0); !ok || wait != 0 {
		t.Errorf("delete job while DescribeSnapshots is empty and throttled: wait %s ok %v, want admitted now", wait, ok)
	}
	if _, _, wait, ok := l.Admit(context.Background(), "a", "r", []Need{{Action: "DescribeSnapshots", N: 1}}, 0); ok || wait != 100*time.Millisecond {
		t.Errorf("DescribeSnapshots itself: wait %s ok %v, want refused, 100ms at the halved rate", wait, ok)
	}
}

// TestByAction: needs are summed per action, none merged across actions.
func TestByAction(t *testing.T) {
	t.Parallel()
	got := ByAction([]Need{{"DescribeSnapshots", 1}, {"DescribeVolumes", 1}, {"DescribeSnapshots", 2}, {"CreateTags", 0}})
	want := []Need{{"DescribeSnapshots", 3}, {"DescribeVolumes", 1}}
	if !slices.Equal(got, want) {
		t.Errorf("ByAction = %v, want %v", got, want)
	}
}

// TestReserve: a bucket holds its configured burst less a twentieth of it, which AWS's
// bucket keeps against the network's jitter; a burst under 20 keeps none.
func TestReserve(t *testing.T) {
	t.Parallel()
	l, _ := newTest(map[string]Bucket{"DescribeSnapshots": {Burst: 100, PerSecond: 20}, "CreateVolume": {Burst: 10, PerSecond: 5}})
	for _, c := range []struct {
		action string
		want   int
	}{{"DescribeSnapshots", 95}, {"CreateVolume", 10}} {
		n := 0
		for bounded(l, "a", "r", c.action) == nil {
			n++
		}
		if n != c.want {
			t.Errorf("%s: %d tokens at once, want %d", c.action, n, c.want)
		}
	}
}
