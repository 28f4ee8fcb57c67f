package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/rs/zerolog"
	"github.com/sethvargo/go-retry"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// EC2 is the part of the EC2 API the worker uses, with the SDK's exact signatures so that
// *ec2.Client and the SDK's paginators fit it.
type EC2 interface {
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	CreateSnapshot(ctx context.Context, in *ec2.CreateSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error)
	// Instance jobs: read the instance, snapshot its volumes at once, tag each snapshot
	// with its volume and device.
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateSnapshots(ctx context.Context, in *ec2.CreateSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.CreateSnapshotsOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	// The delete's re-checks: is the volume gone (orphans), is the snapshot shared or locked.
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DescribeSnapshotAttribute(ctx context.Context, in *ec2.DescribeSnapshotAttributeInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error)
	DescribeLockedSnapshots(ctx context.Context, in *ec2.DescribeLockedSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLockedSnapshotsOutput, error)
	// Cold backups (hooks.stop_instance, cold.go): stop, start, and the instance's mark.
	StopInstances(ctx context.Context, in *ec2.StopInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	StartInstances(ctx context.Context, in *ec2.StartInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, optFns ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
}

// backoff tunes how throttled AWS calls are retried: a few short in-process tries with
// go-retry, then the message is snoozed on the queue.
type backoff struct {
	// Base is the first in-process wait; it doubles each try, with ±50% jitter.
	Base time.Duration
	// Tries is how many in-process retries follow the first call.
	Tries uint64
	// Cap bounds one wait, Budget all of them.
	Cap, Budget time.Duration
	// SnoozeMin is the least time a throttled message is hidden on the queue.
	SnoozeMin time.Duration
}

var defaultBackoff = backoff{
	Base:      250 * time.Millisecond,
	Tries:     3,
	Cap:       2 * time.Second,
	Budget:    4 * time.Second,
	SnoozeMin: 5 * time.Second,
}

// snapshots holds the snapshot handlers.
type snapshots struct {
	cfg *config.Config
	ec2 func(account, region string) EC2
	now func() time.Time
	// awsNow, when set, is AWS's clock per account-region: deletes wait while now is
	// skewed from it (checkClock).
	awsNow  func(account, region string) (time.Time, bool)
	backoff backoff
	// inFlight serialises jobs of one key in this process: a duplicate delivered in the
	// same batch waits and then finds the snapshot instead of making another.
	inFlight keyLock
	// locks caches each account-region's locked snapshots for lockTTL.
	locks lockCache
	// lim, when set, is the EC2 clients' rate limiter: coalesced lookups wait on it.
	lim *limit.Limiter
	// lookups coalesces the job-tag lookups and volume listings of an account-region.
	lookups lookups
	// kms, when set, tells who manages a source snapshot's key (copy.go).
	kms func(account, region string) KMS
	// pace counts the copies in progress per destination (copypace.go).
	pace copyPace
	// known, when set, says whether the worker may act in an account (Worker.KnownAccount):
	// a copy's source account is checked with it as the job's account is by the runner.
	known func(ctx context.Context, account string) (bool, error)
	// ssm returns the SSM client of an account-region (consistency: application, hooks.go).
	ssm    func(account, region string) SSM
	logger zerolog.Logger
}

// keyLock is a set of per-key mutexes that exist only while someone holds or waits.
type keyLock struct {
	mu   sync.Mutex
	keys map[string]*keyEntry
}

type keyEntry struct {
	sync.Mutex
	users int
}

// lock takes key's mutex and returns its release.
func (l *keyLock) lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.keys == nil {
		l.keys = map[string]*keyEntry{}
	}
	e := l.keys[key]
	if e == nil {
		e = &keyEntry{}
		l.keys[key] = e
	}
	e.users++
	l.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		l.mu.Lock()
		if e.users--; e.users == 0 {
			delete(l.keys, key)
		}
		l.mu.Unlock()
	}
}

// mux returns a Mux with the snapshot handlers registered by kind.
func (s *snapshots) mux() *Mux {
	m := NewMux()
	m.RegisterFunc(job.KindCreate, s.create)
	m.RegisterFunc(job.KindCreateInstance, s.createInstance)
	m.RegisterFunc(job.KindDelete, s.delete)
	m.RegisterFunc(job.KindCopy, s.copy)
	m.RegisterFunc(job.KindArchive, s.archive)
	return m
}

// call runs one AWS call. A throttled call is retried in-process a few times with
// exponential backoff and jitter; if it is still throttled — or its error code asks for
// a wait longer than in-process retries allow — the result is a Snooze that hides the
// message for at least the code's minimum wait.
func (s *snapshots) call(ctx context.Context, fn func(context.Context) error) error {
	b := frozenBackoff(ctx, s.backoff)
	bo := retry.NewExponential(b.Base)
	bo = retry.WithJitterPercent(50, bo)
	bo = retry.WithCappedDuration(b.Cap, bo)
	bo = retry.WithMaxRetries(b.Tries, bo)
	bo = retry.WithMaxDuration(b.Budget, bo)
	err := retry.Do(ctx, bo, func(ctx context.Context) error {
		err := fn(ctx)
		if class, minWait := cloud.Classify(err); class == cloud.Throttled && minWait <= b.Cap {
			return retry.RetryableError(err)
		}
		return err
	})
	// The client's rate limit (cloud.Clients) would have held this job's slot longer than
	// the runner allows: hand the job back until the account-region's bucket refills, so
	// a busy account-region does not starve the others of concurrency.
	// It comes back a little before its token would be due (¾ to 1 of the wait), so that
	// the bucket has jobs waiting for it rather than idling while they are away.
	var wait *limit.WaitError
	if errors.As(err, &wait) {
		return Snooze(wait.Delay*3/4+rand.N(wait.Delay/4+1), err)
	}
	if class, minWait := cloud.Classify(err); class == cloud.Throttled {
		d := max(minWait, b.SnoozeMin)
		d += rand.N(d/2 + 1)
		return Snooze(d, err)
	}
	return err
}

// fail turns an AWS error that the handler did not handle itself into an outcome:
// snoozes pass through, denied and invalid requests are permanent, anything else is
// retried through the queue.
func fail(err error) error {
	var snooze *SnoozeError
	if errors.As(err, &snooze) {
		return err
	}
	switch class, _ := cloud.Classify(err); class {
	case cloud.Denied:
		return Permanent(reason.AccessDenied, err)
	case cloud.Invalid:
		return Permanent(reason.InvalidRequest, err)
	}
	return err
}

// policyOf is the policy a job names, from the worker's config: one it does not know is
// permanent (unknown_policy).
func policyOf(cfg *config.Config, name string) (config.Policy, error) {
	p, ok := cfg.Policy(name)
	if !ok {
		return config.Policy{}, Permanent(reason.UnknownPolicy, fmt.Errorf("policy %q is not in the worker's config", name))
	}
	return p, nil
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

// noSDKRetry turns off the SDK's own retries for one call.
func noSDKRetry(o *ec2.Options) { o.RetryMaxAttempts = 1 }
