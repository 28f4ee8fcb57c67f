package worker

import (
	"context"
	_ "embed" // the default hook scripts
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// SSM is the part of SSM Run Command the worker uses for consistency: application, with
// the SDK's exact signatures.
type SSM interface {
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, optFns ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
}

// The default Linux hooks (a policy with consistency: application and no pre or post):
// freeze the filesystems of the instance's EBS data volumes, with a watchdog on the
// instance that thaws them after max_freeze; thaw them and disarm it.
var (
	//go:embed hooks/freeze.sh
	freezeScript string
	//go:embed hooks/thaw.sh
	thawScript string
)

// hook is one Run Command the worker sends: which, the document, its parameters, and how
// long the worker waits for its invocation.
type hook struct {
	name     string // pre, post or vss
	document string
	params   map[string][]string
	timeout  time.Duration
}

// hookRun is what the hooks of one job did.
type hookRun struct {
	// consistency is the snapfleet:consistency tag the snapshots got.
	consistency string
	// fallback is why the snapshots are crash-consistent although the policy asked for
	// application (reason.NotManaged, reason.PreHookFailed); "" when they are not.
	fallback string
	// post is the post hook's command id once sent, postErr why it could not be sent.
	post    string
	postErr error
	postHk  hook
	// vss holds the snapshots AWSEC2-CreateVssSnapshot made (vss.go).
	vss *ec2.CreateSnapshotsOutput
}

// hookError is a hook whose invocation did not succeed.
type hookError struct {
	hook, status, detail, output string
	// unmanaged: SSM could not deliver it (the instance is not a managed instance).
	unmanaged bool
}

func (e *hookError) Error() string {
	msg := fmt.Sprintf("%s hook ended %s", e.hook, e.status)
	if e.detail != "" && e.detail != e.status {
		msg += " (" + e.detail + ")"
	}
	if e.output != "" {
		msg += ": " + e.output
	}
	return msg
}

// safeWord is what the default scripts' environment may carry unquoted-safe.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9/_.-]+$`)

// defaultHooks are the default scripts' pre and post for the data volumes of inst that
// spec snapshots: their volume ids and device names, and max_freeze, in the environment.
func defaultHooks(h config.Hooks, inst types.Instance, spec *types.InstanceSpecification) (pre, post []string) {
	root := aws.ToString(inst.RootDeviceName)
	var vols, devs []string
	for _, m := range inst.BlockDeviceMappings {
		if m.Ebs == nil {
			continue
		}
		vol, dev := aws.ToString(m.Ebs.VolumeId), aws.ToString(m.DeviceName)
		if dev == root || !safeWord.MatchString(vol) || !safeWord.MatchString(dev) ||
			(spec != nil && contains(spec.ExcludeDataVolumeIds, vol)) {
			continue
		}
		vols, devs = append(vols, vol), append(devs, dev)
	}
	env := fmt.Sprintf("export SNAPFLEET_VOLUMES='%s' SNAPFLEET_DEVICES='%s' SNAPFLEET_MAX_FREEZE=%d",
		strings.Join(vols, " "), strings.Join(devs, " "), int(math.Ceil(h.Freeze().Seconds())))
	return []string{env, freezeScript}, []string{env, thawScript}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hooksOf are the pre and post hooks of a policy for inst: its own, or the defaults.
func hooksOf(h config.Hooks, inst types.Instance, spec *types.InstanceSpecification) (pre, post hook) {
	defPre, defPost := defaultHooks(h, inst, spec)
	mk := func(name string, c *config.Hook, def []string) hook {
		hk := hook{name: name, document: c.DocumentName(), params: c.Params(), timeout: c.HookTimeout()}
		if c == nil {
			hk.params = map[string][]string{"commands": def}
		}
		return hk
	}
	return mk("pre", h.Pre, defPre), mk("post", h.Post, defPost)
}

// withHooks runs create (the job's CreateSnapshots with in) between the policy's pre and
// post hooks: pre, wait for its success within its timeout, create, post at once (the
// point in time is fixed when CreateSnapshots returns). The snapshots are tagged with
// the consistency they really have. Once pre was sent, post is sent on every path —
// failure, cancellation (with a context of its own), panic. A pre that fails falls back
// to a crash-consistent snapshot, or with on_pre_failure: skip fails the job (skips it
// when the instance is not a managed instance).
func (s *snapshots) withHooks(ctx context.Context, j job.Job, p config.Policy, inst types.Instance, in *ec2.CreateSnapshotsInput, create func(context.Context) error) (run hookRun, err error) {
	h := p.HookSet()
	api, err := s.ssmOf(j)
	if err != nil {
		return run, err
	}
	pre, post := hooksOf(h, inst, in.InstanceSpecification)
	run.postHk = post
	// The create's token was reserved when the job was admitted: if AWS throttled the
	// bucket since, it is paced again now, before the freeze, not while frozen.
	renew := func(ctx context.Context) error { return s.lim.Renew(ctx, j.Account, j.Region, "CreateSnapshots") }
	if err := s.call(ctx, renew); err != nil {
		return run, err
	}
	sent := false
	defer func() {
		if sent && run.post == "" && run.postErr == nil {
			run.post, run.postErr = s.sendPost(ctx, api, j, post)
		}
	}()
	id, perr := s.sendHook(ctx, api, j, pre)
	sent = id != "" || mayHaveRun(perr)
	if perr == nil {
		perr = s.awaitHook(ctx, api, j, id, pre)
	}
	if perr != nil {
		why, ferr := s.preFailed(ctx, j, h, perr)
		if ferr != nil {
			return run, ferr
		}
		run.consistency, run.fallback = tag.Crash, why
	} else {
		run.consistency = tag.Application
	}
	setConsistency(in, run.consistency)
	err = create(whileFrozen(ctx))
	if sent {
		run.post, run.postErr = s.sendPost(ctx, api, j, post)
	}
	return run, err
}

// mayHaveRun reports whether a SendCommand that failed with err may have taken effect
// (a lost answer): then the post hook is sent too — thawing is harmless when nothing froze.
func mayHaveRun(err error) bool {
	var snooze *SnoozeError
	if err == nil || errors.As(err, &snooze) {
		return false
	}
	switch class, _ := cloud.Classify(err); class {
	case cloud.Unmanaged, cloud.Invalid, cloud.Denied, cloud.Throttled, cloud.NotFound:
		return false
	}
	return true
}

// preFailed decides what a failed pre hook means: a fallback (its reason), or the
// error that ends the job (throttling and cancellation are never fallbacks).
func (s *snapshots) preFailed(ctx context.Context, j job.Job, h config.Hooks, err error) (string, error) {
	var snooze *SnoozeError
	if ctx.Err() != nil || errors.As(err, &snooze) {
		return "", err
	}
	why := reason.PreHookFailed
	var he *hookError
	if class, _ := cloud.Classify(err); class == cloud.Unmanaged || (errors.As(err, &he) && he.unmanaged) {
		why = reason.NotManaged
	}
	ev := s.log(j).Warn().Str("reason", why).Err(err)
	if h.SkipOnPreFailure() {
		ev.Msg("pre hook failed: no snapshot (on_pre_failure: skip)")
		if why == reason.NotManaged {
			return "", skipErr(why, fmt.Errorf("instance %s: %w", j.Instance, err))
		}
		return "", fail(fmt.Errorf("running the pre hook on instance %s: %w", j.Instance, err))
	}
	ev.Msg("pre hook failed: the snapshot is crash-consistent (on_pre_failure: crash_consistent)")
	return why, nil
}

// setConsistency writes snapfleet:consistency in the CreateSnapshots call's tags.
func setConsistency(in *ec2.CreateSnapshotsInput, value string) {
	for i := range in.TagSpecifications {
		ts := &in.TagSpecifications[i]
		ts.Tags = append(ts.Tags, types.Tag{Key: aws.String(tag.Consistency), Value: aws.String(value)})
	}
}

// log is the logger of j's hooks.
func (s *snapshots) log(j job.Job) *zerolog.Logger {
	l := s.logger.With().Str("run", j.Run).Str("kind", j.Kind).Str("key", j.Key).Str("account", j.Account).
		Str("region", j.Region).Str("policy", j.Policy).Str("instance", j.Instance).Logger()
	return &l
}

// ssmOf is the SSM client of j's account-region.
func (s *snapshots) ssmOf(j job.Job) (SSM, error) {
	if s.ssm == nil {
		return nil, fail(errors.New("consistency: application needs SSM, and the worker has no SSM client"))
	}
	return s.ssm(j.Account, j.Region), nil
}

// sendHook sends hk to j's instance and returns the command id.
func (s *snapshots) sendHook(ctx context.Context, api SSM, j job.Job, hk hook) (string, error) {
	comment := "snapfleet " + hk.name + " " + j.Key
	if len(comment) > 100 {
		comment = comment[:100]
	}
	in := &ssm.SendCommandInput{
		DocumentName:   aws.String(hk.document),
		InstanceIds:    []string{j.Instance},
		Parameters:     hk.params,
		Comment:        aws.String(comment),
		TimeoutSeconds: aws.Int32(int32(max(30, math.Ceil(hk.timeout.Seconds())))),
	}
	var out *ssm.SendCommandOutput
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = api.SendCommand(ctx, in)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sending the %s hook (%s) to instance %s: %w", hk.name, hk.document, j.Instance, err)
	}
	if out.Command == nil || aws.ToString(out.Command.CommandId) == "" {
		return "", fmt.Errorf("sending the %s hook to instance %s: no command id", hk.name, j.Instance)
	}
	return aws.ToString(out.Command.CommandId), nil
}

// sendPost sends the post hook with a context of its own, bounded by its timeout: it
// runs after a cancellation too.
func (s *snapshots) sendPost(ctx context.Context, api SSM, j job.Job, post hook) (string, error) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), post.timeout)
	defer cancel()
	id, err := s.sendHook(pctx, api, j, post)
	if err != nil {
		s.log(j).Error().Str("reason", reason.PostHookFailed).Err(err).Msg("post hook not sent; the default scripts' watchdog thaws anyway")
	}
	return id, err
}

// Polling an invocation: the first look after pollFirst, then each wait half as long
// again, at most pollMax.
const (
	pollFirst = 100 * time.Millisecond
	pollMax   = 2 * time.Second
	// outputTail is how much of a failed command's output is logged.
	outputTail = 400
)

// awaitHook waits until the invocation of command id on j's instance succeeded, within
// hk's timeout; any other end is a *hookError with the output's tail.
func (s *snapshots) awaitHook(ctx context.Context, api SSM, j job.Job, id string, hk hook) error {
	return s.awaitFrom(ctx, api, j, id, hk, pollFirst)
}

// awaitFrom is awaitHook with the first look after first.
func (s *snapshots) awaitFrom(ctx context.Context, api SSM, j job.Job, id string, hk hook, first time.Duration) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, hk.timeout)
	defer cancel()
	in := &ssm.GetCommandInvocationInput{CommandId: aws.String(id), InstanceId: aws.String(j.Instance)}
	wait, last := first, ""
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if parent.Err() == nil {
				return &hookError{hook: hk.name, status: "TimedOut", detail: "no success within " + hk.timeout.String() + ", last " + last}
			}
			return ctx.Err()
		case <-t.C:
		}
		wait = min(max(wait*3/2, pollFirst), pollMax)
		var out *ssm.GetCommandInvocationOutput
		err := s.call(ctx, func(ctx context.Context) error {
			var err error
			out, err = api.GetCommandInvocation(ctx, in)
			return err
		})
		if class, _ := cloud.Classify(err); class == cloud.NotFound {
			continue // InvocationDoesNotExist: not yet
		}
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return fmt.Errorf("reading the %s hook's invocation %s: %w", hk.name, id, err)
		}
		last = string(out.Status)
		switch out.Status {
		case ssmtypes.CommandInvocationStatusSuccess:
			return nil
		case ssmtypes.CommandInvocationStatusPending, ssmtypes.CommandInvocationStatusInProgress,
			ssmtypes.CommandInvocationStatusDelayed:
			continue
		}
		detail := aws.ToString(out.StatusDetails)
		return &hookError{hook: hk.name, status: last, detail: detail, output: tail(out),
			unmanaged: detail == "Undeliverable" || detail == "InvalidPlatform"}
	}
}

// tail is the end of a command's output, error output first.
func tail(out *ssm.GetCommandInvocationOutput) string {
	s := strings.TrimSpace(aws.ToString(out.StandardErrorContent) + "\n" + aws.ToString(out.StandardOutputContent))
	if r := []rune(s); len(r) > outputTail {
		s = "…" + string(r[len(r)-outputTail:])
	}
	return strings.ReplaceAll(s, "\n", " | ")
}

// finishPost waits for the post hook's invocation (after the snapshots are settled, so
// the freeze is not held for it) and reports whether it failed: logged at error level;
// the snapshots are good either way.
func (s *snapshots) finishPost(ctx context.Context, j job.Job, run hookRun) (failed bool) {
	if run.postErr != nil {
		return true
	}
	if run.post == "" {
		return false
	}
	api, err := s.ssmOf(j)
	if err != nil {
		return true
	}
	// The snapshots were settled and tagged since the post hook was sent: look at once.
	if err := s.awaitFrom(ctx, api, j, run.post, run.postHk, 0); err != nil {
		if ctx.Err() == nil {
			s.log(j).Error().Str("reason", reason.PostHookFailed).Err(err).Msg("post hook failed; the default scripts' watchdog thaws anyway")
			return true
		}
	}
	return false
}

// needs are a job's rate-limited calls (admission, admit.go): its kind's, and the SSM
// calls of its policy's hooks — two commands and at least one look at each for pre and
// post, one of each for VSS.
func (r *runner) needs(j job.Job) []limit.Need {
	n := needs(j.Kind)
	p, ok := r.w.Config.Policy(j.Policy)
	if n == nil || !ok || !p.Application() || j.Kind != job.KindCreateInstance {
		return n
	}
	switch h := p.HookSet(); {
	case h.StopInstance:
		return n
	case h.VSS != nil:
		return append(n, limit.Need{Action: "SendCommand", N: 1}, limit.Need{Action: "GetCommandInvocation", N: 1})
	}
	return append(n, limit.Need{Action: "SendCommand", N: 2}, limit.Need{Action: "GetCommandInvocation", N: 2})
}

// consistent runs create, CreateSnapshots with in, as the policy's consistency asks:
// as is (instance), between the hooks, with VSS on the instance (run.vss then holds the
// snapshots the document made), or of a stopped instance (cold.go stopped it).
func (s *snapshots) consistent(ctx context.Context, c createStart, j job.Job, inst types.Instance, in *ec2.CreateSnapshotsInput, create func(context.Context) error) (hookRun, error) {
	p := c.policy
	switch h := p.HookSet(); {
	case !p.Application():
		return hookRun{}, create(ctx)
	case h.StopInstance:
		setConsistency(in, tag.Application)
		return hookRun{consistency: tag.Application}, create(ctx)
	case h.VSS != nil:
		return s.withVSS(ctx, c, j, in, create)
	}
	return s.withHooks(ctx, j, p, inst, in, create)
}

// frozenKey marks the context of a call made while the instance's filesystems are frozen.
type frozenKey struct{}

// whileFrozen marks ctx: its calls are made while the filesystems are frozen, and wait
// for the client's rate limit at most frozenRetry (a longer wait snoozes the job).
func whileFrozen(ctx context.Context) context.Context {
	wait := frozenRetry
	if d, ok := limit.MaxWait(ctx); ok {
		wait = min(wait, d)
	}
	return limit.WithMaxWait(context.WithValue(ctx, frozenKey{}, true), wait)
}

// frozenRetry bounds the in-process retries of a throttled call made while frozen: one,
// within this; then the job is snoozed and the post hook thaws at once, rather than the
// filesystems waiting for AWS's bucket (a retry freezes again).
const frozenRetry = 250 * time.Millisecond

// frozenBackoff is b, bounded by frozenRetry for a call made while frozen.
func frozenBackoff(ctx context.Context, b backoff) backoff {
	if frozen, _ := ctx.Value(frozenKey{}).(bool); frozen {
		b.Tries = min(b.Tries, 1)
		b.Base = min(b.Base, frozenRetry/2)
		b.Cap = min(b.Cap, frozenRetry)
		b.Budget = min(b.Budget, frozenRetry)
	}
	return b
}
