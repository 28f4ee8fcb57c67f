package cloud

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// counter counts the calls of each operation that reach the wire, and records the
// AssumeRole inputs.
type counter struct {
	mu      sync.Mutex
	calls   map[string]int
	assumes []sts.AssumeRoleInput
}

func (c *counter) option(s *middleware.Stack) error {
	return s.Initialize.Add(middleware.InitializeMiddlewareFunc("snapfleetTestCount",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.mu.Lock()
			if c.calls == nil {
				c.calls = map[string]int{}
			}
			c.calls[awsmiddleware.GetOperationName(ctx)]++
			if ar, ok := in.Parameters.(*sts.AssumeRoleInput); ok {
				c.assumes = append(c.assumes, *ar)
			}
			c.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

func (c *counter) n(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

func TestAssumeRoleOncePerAccount(t *testing.T) {
	t.Parallel()
	s := mototest.Start(t)
	base := s.AWSConfig(t)
	ctx := context.Background()
	cfg := config.Default()
	accounts := []string{"111111111111", "222222222222", "333333333333"}
	for _, a := range accounts {
		cfg.Accounts = append(cfg.Accounts, config.Account{ID: a, RoleARN: "arn:aws:iam::" + a + ":role/x", ExternalID: "ext-" + a})
	}
	var cnt counter
	cl := NewClients(base, cfg)
	cl.APIOptions = append(cl.APIOptions, cnt.option)
	for range 3 {
		for _, a := range accounts {
			for _, r := range []string{"us-east-1", "eu-west-1"} {
				if _, err := cl.EC2(a, r).DescribeVolumes(ctx, &ec2.DescribeVolumesInput{}); err != nil {
					t.Fatalf("%s/%s: %v", a, r, err)
				}
			}
		}
	}
	if got := cnt.n("AssumeRole"); got != len(accounts) {
		t.Errorf("AssumeRole called %d times for %d accounts × 2 regions × 3 rounds, want %d", got, len(accounts), len(accounts))
	}
	for _, in := range cnt.assumes {
		id := (*in.RoleArn)[len("arn:aws:iam::"):][:12]
		if aws.ToString(in.RoleSessionName) != SessionName || aws.ToString(in.ExternalId) != "ext-"+id {
			t.Errorf("AssumeRole %s: session %q, external id %q", *in.RoleArn, aws.ToString(in.RoleSessionName), aws.ToString(in.ExternalId))
		}
	}

	// Credentials are refreshed once they are within the window of their expiry: with a
	// window longer than moto's one-hour lifetime, every use refreshes.
	var again counter
	short := NewClients(base, cfg)
	short.APIOptions = append(short.APIOptions, again.option)
	short.CredentialWindow = 2 * time.Hour
	for range 3 {
		if _, err := short.EC2(accounts[0], "us-east-1").DescribeVolumes(ctx, &ec2.DescribeVolumesInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := again.n("AssumeRole"); got != 3 {
		t.Errorf("AssumeRole with expiring credentials: %d calls, want 3 (one per use)", got)
	}
}

func TestOrganizationDiscovery(t *testing.T) {
	t.Parallel()
	s := mototest.Start(t)
	base := s.AWSConfig(t)
	ctx := context.Background()
	org := organizations.NewFromConfig(base)
	if _, err := org.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll}); err != nil {
		t.Fatalf("creating the organization: %v", err)
	}
	roots, err := org.ListRoots(ctx, &organizations.ListRootsInput{})
	if err != nil || len(roots.Roots) != 1 {
		t.Fatalf("ListRoots: %v", err)
	}
	root := aws.ToString(roots.Roots[0].Id)
	ou, err := org.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: aws.String(root), Name: aws.String("prod")})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := org.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: ou.OrganizationalUnit.Id, Name: aws.String("prod-eu")})
	if err != nil {
		t.Fatal(err)
	}
	var members []string
	for i := range 4 {
		out, err := org.CreateAccount(ctx, &organizations.CreateAccountInput{
			AccountName: aws.String("member" + string(rune('a'+i))), Email: aws.String("m" + string(rune('a'+i)) + "@example.com")})
		if err != nil {
			t.Fatalf("creating account %d: %v", i, err)
		}
		members = append(members, aws.ToString(out.CreateAccountStatus.AccountId))
	}
	move := func(account, to string) {
		if _, err := org.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(account),
			SourceParentId: aws.String(root), DestinationParentId: aws.String(to)}); err != nil {
			t.Fatalf("moving %s: %v", account, err)
		}
	}
	move(members[0], aws.ToString(ou.OrganizationalUnit.Id))
	move(members[1], aws.ToString(sub.OrganizationalUnit.Id))
	move(members[2], aws.ToString(ou.OrganizationalUnit.Id))

	discover := func(o config.Organization) ([]string, *counter) {
		t.Helper()
		cfg := config.Default()
		cfg.Organization = &o
		cl := NewClients(base, cfg)
		var cnt counter
		cl.APIOptions = append(cl.APIOptions, cnt.option)
		got, err := cl.Accounts(ctx)
		if err != nil {
			t.Fatalf("Accounts(%+v): %v", o, err)
		}
		if again, _ := cl.Accounts(ctx); !slices.Equal(again, got) {
			t.Fatal("second Accounts differs")
		}
		for _, id := range got {
			if ok, err := cl.Known(ctx, id); !ok || err != nil {
				t.Errorf("Known(%s) = %v, %v", id, ok, err)
			}
		}
		if ok, _ := cl.Known(ctx, "999999999999"); ok {
			t.Error("an account outside the organization is known")
		}
		return got, &cnt
	}

	// Every account of the organization (the management account too) but the excluded.
	got, cnt := discover(config.Organization{RoleName: "x", Exclude: []string{members[3], mototest.Account}})
	want := slices.Sorted(slices.Values(members[:3]))
	if !slices.Equal(got, want) {
		t.Errorf("discovered %v, want %v", got, want)
	}
	if cnt.n("ListAccounts") != 1 {
		t.Errorf("ListAccounts called %d times, want once (cached)", cnt.n("ListAccounts"))
	}

	// include_ous: the accounts under the OU and its child OUs, less the excluded.
	got, _ = discover(config.Organization{RoleName: "x", IncludeOUs: []string{aws.ToString(ou.OrganizationalUnit.Id)}, Exclude: []string{members[2]}})
	if want := slices.Sorted(slices.Values(members[:2])); !slices.Equal(got, want) {
		t.Errorf("under the OU: %v, want %v", got, want)
	}

	// A discovered account is reached through the organization's role name.
	cfg := config.Default()
	cfg.Organization = &config.Organization{RoleName: "snapfleet-member", ExternalID: "e"}
	cl := NewClients(base, cfg)
	if a, arn := callerAccount(t, base, cl.EC2(members[0], mototest.Region)); a != members[0] || !slices.Contains([]string{"arn:aws:sts::" + members[0] + ":assumed-role/snapfleet-member/" + SessionName}, arn) {
		t.Errorf("member client acts as %s (%s)", a, arn)
	}
}

func TestLimiterMiddleware(t *testing.T) {
	t.Parallel()
	s := mototest.Start(t)
	base := s.AWSConfig(t)
	ctx := context.Background()
	cfg := config.Default()
	cfg.Limits.DescribeSnapshots = &config.Bucket{Burst: 2, PerSecond: 0.5}
	cl := NewClients(base, cfg)
	c := cl.EC2(mototest.Account, mototest.Region)
	bounded := limit.WithMaxWait(ctx, 100*time.Millisecond)
	// Calls go through until the bucket is empty: its 2 tokens, and what refilled
	// meanwhile (moto answers slowly on a loaded machine); then the DescribeSnapshots call
	// that finds it empty is a WaitError at once, and no request.
	var we *limit.WaitError
	var errAt time.Time
	start := time.Now()
	for i := 0; we == nil; i++ {
		_, err := c.DescribeSnapshots(bounded, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
		switch {
		case errors.As(err, &we):
			errAt = time.Now()
		case err != nil:
			t.Fatalf("call %d: %v", i, err)
		case float64(i+1) > 2+0.5*time.Since(start).Seconds()+1:
			t.Fatalf("%d calls went through a bucket of 2 at 0.5/s in %v", i+1, time.Since(start))
		}
	}
	if we.Action != "DescribeSnapshots" || we.Account != mototest.Account || we.Region != mototest.Region || we.Delay <= 100*time.Millisecond {
		t.Fatalf("WaitError %+v, want the DescribeSnapshots bucket of %s/%s", we, mototest.Account, mototest.Region)
	}
	// Another action has its own bucket: DescribeVolumes goes through at once.
	if _, err := c.DescribeVolumes(bounded, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5)}); err != nil {
		t.Errorf("DescribeVolumes with the DescribeSnapshots bucket empty: %v", err)
	}
	// Unbounded, the call waits for the token the WaitError announced, and succeeds.
	if _, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(errAt); took < we.Delay-20*time.Millisecond {
		t.Errorf("unbounded call returned %v after the WaitError, want at least its %v", took, we.Delay)
	}
	// Another region has its own bucket.
	if _, err := cl.EC2(mototest.Account, "eu-west-1").DescribeSnapshots(bounded, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}}); err != nil {
		t.Errorf("eu-west-1: %v", err)
	}

	// A throttle from AWS halves that bucket's rate, and only that bucket's.
	var throttle atomic.Bool
	tcl := NewClients(base, config.Default())
	tcl.APIOptions = append(tcl.APIOptions, func(s *middleware.Stack) error {
		// At the end of Finalize, after the limiter, where AWS's answer comes from.
		return s.Finalize.Add(middleware.FinalizeMiddlewareFunc("snapfleetTestThrottle",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if throttle.Load() {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "injected"}
				}
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	})
	tc := tcl.EC2(mototest.Account, mototest.Region)
	throttle.Store(true)
	_, err := tc.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-1")}, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	if class, _ := Classify(err); class != Throttled {
		t.Fatalf("injected throttle: %v", err)
	}
	if cur, conf := tcl.Limiter.Rate(mototest.Account, mototest.Region, "DeleteSnapshot"); cur < 2.5 || cur > 2.6 || conf != 5 {
		t.Errorf("DeleteSnapshot rate after a throttle: %v of %v, want 2.5 of 5", cur, conf)
	}
	if cur, _ := tcl.Limiter.Rate(mototest.Account, mototest.Region, "CreateSnapshot"); cur != 5 {
		t.Errorf("CreateSnapshot rate: %v, want 5", cur)
	}
}

func TestRetryerHasNoSharedQuota(t *testing.T) {
	t.Parallel()
	// A standard retryer's quota is 500 tokens and a retry of a throttle costs 5: a
	// storm drains it after 100 retries. Without a quota, the 1000th retry is allowed.
	r := NewRetryer()
	if r.MaxAttempts() != 3 {
		t.Errorf("MaxAttempts = %d, want 3", r.MaxAttempts())
	}
	throttle := &smithy.GenericAPIError{Code: "RequestLimitExceeded"}
	for i := range 1000 {
		if _, err := r.GetRetryToken(context.Background(), throttle); err != nil {
			t.Fatalf("retry token %d: %v", i, err)
		}
	}
}

// redirectRole rewrites every AssumeRole of from into one of to, as a trust chain that
// hands out another account's credentials would.
func redirectRole(from, to string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("snapfleetTestRedirectRole",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if ar, ok := in.Parameters.(*sts.AssumeRoleInput); ok && aws.ToString(ar.RoleArn) == from {
					cp := *ar
					cp.RoleArn = aws.String(to)
					in.Parameters = &cp
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
}

// TestForeignAccounts: an account listed without a role must be the caller's own, and a
// role's credentials must be its account's. CheckAccounts (and Targets) name the first
// listed account that is not, before anything is planned; Known refuses a job's account
// whose credentials are another's. Each account's identity is asked once per process.
func TestForeignAccounts(t *testing.T) {
	t.Parallel()
	s := mototest.Start(t)
	base := s.AWSConfig(t)
	ctx := context.Background()
	const (
		stranger   = "801119661308"
		redirected = "444444444444"
		elsewhere  = "555555555555"
	)
	cfg := config.Default()
	cfg.Accounts = []config.Account{
		{ID: mototest.Account},
		{ID: roleAccount, RoleARN: roleARN},
		{ID: redirected, RoleARN: "arn:aws:iam::" + redirected + ":role/x"},
		{ID: stranger},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var cnt counter
	cl := NewClients(base, cfg)
	cl.APIOptions = append(cl.APIOptions, cnt.option,
		redirectRole("arn:aws:iam::"+redirected+":role/x", "arn:aws:iam::"+elsewhere+":role/x"))

	var foreign *ForeignAccountError
	err := cl.CheckAccounts(ctx)
	if !errors.As(err, &foreign) || foreign.Account != stranger || foreign.Actual != mototest.Account || foreign.Role != "" {
		t.Fatalf("CheckAccounts: %v, want the no-role %s found to be %s", err, stranger, mototest.Account)
	}
	if msg := err.Error(); !strings.Contains(msg, stranger) || !strings.Contains(msg, mototest.Account) || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming %s and %s", msg, stranger, mototest.Account)
	}
	if _, _, err := cl.Targets(ctx, []string{mototest.Region}); !errors.As(err, &foreign) || foreign.Account != stranger {
		t.Errorf("Targets: %v, want the ForeignAccountError of %s", err, stranger)
	}
	// CheckAccounts asks only about the accounts without a role: no role was assumed.
	if n := cnt.n("AssumeRole"); n != 0 {
		t.Errorf("CheckAccounts assumed %d roles, want none", n)
	}

	for range 3 {
		for _, tt := range []struct {
			account     string
			known       bool
			foreignedBy string // the actual account of a ForeignAccountError
		}{
			{mototest.Account, true, ""},
			{roleAccount, true, ""},
			{stranger, false, mototest.Account},
			{redirected, false, elsewhere},
			{"666666666666", false, ""},
		} {
			ok, err := cl.Known(ctx, tt.account)
			switch {
			case tt.foreignedBy != "":
				if !errors.As(err, &foreign) || ok || foreign.Account != tt.account || foreign.Actual != tt.foreignedBy {
					t.Errorf("Known(%s) = %v, %v; want a ForeignAccountError: credentials of %s", tt.account, ok, err, tt.foreignedBy)
				}
			case err != nil || ok != tt.known:
				t.Errorf("Known(%s) = %v, %v; want %v", tt.account, ok, err, tt.known)
			}
		}
	}
	if msg := (&ForeignAccountError{Account: redirected, Actual: elsewhere, Role: "r"}).Error(); !strings.Contains(msg, redirected) || !strings.Contains(msg, elsewhere) {
		t.Errorf("role mismatch error %q names neither account", msg)
	}
	// Once per process: the caller's identity, and each role's through its credentials.
	if n := cnt.n("GetCallerIdentity"); n != 3 {
		t.Errorf("GetCallerIdentity called %d times, want 3 (the caller, %s's role, %s's role)", n, roleAccount, redirected)
	}
	if n := cnt.n("AssumeRole"); n != 2 {
		t.Errorf("AssumeRole called %d times, want 2", n)
	}

	// Listed without a role and the caller's own: fine.
	own := config.Default()
	own.Accounts = []config.Account{{ID: mototest.Account}, {ID: roleAccount, RoleARN: roleARN}}
	if err := NewClients(base, own).CheckAccounts(ctx); err != nil {
		t.Errorf("CheckAccounts with the caller's own account: %v", err)
	}
}
