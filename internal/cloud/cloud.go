// Package cloud wires the AWS SDK for snapfleet: the base configuration from the SDK's
// standard sources, EC2 clients per account and region (assuming the account's role when
// the config names one, with cached credentials), the caller's own account, and the one
// table that classifies AWS error codes.
package cloud

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/internal/config"
)

// SessionName is the role session name snapfleet uses, so CloudTrail shows who acted.
const SessionName = "snapfleet"

// LoadAWS reads the SDK's standard configuration: AWS_ENDPOINT_URL(_EC2|_SQS|_STS),
// AWS_REGION, profiles, roles.
func LoadAWS(ctx context.Context, optFns ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	opts := append([]func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.AddWithMaxAttempts(retry.NewStandard(), 3)
		}),
	}, optFns...)
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return cfg, nil
}

// Clients hands out EC2 clients per account and region. It is safe for concurrent use.
type Clients struct {
	base     aws.Config
	accounts map[string]config.Account
	// APIOptions are added to every client: tests inject faults with them.
	APIOptions []func(*middleware.Stack) error

	mu    sync.Mutex
	self  string
	ec2   map[string]*ec2.Client
	creds map[string]aws.CredentialsProvider
}

// NewClients returns a factory over base for the accounts of cfg.
func NewClients(base aws.Config, cfg *config.Config) *Clients {
	c := &Clients{
		base:     base,
		accounts: map[string]config.Account{},
		ec2:      map[string]*ec2.Client{},
		creds:    map[string]aws.CredentialsProvider{},
	}
	for _, a := range cfg.Accounts {
		c.accounts[a.ID] = a
	}
	return c
}

// Config is the base SDK configuration (for SQS and other services of the caller).
func (c *Clients) Config() aws.Config { return c.base }

// DefaultRegion is the SDK's region, used when the config lists none.
func (c *Clients) DefaultRegion() string { return c.base.Region }

// Self returns the caller's own account id (STS GetCallerIdentity, asked once).
func (c *Clients) Self(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.self != "" {
		return c.self, nil
	}
	out, err := sts.NewFromConfig(c.base, func(o *sts.Options) {
		o.APIOptions = append(o.APIOptions, c.APIOptions...)
	}).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("getting the caller's account: %w", err)
	}
	c.self = aws.ToString(out.Account)
	return c.self, nil
}

// Known reports whether account is the caller's own or one in the config.
func (c *Clients) Known(ctx context.Context, account string) (bool, error) {
	if _, ok := c.accounts[account]; ok {
		return true, nil
	}
	self, err := c.Self(ctx)
	if err != nil {
		return false, err
	}
	return account == self, nil
}

// EC2 returns the EC2 client for account and region, assuming the account's role when the
// config names one. Clients and credentials are cached.
func (c *Clients) EC2(account, region string) *ec2.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := account + "/" + region
	if cl, ok := c.ec2[key]; ok {
		return cl
	}
	cfg := c.base.Copy()
	cfg.Region = region
	if p := c.credsLocked(account); p != nil {
		cfg.Credentials = p
	}
	cl := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, c.APIOptions...)
	})
	c.ec2[key] = cl
	return cl
}

func (c *Clients) credsLocked(account string) aws.CredentialsProvider {
	a, ok := c.accounts[account]
	if !ok || a.RoleARN == "" {
		return nil
	}
	if p, ok := c.creds[account]; ok {
		return p
	}
	stsClient := sts.NewFromConfig(c.base, func(o *sts.Options) {
		o.APIOptions = append(o.APIOptions, c.APIOptions...)
	})
	p := aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, a.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = SessionName
		if a.ExternalID != "" {
			o.ExternalID = aws.String(a.ExternalID)
		}
	}))
	c.creds[account] = p
	return p
}
