package worker

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

const (
	vaultAccount = "222222222222"
	drRegion     = "us-west-2"
	vaultKey     = "arn:aws:kms:us-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

// The SDK's client satisfies the copy's interfaces.
var (
	_ copyAPI = (*ec2.Client)(nil)
	_ KMS     = (*kms.Client)(nil)
)

// copyConfig copies policy daily to drRegion in the vault with keep_last 3.
func copyConfig(t *testing.T, kmsKey string) *config.Config {
	t.Helper()
	key := ""
	if kmsKey != "" {
		key = ", kms_key: " + kmsKey
	}
	return policyConfig(t, `accounts: [{id: "`+mototest.Account+`"}, {id: "`+vaultAccount+`"}]
policies:
  - name: daily
    retain: {max_age: 30d}
    copy: [{region: `+drRegion+`, account: "`+vaultAccount+`"`+key+`, retain: {keep_last: 3}}]
`)
}

// copyCalls records the EC2 operations of the worker's clients in order, with their inputs.
type copyCalls struct {
	mu  sync.Mutex
	ops []string
	in  map[string]any
}

func (c *copyCalls) record(op string, params any, _ int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops = append(c.ops, op)
	if c.in == nil {
		c.in = map[string]any{}
	}
	c.in[op] = params
	return nil
}

func (c *copyCalls) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ops...)
}

// clientIn is a counted client of e in account (through AssumeRole) and region.
func (e *motoEnv) clientIn(t *testing.T, account, region string) *ec2.Client {
	t.Helper()
	cfg := e.s.AWSConfig(t)
	cfg.Region = region
	if account != mototest.Account {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), testfleet.Role(account)))
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.APIOptions = append(o.APIOptions, e.faults.apply) })
}

// copyWorld is a source snapshot in moto's account and the worker's clients of both ends.
type copyWorld struct {
	e        *motoEnv
	src, dst *ec2.Client
	snap     string
	vol      string
	rec      *copyCalls
}

func newCopyWorld(t *testing.T, encrypted bool) *copyWorld {
	t.Helper()
	e := newMoto(t)
	w := &copyWorld{e: e, src: e.clientIn(t, mototest.Account, mototest.Region), dst: e.clientIn(t, vaultAccount, drRegion), rec: &copyCalls{}}
	ctx := context.Background()
	out, err := e.setup.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(mototest.Region + "a"), Size: aws.Int32(1), Encrypted: aws.Bool(encrypted)})
	if err != nil {
		t.Fatal(err)
	}
	w.vol = aws.ToString(out.VolumeId)
	w.snap = e.snap(t, w.vol, 2*time.Hour, map[string]string{tag.Policy: "daily", tag.Volume: w.vol, "Team": "ops", tag.Expires: "2027-01-01T00:00:00Z"})
	e.faults.setFail(w.rec.record)
	return w
}

func (w *copyWorld) ec2For(account, region string) EC2 {
	if account == vaultAccount {
		return w.dst
	}
	return w.src
}

func (w *copyWorld) job() job.Job {
	return job.Job{V: 1, Kind: job.KindCopy, Key: job.CopyKey(vaultAccount, drRegion, w.snap), Account: vaultAccount, Region: drRegion,
		Policy: "daily", Volume: w.vol, SourceAccount: mototest.Account, SourceRegion: mototest.Region, SourceSnapshot: w.snap,
		Run: "r1", PlannedAt: time.Now().UTC()}
}

// copies lists the vault's copies of the world's snapshot.
func (w *copyWorld) copies(t *testing.T) []types.Snapshot {
	t.Helper()
	out, err := testfleet.New(t, w.e.s).In(vaultAccount, drRegion).EC2.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{
		OwnerIds: []string{vaultAccount}, Filters: []types.Filter{filter("tag:"+tag.Source, w.snap)}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Snapshots
}

func (w *copyWorld) shared(t *testing.T) []types.CreateVolumePermission {
	t.Helper()
	out, err := w.e.setup.DescribeSnapshotAttribute(context.Background(), &ec2.DescribeSnapshotAttributeInput{
		SnapshotId: aws.String(w.snap), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil {
		t.Fatal(err)
	}
	return out.CreateVolumePermissions
}

// TestCopyCrossAccount: a copy job delivered twice, then again later, makes one copy in
// the vault's region, with the copy's tags and the destination KMS key in the call; the
// source is shared with the vault before CopySnapshot and unshared after.
func TestCopyCrossAccount(t *testing.T) {
	t.Parallel()
	w := newCopyWorld(t, false)
	cfg := copyConfig(t, vaultKey)
	body := encode(t, w.job())
	q := newFakeQueue()
	q.add(0, body, body)
	wk := w.e.newWorker(q, cfg, time.Now)
	wk.EC2 = w.ec2For
	wk.Concurrency = 1
	if st := runFor(t, wk, 10*time.Second); st != (Stats{Processed: 2, Created: 1}) {
		t.Errorf("stats = %+v, want 2 processed, 1 created", st)
	}
	copied := w.e.faults.count("CopySnapshot")
	q = newFakeQueue()
	q.add(0, body)
	wk = w.e.newWorker(q, cfg, time.Now)
	wk.EC2 = w.ec2For
	if st := runFor(t, wk, 10*time.Second); st != (Stats{Processed: 1}) {
		t.Errorf("redelivery stats = %+v, want 1 processed, none created", st)
	}
	copies := w.copies(t)
	if len(copies) != 1 {
		t.Fatalf("%d copies in the vault, want 1", len(copies))
	}
	tags := tagMap(copies[0].Tags)
	want := map[string]string{tag.Policy: "daily", tag.Job: w.job().Key, tag.Source: w.snap, tag.SourceRegion: mototest.Region,
		tag.SourceAccount: mototest.Account, tag.Volume: w.vol, "Team": "ops"}
	for k, v := range want {
		if tags[k] != v {
			t.Errorf("copy tag %s = %q, want %q", k, tags[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339, tags[tag.SourceTime]); err != nil || tags[tag.Expires] != "" {
		t.Errorf("copy tags %v: want %s and no %s", tags, tag.SourceTime, tag.Expires)
	}
	ops := w.rec.list()
	share, cp := slices.Index(ops, "ModifySnapshotAttribute"), slices.Index(ops, "CopySnapshot")
	unshare := slices.Index(ops[cp+1:], "ModifySnapshotAttribute")
	if share < 0 || cp < share || unshare < 0 {
		t.Errorf("calls %v: want ModifySnapshotAttribute, CopySnapshot, ModifySnapshotAttribute", ops)
	}
	// The SDK presigns a CopySnapshot through the same stack: the middleware sees two
	// operations per call. The redelivery made none.
	if n := w.e.faults.count("CopySnapshot"); n != copied || copied == 0 {
		t.Errorf("CopySnapshot seen %d times after the first run, %d after the redelivery: %v", copied, n, ops)
	}
	in, _ := w.rec.in["CopySnapshot"].(*ec2.CopySnapshotInput)
	if in == nil || aws.ToString(in.KmsKeyId) != vaultKey || !aws.ToBool(in.Encrypted) || aws.ToString(in.SourceRegion) != mototest.Region {
		t.Errorf("CopySnapshot input %+v: want KmsKeyId %s, Encrypted, SourceRegion %s", in, vaultKey, mototest.Region)
	}
	if perms := w.shared(t); len(perms) != 0 {
		t.Errorf("source still shared with %v after the copy completed", perms)
	}
}

// TestCopyManagedKey: a snapshot encrypted with the AWS-managed key (moto gives it no
// KmsKeyId: the account's default) is not copied to another account: managed_key, before
// any share or copy call.
func TestCopyManagedKey(t *testing.T) {
	t.Parallel()
	w := newCopyWorld(t, true)
	s := &snapshots{cfg: copyConfig(t, ""), ec2: w.ec2For, now: time.Now, backoff: defaultBackoff}
	_, err := s.copy(context.Background(), w.job())
	if o, why, _ := outcomeOf(err); o != outDeadLetter || why != reason.ManagedKey {
		t.Fatalf("copy: %v (%s %s), want a dead letter managed_key", err, o, why)
	}
	for _, op := range []string{"ModifySnapshotAttribute", "CopySnapshot"} {
		if n := w.e.faults.count(op); n != 0 {
			t.Errorf("%s called %d times", op, n)
		}
	}
}

// TestCopyResourceLimitWaits: ResourceLimitExceeded from CopySnapshot snoozes the job
// (never a dead letter); the next attempt copies.
func TestCopyResourceLimitWaits(t *testing.T) {
	t.Parallel()
	w := newCopyWorld(t, false)
	w.e.faults.setFail(func(op string, _ any, n int) error {
		if op == "CopySnapshot" && n == 1 {
			return apiError("ResourceLimitExceeded")
		}
		return nil
	})
	s := &snapshots{cfg: copyConfig(t, ""), ec2: w.ec2For, now: time.Now, backoff: backoff{Base: time.Millisecond, Tries: 1, Cap: 10 * time.Millisecond, Budget: 20 * time.Millisecond, SnoozeMin: time.Second}}
	_, err := s.copy(context.Background(), w.job())
	if o, _, d := outcomeOf(err); o != outSnooze || d < 10*time.Second {
		t.Fatalf("copy: %v (%s, %s), want a snooze of at least 10s", err, o, d)
	}
	if res, err := s.copy(context.Background(), w.job()); err != nil || res.Action != Created {
		t.Fatalf("second attempt: %+v, %v", res, err)
	}
	if n := len(w.copies(t)); n != 1 {
		t.Errorf("%d copies, want 1", n)
	}
}

// pendingEC2 answers DescribeSnapshots with n pending copies.
type pendingEC2 struct {
	EC2
	n, calls int
}

func (p *pendingEC2) DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	p.calls++
	out := &ec2.DescribeSnapshotsOutput{}
	for range p.n {
		out.Snapshots = append(out.Snapshots, types.Snapshot{SnapshotId: aws.String("snap-0000000a"), OwnerId: aws.String(vaultAccount), State: types.SnapshotStatePending})
	}
	return out, nil
}

// TestCopyPace: with 20 copies pending at the destination the copy waits (copy_limit);
// with 18, two more start and the third waits; the listing is made once per TTL.
func TestCopyPace(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	s := &snapshots{backoff: defaultBackoff}
	s.pace.now = func() time.Time { return clock }
	full := &pendingEC2{n: 20}
	err := s.pace.acquire(context.Background(), s, full, vaultAccount, drRegion)
	if o, why, _ := outcomeOf(err); o != outSnooze || why != reason.CopyLimit {
		t.Fatalf("at 20 pending: %v (%s %s), want a copy_limit snooze", err, o, why)
	}
	clock = clock.Add(copyPaceFullTTL) // a full destination is listed again sooner
	some := &pendingEC2{n: 18}
	for i := range 2 {
		if err := s.pace.acquire(context.Background(), s, some, vaultAccount, drRegion); err != nil {
			t.Fatalf("copy %d at 18 pending: %v", i+1, err)
		}
	}
	if err := s.pace.acquire(context.Background(), s, some, vaultAccount, drRegion); err == nil {
		t.Fatal("a 21st copy in progress was let through")
	}
	if some.calls != 1 {
		t.Errorf("listed the pending copies %d times within the TTL, want 1", some.calls)
	}
}

// fakeKMS answers DescribeKey with manager.
type fakeKMS struct {
	manager kmstypes.KeyManagerType
	calls   int
}

func (f *fakeKMS) DescribeKey(_ context.Context, in *kms.DescribeKeyInput, _ ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	f.calls++
	return &kms.DescribeKeyOutput{KeyMetadata: &kmstypes.KeyMetadata{KeyId: in.KeyId, KeyManager: f.manager}}, nil
}

// TestCheckShareableAsksKMS: a snapshot encrypted with a key KMS says AWS manages is
// refused (managed_key); one with a customer managed key, or unencrypted, goes on. moto
// cannot tell them apart (its alias/aws/ebs is a customer key, its snapshots keep no
// KmsKeyId), so KMS is a fake here.
func TestCheckShareableAsksKMS(t *testing.T) {
	t.Parallel()
	key := "arn:aws:kms:us-east-1:123456789012:key/8586c7ce-6cd5-4f4d-8acc-1aeaffb06f66"
	j := job.Job{SourceAccount: mototest.Account, SourceRegion: mototest.Region, SourceSnapshot: "snap-00000001", Account: vaultAccount}
	for _, tt := range []struct {
		manager   kmstypes.KeyManagerType
		encrypted bool
		refused   bool
	}{{kmstypes.KeyManagerTypeAws, true, true}, {kmstypes.KeyManagerTypeCustomer, true, false}, {kmstypes.KeyManagerTypeAws, false, false}} {
		f := &fakeKMS{manager: tt.manager}
		s := &snapshots{backoff: defaultBackoff, kms: func(string, string) KMS { return f }}
		err := s.checkShareable(context.Background(), j, &types.Snapshot{Encrypted: aws.Bool(tt.encrypted), KmsKeyId: aws.String(key)})
		_, why, _ := outcomeOf(err)
		if refused := why == reason.ManagedKey; refused != tt.refused {
			t.Errorf("%s key, encrypted %v: %v; want refused %v", tt.manager, tt.encrypted, err, tt.refused)
		}
	}
}

// TestCopyUnknownSourceAccount: a copy job whose source account the worker may not act
// in is dead-lettered unknown_account before any EC2 call.
func TestCopyUnknownSourceAccount(t *testing.T) {
	t.Parallel()
	w := newCopyWorld(t, false)
	s := &snapshots{cfg: copyConfig(t, ""), ec2: w.ec2For, now: time.Now, backoff: defaultBackoff,
		known: func(_ context.Context, a string) (bool, error) { return a == vaultAccount, nil }}
	_, err := s.copy(context.Background(), w.job())
	if o, why, _ := outcomeOf(err); o != outDeadLetter || why != reason.UnknownAccount {
		t.Fatalf("copy: %v (%s %s), want a dead letter unknown_account", err, o, why)
	}
	if ops := w.rec.list(); len(ops) != 0 {
		t.Errorf("EC2 calls %v before the refusal", ops)
	}
}
