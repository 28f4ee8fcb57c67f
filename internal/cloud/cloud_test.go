package cloud

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/testbed/fleet"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

const (
	roleAccount   = "222222222222"
	noRoleAccount = mototest.Account // listed without a role: it must be the caller's own
	roleARN       = "arn:aws:iam::222222222222:role/x"
)

func testConfig() *config.Config {
	c := config.Default()
	c.Accounts = []config.Account{
		{ID: roleAccount, RoleARN: roleARN, ExternalID: "ext"},
		{ID: noRoleAccount},
	}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

// fault fails every call of operation op (all operations when op is "") with code while
// on reports true: moto never throttles, so the tests throttle it themselves.
func fault(op, code string, on func() bool) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Finalize.Add(middleware.FinalizeMiddlewareFunc("snapfleetTestFault",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if (op == "" || awsmiddleware.GetOperationName(ctx) == op) && on() {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: code, Message: "injected by the test"}
				}
				return next.HandleFinalize(ctx, in)
			}), middleware.Before)
	}
}

func always() bool { return true }

func volumeIDs(t *testing.T, c *ec2.Client) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	p := ec2.NewDescribeVolumesPaginator(c, &ec2.DescribeVolumesInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("describing volumes: %v", err)
		}
		for _, v := range out.Volumes {
			ids[aws.ToString(v.VolumeId)] = true
		}
	}
	return ids
}

// callerAccount asks STS who the credentials of an EC2 client belong to.
func callerAccount(t *testing.T, base aws.Config, c *ec2.Client) (account, arn string) {
	t.Helper()
	cfg := base.Copy()
	cfg.Credentials = c.Options().Credentials
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	return aws.ToString(out.Account), aws.ToString(out.Arn)
}

func TestClientsOnMoto(t *testing.T) {
	t.Parallel()
	s := mototest.Start(t)
	moto := fleet.New(t, s)
	base := s.AWSConfig(t)
	ctx := context.Background()
	cl := NewClients(base, testConfig())

	t.Run("Self", func(t *testing.T) {
		self, err := cl.Self(ctx)
		if err != nil || self != mototest.Account {
			t.Fatalf("Self = %q, %v; want %s", self, err, mototest.Account)
		}
		if again, _ := cl.Self(ctx); again != self {
			t.Fatalf("second Self = %q", again)
		}
		if cl.DefaultRegion() != mototest.Region || cl.Config().Region != mototest.Region ||
			cl.Config().BaseEndpoint == nil || *cl.Config().BaseEndpoint != s.Endpoint {
			t.Fatalf("DefaultRegion = %q, Config = %+v", cl.DefaultRegion(), cl.Config())
		}
	})

	t.Run("Known", func(t *testing.T) {
		for _, tt := range []struct {
			account string
			want    bool
		}{
			{mototest.Account, true},
			{roleAccount, true},
			{noRoleAccount, true},
			{"444444444444", false},
			{"", false},
		} {
			got, err := cl.Known(ctx, tt.account)
			if err != nil || got != tt.want {
				t.Errorf("Known(%q) = %v, %v; want %v", tt.account, got, err, tt.want)
			}
		}
	})

	t.Run("assumed role sees its own account", func(t *testing.T) {
		own := cl.EC2(mototest.Account, mototest.Region)
		member := cl.EC2(roleAccount, mototest.Region)
		if own == member {
			t.Fatal("same client for two accounts")
		}
		if a, arn := callerAccount(t, base, member); a != roleAccount || !strings.Contains(arn, "assumed-role/x/"+SessionName) {
			t.Fatalf("member client acts as %s (%s), want %s through role x with session %s", a, arn, roleAccount, SessionName)
		}
		if a, _ := callerAccount(t, base, own); a != mototest.Account {
			t.Fatalf("own client acts as %s", a)
		}

		memberVol := moto.Through(member).Volume(ctx)
		ownVol := moto.Through(own).Volume(ctx)
		memberSees, ownSees := volumeIDs(t, member), volumeIDs(t, own)
		if !memberSees[memberVol] || memberSees[ownVol] {
			t.Errorf("member account sees %v; want %s and not %s", memberSees, memberVol, ownVol)
		}
		if !ownSees[ownVol] || ownSees[memberVol] {
			t.Errorf("own account sees %v; want %s and not %s", ownSees, ownVol, memberVol)
		}
	})

	t.Run("account without role uses the base credentials", func(t *testing.T) {
		c := cl.EC2(noRoleAccount, mototest.Region)
		if a, _ := callerAccount(t, base, c); a != mototest.Account {
			t.Fatalf("no-role client acts as %s, want the caller's %s", a, mototest.Account)
		}
	})

	t.Run("clients are cached per account and region", func(t *testing.T) {
		a := cl.EC2(roleAccount, "us-east-1")
		if b := cl.EC2(roleAccount, "us-east-1"); a != b {
			t.Error("second EC2 call made a new client")
		}
		w := cl.EC2(roleAccount, "eu-west-1")
		if w == a || w.Options().Region != "eu-west-1" {
			t.Errorf("eu-west-1 client has region %q", w.Options().Region)
		}
		// Both regions share the account's cached role credentials.
		if w.Options().Credentials != a.Options().Credentials {
			t.Error("role credentials are not shared across regions")
		}
		if a, _ := callerAccount(t, base, w); a != roleAccount {
			t.Errorf("eu-west-1 member client acts as %s", a)
		}
	})

	t.Run("concurrent use", func(t *testing.T) {
		var wg sync.WaitGroup
		clients := make([]*ec2.Client, 16)
		for i := range clients {
			wg.Go(func() {
				clients[i] = cl.EC2(roleAccount, "ap-south-1")
				if _, err := cl.Known(ctx, "555555555555"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, c := range clients {
			if c != clients[0] {
				t.Fatal("concurrent EC2 calls made different clients")
			}
		}
	})
}

func TestClientsFaultInjection(t *testing.T) {
	t.Parallel()
	s := mototest.Start(t)
	moto := fleet.New(t, s)
	base := s.AWSConfig(t)
	ctx := context.Background()

	t.Run("throttled EC2 call classifies as Throttled", func(t *testing.T) {
		cl := NewClients(base, testConfig())
		cl.APIOptions = append(cl.APIOptions, fault("CreateSnapshot", "SnapshotCreationPerVolumeRateExceeded", always))
		for _, account := range []string{mototest.Account, roleAccount} {
			c := cl.EC2(account, mototest.Region)
			vol := moto.Through(c).Volume(ctx) // other operations pass
			_, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
			class, wait := Classify(err)
			if class != Throttled || wait.Seconds() < 15 {
				t.Fatalf("%s: CreateSnapshot error %v classified %s %v", account, err, class, wait)
			}
		}
	})

	t.Run("Self does not cache a failure", func(t *testing.T) {
		var failing atomic.Bool
		failing.Store(true)
		cl := NewClients(base, testConfig())
		cl.APIOptions = append(cl.APIOptions, fault("GetCallerIdentity", "RequestLimitExceeded", failing.Load))
		_, err := cl.Self(ctx)
		if err == nil || !strings.Contains(err.Error(), "getting the caller's account") {
			t.Fatalf("Self error %v", err)
		}
		if c, _ := Classify(err); c != Throttled {
			t.Fatalf("Self error classified %s", c)
		}
		// A configured account is known once STS proved its credentials; any other needs
		// Self. Neither answer is known while STS fails, nor cached.
		if ok, err := cl.Known(ctx, roleAccount); ok || err == nil {
			t.Fatalf("Known(configured) while STS fails = %v, %v", ok, err)
		}
		if ok, err := cl.Known(ctx, mototest.Account); ok || err == nil {
			t.Fatalf("Known(self) while STS fails = %v, %v", ok, err)
		}
		failing.Store(false)
		if self, err := cl.Self(ctx); err != nil || self != mototest.Account {
			t.Fatalf("Self after recovery = %q, %v", self, err)
		}
		if ok, err := cl.Known(ctx, roleAccount); !ok || err != nil {
			t.Fatalf("Known(configured) after recovery = %v, %v", ok, err)
		}
	})

	t.Run("AssumeRole failure reaches the caller classified", func(t *testing.T) {
		cl := NewClients(base, testConfig())
		cl.APIOptions = append(cl.APIOptions, fault("AssumeRole", "AccessDenied", always))
		_, err := cl.EC2(roleAccount, mototest.Region).DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
		if c, _ := Classify(err); c != Denied {
			t.Fatalf("DescribeVolumes with a refused role: %v classified %s", err, c)
		}
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("error %v carries no API error", err)
		}
	})
}

func TestLoadAWS(t *testing.T) {
	t.Parallel()
	cfg, err := LoadAWS(context.Background(),
		awsconfig.WithRegion("eu-west-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("k", "s", "")),
		awsconfig.WithSharedConfigFiles(nil),
		awsconfig.WithSharedCredentialsFiles(nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" {
		t.Errorf("region %q", cfg.Region)
	}
	if n := cfg.Retryer().MaxAttempts(); n != 3 {
		t.Errorf("retryer allows %d attempts, want 3", n)
	}
	_, err = LoadAWS(context.Background(), awsconfig.WithSharedConfigProfile("snapfleet-no-such-profile"), awsconfig.WithSharedConfigFiles(nil))
	if err == nil || !strings.Contains(err.Error(), "loading AWS configuration") {
		t.Errorf("LoadAWS with a missing profile: %v", err)
	}
}
