package worker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/tag"
)

var (
	_ SSM = (*ssm.Client)(nil)
	_ EC2 = (*ec2.Client)(nil)
)

const appPolicy = `
policies:
  - name: app
    consistency: application
    retain: {max_age: 30d}
`

// calls records the EC2 and SSM calls of one test in order — SendCommand as
// "SendCommand pre|post|vss" — and lets a test answer or fail any of them instead of moto.
type calls struct {
	mu    sync.Mutex
	order []string
	hooks map[string]string // command id → hook name
	// fake, when set, answers a call instead of moto (out non-nil), fails it (err), or
	// lets it through (both nil). hook names the command of GetCommandInvocation.
	fake func(ctx context.Context, op, hook string, params any) (out any, err error)
	// after, when set, replaces a call's answer from moto (a lost response).
	after func(op, hook string, err error) error
}

func (c *calls) apply(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("snapfleetTestCalls",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetOperationName(ctx)
			name := op
			hook := ""
			switch p := in.Parameters.(type) {
			case *ssm.SendCommandInput:
				hook = strings.Fields(aws.ToString(p.Comment))[1]
				name += " " + hook
			case *ssm.GetCommandInvocationInput:
				c.mu.Lock()
				hook = c.hooks[aws.ToString(p.CommandId)]
				c.mu.Unlock()
				name += " " + hook
			}
			c.mu.Lock()
			c.order = append(c.order, name)
			fake, after := c.fake, c.after
			c.mu.Unlock()
			if fake != nil {
				out, err := fake(ctx, op, hook, in.Parameters)
				if out != nil || err != nil {
					return middleware.InitializeOutput{Result: out}, middleware.Metadata{}, err
				}
			}
			out, md, err := next.HandleInitialize(ctx, in)
			if r, ok := out.Result.(*ssm.SendCommandOutput); ok && err == nil {
				c.mu.Lock()
				c.hooks[aws.ToString(r.Command.CommandId)] = hook
				c.mu.Unlock()
			}
			if after != nil {
				err = after(op, hook, err)
			}
			return out, md, err
		}), middleware.After)
}

// seen is the calls so far, leaving out the reads (Describe*, GetCommandInvocation).
func (c *calls) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, op := range c.order {
		if !strings.HasPrefix(op, "Describe") && !strings.HasPrefix(op, "GetCommandInvocation") {
			out = append(out, op)
		}
	}
	return out
}

func (c *calls) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, op := range c.order {
		if op == name {
			n++
		}
	}
	return n
}

// appHandlers are the snapshot handlers on moto with cfg, EC2 and SSM calls recorded.
func (e *motoEnv) appHandlers(t *testing.T, cfg *config.Config) (*snapshots, *calls) {
	t.Helper()
	c := &calls{hooks: map[string]string{}}
	api := ec2.NewFromConfig(e.cfg, func(o *ec2.Options) { o.APIOptions = append(o.APIOptions, c.apply) })
	sapi := ssm.NewFromConfig(e.cfg, func(o *ssm.Options) { o.APIOptions = append(o.APIOptions, c.apply) })
	now := func() time.Time { return time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC) }
	return &snapshots{cfg: cfg, ec2: func(string, string) EC2 { return api }, ssm: func(string, string) SSM { return sapi },
		now: now, backoff: defaultBackoff}, c
}

var appPeriod = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// commands are the commands moto recorded for an instance, oldest first.
func (e *motoEnv) commands(t *testing.T, instance string) []ssmtypes.Command {
	t.Helper()
	out, err := ssm.NewFromConfig(e.cfg).ListCommands(context.Background(), &ssm.ListCommandsInput{InstanceId: aws.String(instance)})
	if err != nil {
		t.Fatalf("listing commands: %v", err)
	}
	// moto lists every command of the (shared) server, and its InstanceIds run together:
	// the comment names the job's key, hence the instance.
	var mine []ssmtypes.Command
	for _, c := range out.Commands {
		if strings.Contains(aws.ToString(c.Comment), "/"+instance+"/") {
			mine = append(mine, c)
		}
	}
	return mine
}

// consistencyOf is the snapfleet:consistency tag of every snapshot of the job, one each.
func (e *motoEnv) consistencyOf(t *testing.T, key string) []string {
	t.Helper()
	var out []string
	for _, s := range e.byJob(t, key) {
		out = append(out, tagMap(s.Tags)[tag.Consistency])
	}
	return out
}

// TestHooksOrder: through moto, an application-consistent job sends the pre hook, waits
// for its success, calls CreateSnapshots, sends the post hook, and tags every snapshot
// application; the default hooks are the embedded scripts, given the data volumes and
// max_freeze; a policy's own document and parameters are sent as configured.
func TestHooksOrder(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	inst, _, data := e.instanceWithData(t, 2)
	s, c := e.appHandlers(t, policyConfig(t, appPolicy))
	j := instanceJob(inst, "app", appPeriod)
	res, err := s.createInstance(context.Background(), j)
	if err != nil || res.Action != Created || res.Fallback || res.PostFailed {
		t.Fatalf("createInstance = %+v, %v; want created", res, err)
	}
	want := []string{"SendCommand pre", "CreateSnapshots", "SendCommand post"}
	if got := c.seen(); len(got) < 3 || !slices.Equal(got[:3], want) {
		t.Fatalf("calls %v, want %v first", got, want)
	}
	if c.count("GetCommandInvocation pre") < 1 {
		t.Errorf("the pre hook's success was not awaited: %v", c.order)
	}
	if got := e.consistencyOf(t, j.Key); len(got) != 3 || slices.ContainsFunc(got, func(v string) bool { return v != tag.Application }) {
		t.Errorf("snapfleet:consistency of the 3 snapshots = %v, want application", got)
	}
	cmds := e.commands(t, inst)
	if len(cmds) != 2 {
		t.Fatalf("moto recorded %d commands, want pre and post", len(cmds))
	}
	for i, script := range []string{freezeScript, thawScript} {
		p := cmds[i].Parameters["commands"]
		if aws.ToString(cmds[i].DocumentName) != config.DocumentShell || len(p) != 2 || p[1] != script ||
			!strings.Contains(p[0], "SNAPFLEET_VOLUMES='"+data[0]+" "+data[1]+"'") || !strings.Contains(p[0], "SNAPFLEET_MAX_FREEZE=10") {
			t.Errorf("command %d: %s %q", i, aws.ToString(cmds[i].DocumentName), p)
		}
	}

	// A policy's own hooks.
	inst2, _, _ := e.instanceWithData(t, 1)
	s, _ = e.appHandlers(t, policyConfig(t, appPolicy+`    hooks:
      pre: {commands: ["echo pre"], timeout: 5s}
      post: {document: AWS-RunShellScript, parameters: {commands: ["echo post"], workingDirectory: [/tmp]}}
`))
	if _, err := s.createInstance(context.Background(), instanceJob(inst2, "app", appPeriod)); err != nil {
		t.Fatal(err)
	}
	cmds = e.commands(t, inst2)
	if len(cmds) != 2 || cmds[0].Parameters["commands"][0] != "echo pre" || cmds[1].Parameters["commands"][0] != "echo post" ||
		cmds[1].Parameters["workingDirectory"][0] != "/tmp" {
		t.Errorf("commands %+v", cmds)
	}
}

// invocation is a fake GetCommandInvocation answer.
func invocation(status ssmtypes.CommandInvocationStatus, detail, stderr string) *ssm.GetCommandInvocationOutput {
	return &ssm.GetCommandInvocationOutput{Status: status, StatusDetails: aws.String(detail), StandardErrorContent: aws.String(stderr)}
}

// TestHooksPreFailure: a pre hook that fails, times out, or cannot reach the instance
// (not a managed instance): with on_pre_failure crash_consistent the snapshots are made
// and tagged crash (a fallback), the post hook runs if the pre was sent; with skip, no
// CreateSnapshots — the job is retried, or, on an unmanaged instance, skipped
// (not_managed), never retried forever.
func TestHooksPreFailure(t *testing.T) {
	t.Parallel()
	failed := func(_ context.Context, op, hook string, _ any) (any, error) {
		if op == "GetCommandInvocation" && hook == "pre" {
			return invocation(ssmtypes.CommandInvocationStatusFailed, "Failed", "fsfreeze: /data: Operation not supported"), nil
		}
		return nil, nil
	}
	stuck := func(_ context.Context, op, hook string, _ any) (any, error) {
		if op == "GetCommandInvocation" && hook == "pre" {
			return invocation(ssmtypes.CommandInvocationStatusInProgress, "InProgress", ""), nil
		}
		return nil, nil
	}
	unmanaged := func(_ context.Context, op, hook string, _ any) (any, error) {
		if op == "SendCommand" {
			return nil, &smithy.GenericAPIError{Code: "InvalidInstanceId", Message: "Instances [[i-x]] not in a valid state for account"}
		}
		return nil, nil
	}
	lost := func(_ context.Context, op, hook string, _ any) (any, error) {
		if op == "SendCommand" && hook == "pre" {
			return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "the answer was lost"}
		}
		return nil, nil
	}
	tests := []struct {
		name     string
		fake     func(context.Context, string, string, any) (any, error)
		skip     bool
		outcome  outcome
		why      string
		postSent bool
	}{
		{"pre answer lost/crash", lost, false, outSuccess, reason.PreHookFailed, true},
		{"failed/crash", failed, false, outSuccess, reason.PreHookFailed, true},
		{"timed out/crash", stuck, false, outSuccess, reason.PreHookFailed, true},
		{"not managed/crash", unmanaged, false, outSuccess, reason.NotManaged, false},
		{"failed/skip", failed, true, outRetry, "", true},
		{"timed out/skip", stuck, true, outRetry, "", true},
		{"not managed/skip", unmanaged, true, outSkip, reason.NotManaged, false},
	}
	e := newMoto(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inst, _, _ := e.instanceWithData(t, 1)
			onFail := "crash_consistent"
			if tt.skip {
				onFail = "skip"
			}
			s, c := e.appHandlers(t, policyConfig(t, appPolicy+"    hooks: {on_pre_failure: "+onFail+", pre: {commands: [freeze], timeout: 1s}, post: {commands: [thaw]}}\n"))
			c.fake = tt.fake
			j := instanceJob(inst, "app", appPeriod)
			res, err := s.createInstance(context.Background(), j)
			o, why, _ := outcomeOf(err)
			if o != tt.outcome || (o == outSkip && why != tt.why) {
				t.Fatalf("outcome %v %q (%v), want %v %q", o, why, err, tt.outcome, tt.why)
			}
			if post := c.count("SendCommand post"); (post == 1) != tt.postSent || post > 1 {
				t.Errorf("post sent %d times, want sent: %v (%v)", post, tt.postSent, c.seen())
			}
			creates := c.count("CreateSnapshots")
			if tt.outcome != outSuccess {
				if creates != 0 || len(e.byJob(t, j.Key)) != 0 {
					t.Errorf("on_pre_failure: skip made snapshots (%d calls)", creates)
				}
				return
			}
			if !res.Fallback || creates != 1 {
				t.Errorf("result %+v after %d CreateSnapshots, want a fallback and one call", res, creates)
			}
			if got := e.consistencyOf(t, j.Key); len(got) != 2 || got[0] != tag.Crash || got[1] != tag.Crash {
				t.Errorf("snapfleet:consistency = %v, want crash on both", got)
			}
		})
	}
}

// TestHooksPostFailure: a post hook that fails, or cannot be sent, does not fail the job
// (the snapshots are good) but is reported (PostFailed: the summary's post_failures).
func TestHooksPostFailure(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	for name, fake := range map[string]func(context.Context, string, string, any) (any, error){
		"failed": func(_ context.Context, op, hook string, _ any) (any, error) {
			if op == "GetCommandInvocation" && hook == "post" {
				return invocation(ssmtypes.CommandInvocationStatusFailed, "Failed", "fsfreeze: unfreeze failed"), nil
			}
			return nil, nil
		},
		"not sent": func(_ context.Context, op, hook string, _ any) (any, error) {
			if op == "SendCommand" && hook == "post" {
				return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "boom"}
			}
			return nil, nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inst, _, _ := e.instanceWithData(t, 1)
			s, c := e.appHandlers(t, policyConfig(t, appPolicy))
			s.backoff = backoff{Base: time.Millisecond, Tries: 0, Cap: time.Millisecond, Budget: time.Millisecond, SnoozeMin: time.Second}
			c.fake = fake
			res, err := s.createInstance(context.Background(), instanceJob(inst, "app", appPeriod))
			if err != nil || res.Action != Created || !res.PostFailed || res.Fallback {
				t.Fatalf("createInstance = %+v, %v; want created with the post failure reported", res, err)
			}
		})
	}
}

// TestHooksPostOnEveryPath: once the pre hook was sent, the post hook is sent whatever
// becomes of CreateSnapshots — an AWS error, the job's context cancelled (SIGTERM) while
// it runs, a panic — and after the pre hook's own failure or a cancellation while
// waiting for it.
func TestHooksPostOnEveryPath(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	tests := []struct {
		name string
		fake func(cancel context.CancelFunc) func(context.Context, string, string, any) (any, error)
	}{
		{"aws error", func(context.CancelFunc) func(context.Context, string, string, any) (any, error) {
			return func(_ context.Context, op, _ string, _ any) (any, error) {
				if op == "CreateSnapshots" {
					return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "boom"}
				}
				return nil, nil
			}
		}},
		{"cancelled during CreateSnapshots", func(cancel context.CancelFunc) func(context.Context, string, string, any) (any, error) {
			return func(ctx context.Context, op, _ string, _ any) (any, error) {
				if op == "CreateSnapshots" {
					cancel()
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return nil, nil
			}
		}},
		{"cancelled waiting for pre", func(cancel context.CancelFunc) func(context.Context, string, string, any) (any, error) {
			return func(ctx context.Context, op, hook string, _ any) (any, error) {
				if op == "GetCommandInvocation" && hook == "pre" {
					cancel()
					return nil, ctx.Err()
				}
				return nil, nil
			}
		}},
		{"panic", func(context.CancelFunc) func(context.Context, string, string, any) (any, error) {
			return func(_ context.Context, op, _ string, _ any) (any, error) {
				if op == "CreateSnapshots" {
					panic("handler bug")
				}
				return nil, nil
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inst, _, _ := e.instanceWithData(t, 1)
			s, c := e.appHandlers(t, policyConfig(t, appPolicy))
			s.backoff = backoff{Base: time.Millisecond, Tries: 0, Cap: time.Millisecond, Budget: time.Millisecond, SnoozeMin: time.Second}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c.fake = tt.fake(cancel)
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = errors.New("panicked")
					}
				}()
				_, err = s.createInstance(ctx, instanceJob(inst, "app", appPeriod))
			}()
			if err == nil {
				t.Fatal("the job succeeded")
			}
			if n := c.count("SendCommand post"); n != 1 {
				t.Errorf("post sent %d times after %v, want once: %v", n, err, c.seen())
			}
		})
	}
}

// TestHooksLostResponse: CreateSnapshots takes effect at moto but its answer is lost. The
// post hook is sent all the same; the retry finds the snapshots by the job's key and
// does not freeze again (no second pre hook, no second CreateSnapshots).
func TestHooksLostResponse(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	inst, _, _ := e.instanceWithData(t, 1)
	s, c := e.appHandlers(t, policyConfig(t, appPolicy))
	lost := true
	c.after = func(op, _ string, err error) error {
		if op == "CreateSnapshots" && lost {
			lost = false
			return &smithy.GenericAPIError{Code: "InternalError", Message: "the answer was lost"}
		}
		return err
	}
	j := instanceJob(inst, "app", appPeriod)
	if _, err := s.createInstance(context.Background(), j); err == nil {
		t.Fatal("first attempt succeeded")
	}
	res, err := s.createInstance(context.Background(), j)
	if err != nil || res.Action != Existed {
		t.Fatalf("retry = %+v, %v; want existed", res, err)
	}
	if pre, post, cs := c.count("SendCommand pre"), c.count("SendCommand post"), c.count("CreateSnapshots"); pre != 1 || post != 1 || cs != 1 {
		t.Errorf("pre sent %d times, post %d, CreateSnapshots %d; want once each", pre, post, cs)
	}
	if got := e.consistencyOf(t, j.Key); len(got) != 2 || got[0] != tag.Application {
		t.Errorf("snapfleet:consistency = %v", got)
	}
}

// TestHooksSummary: the worker's summary counts fallbacks and post failures; an
// application job's admission reserves its SSM calls.
func TestHooksSummary(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, appPolicy)
	inst, _, _ := e.instanceWithData(t, 1)
	c := &calls{hooks: map[string]string{}, fake: func(_ context.Context, op, hook string, _ any) (any, error) {
		if op == "GetCommandInvocation" {
			return invocation(ssmtypes.CommandInvocationStatusFailed, "Failed", "no"), nil
		}
		return nil, nil
	}}
	sapi := ssm.NewFromConfig(e.cfg, func(o *ssm.Options) { o.APIOptions = append(o.APIOptions, c.apply) })
	q := newFakeQueue()
	q.add(0, encode(t, instanceJob(inst, "app", appPeriod)))
	w := e.newWorker(q, cfg, func() time.Time { return time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC) })
	w.SSM = func(string, string) SSM { return sapi }
	if st := runFor(t, w, 10*time.Second); st != (Stats{Processed: 1, Created: 1, Fallbacks: 1, PostFailures: 1}) {
		t.Errorf("stats = %+v, want 1 created with 1 fallback and 1 post failure", st)
	}
	r := &runner{w: &Worker{Config: cfg}}
	got := r.needs(job.Job{Kind: job.KindCreateInstance, Policy: "app"})
	if !slices.Contains(got, limitNeed("SendCommand", 2)) || !slices.Contains(got, limitNeed("GetCommandInvocation", 2)) {
		t.Errorf("needs = %v, want the SSM calls too", got)
	}
}

func limitNeed(action string, n int) limit.Need { return limit.Need{Action: action, N: n} }

// TestHooksRetryAfterKill: a worker killed between pre and post leaves no snapshot: the
// retry (the message back after its visibility) freezes again and makes them, once.
func TestHooksRetryAfterKill(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	inst, _, _ := e.instanceWithData(t, 1)
	s, c := e.appHandlers(t, policyConfig(t, appPolicy))
	ctx, kill := context.WithCancel(context.Background())
	c.fake = func(ctx context.Context, op, hook string, _ any) (any, error) {
		if op == "GetCommandInvocation" && hook == "pre" {
			kill() // the process dies while the filesystems are frozen
			return nil, ctx.Err()
		}
		return nil, nil
	}
	j := instanceJob(inst, "app", appPeriod)
	if _, err := s.createInstance(ctx, j); err == nil {
		t.Fatal("the killed attempt succeeded")
	}
	c.mu.Lock()
	c.fake = nil
	c.mu.Unlock()
	res, err := s.createInstance(context.Background(), j)
	if err != nil || res.Action != Created {
		t.Fatalf("retry = %+v, %v; want created", res, err)
	}
	if pre, cs := c.count("SendCommand pre"), c.count("CreateSnapshots"); pre != 2 || cs != 1 {
		t.Errorf("pre sent %d times, CreateSnapshots %d; want 2 and 1", pre, cs)
	}
	if got := e.consistencyOf(t, j.Key); len(got) != 2 || got[0] != tag.Application {
		t.Errorf("snapfleet:consistency = %v", got)
	}
}

// TestHooksThrottledWhileFrozen: a CreateSnapshots throttled while the filesystems are
// frozen is retried in-process at most once, shortly; then the post hook thaws and the
// job is snoozed (a throttle is never a fallback), rather than holding the freeze through
// the usual back-off.
func TestHooksThrottledWhileFrozen(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	inst, _, _ := e.instanceWithData(t, 1)
	s, c := e.appHandlers(t, policyConfig(t, appPolicy))
	c.fake = func(_ context.Context, op, _ string, _ any) (any, error) {
		if op == "CreateSnapshots" {
			return nil, &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "slow down"}
		}
		return nil, nil
	}
	res, err := s.createInstance(context.Background(), instanceJob(inst, "app", appPeriod))
	if o, _, _ := outcomeOf(err); o != outSnooze || res.Fallback {
		t.Fatalf("outcome %v (%v), fallback %v; want a snooze", o, err, res.Fallback)
	}
	if n, post := c.count("CreateSnapshots"), c.count("SendCommand post"); n > 2 || post != 1 {
		t.Errorf("CreateSnapshots tried %d times while frozen (want at most 2), post sent %d times", n, post)
	}
}

// TestHooksRenewBeforeFreeze: a job admitted before AWS throttled CreateSnapshots (its
// token paced at the rate before the halving) renews its token before the pre hook: with
// no room to wait, it is snoozed without freezing anything; with room, it waits and then
// freezes, snapshots once and thaws. (Made frozen, its call would be throttled too: in
// hooks/app, most throttles were such calls.)
func TestHooksRenewBeforeFreeze(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	// No room: the halved bucket's next token is 200 s away, however slow the machine. Room:
	// 400 ms away, within the 5 s the job may wait.
	for _, c := range []struct {
		perSecond float64
		wait      time.Duration
		snooze    bool
	}{{0.01, 100 * time.Millisecond, true}, {5, 5 * time.Second, false}} {
		inst, _, _ := e.instanceWithData(t, 1)
		s, calls := e.appHandlers(t, policyConfig(t, appPolicy))
		s.lim = limit.New(map[string]limit.Bucket{"CreateSnapshots": {Burst: 100, PerSecond: c.perSecond}})
		ctx, release, _, ok := s.lim.Admit(context.Background(), testAccount, testRegion, []limit.Need{{Action: "CreateSnapshots", N: 1}}, time.Second)
		if !ok {
			t.Fatal("not admitted with a full bucket")
		}
		time.Sleep(10 * time.Millisecond)
		s.lim.Throttled(testAccount, testRegion, "CreateSnapshots", time.Now()) // another job's call, after the admission
		res, err := s.createInstance(limit.WithMaxWait(ctx, c.wait), instanceJob(inst, "app", appPeriod))
		release()
		o, _, _ := outcomeOf(err)
		pre, cs := calls.count("SendCommand pre"), calls.count("CreateSnapshots")
		switch {
		case c.snooze && (o != outSnooze || pre != 0 || cs != 0):
			t.Errorf("no room to wait: outcome %v (%v), pre sent %d, CreateSnapshots %d; want a snooze before the freeze", o, err, pre, cs)
		case !c.snooze && (err != nil || res.Fallback || pre != 1 || cs != 1):
			t.Errorf("room to wait: %v, fallback %v, pre sent %d, CreateSnapshots %d; want one freeze and one create", err, res.Fallback, pre, cs)
		}
	}
}

// TestWhileFrozen: calls made while frozen wait for the client's rate limit at most
// frozenRetry (then the job snoozes and the post hook thaws), never the runner's usual
// quarter of the visibility timeout.
func TestWhileFrozen(t *testing.T) {
	t.Parallel()
	for _, outer := range []time.Duration{0, 10 * time.Second, 100 * time.Millisecond} {
		ctx := context.Background()
		if outer > 0 {
			ctx = limit.WithMaxWait(ctx, outer)
		}
		d, ok := limit.MaxWait(whileFrozen(ctx))
		if !ok || d > frozenRetry || (outer > 0 && d > outer) {
			t.Errorf("max wait under %s: %s, %v; want at most %s and the outer bound", outer, d, ok, frozenRetry)
		}
	}
	if b := frozenBackoff(whileFrozen(context.Background()), defaultBackoff); b.Budget > frozenRetry || b.Tries > 1 {
		t.Errorf("frozen backoff %+v", b)
	}
}
