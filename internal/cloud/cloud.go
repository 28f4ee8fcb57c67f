// Package cloud wires the AWS SDK for snapfleet: the base configuration from the SDK's
// standard sources, the accounts (the config's list, or discovered with Organizations),
// EC2 clients per account and region (assuming the account's role when there is one, with
// credentials cached and refreshed before they expire), client-side rate limits on every
// EC2 call, AWS's clock as EC2's responses date it, the caller's own account, and the one
// table that classifies AWS error codes.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/limit"
)

// SessionName is the role session name snapfleet uses, so CloudTrail shows who acted.
const SessionName = "snapfleet"

// LoadAWS reads the SDK's standard configuration: AWS_ENDPOINT_URL(_EC2|_SQS|_STS),
// AWS_REGION, profiles, roles. Every client gets its own retryer (see NewRetryer).
func LoadAWS(ctx context.Context, optFns ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	opts := append([]func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryer(NewRetryer),
	}, optFns...)
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return cfg, nil
}

// NewRetryer is the SDK retryer of one client: standard, three attempts, and no retry
// quota (ratelimit.None) — the quota is shared by every call of a client, so a throttling
// storm in one account-region would drain it and make every other call fail at once.
// Throttles are paced by the limit package and the worker's own back-off instead.
func NewRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.RateLimiter = ratelimit.None
	})
}

// DefaultCredentialWindow is how long before they expire assumed-role credentials are
// refreshed.
const DefaultCredentialWindow = 5 * time.Minute

// Clients hands out EC2 clients per account and region. It is safe for concurrent use.
type Clients struct {
	base     aws.Config
	accounts map[string]config.Account
	org      *config.Organization
	// stsRegion is where STS is asked when the SDK has no region: the config's first.
	stsRegion string
	// APIOptions are added to every client: tests inject faults with them.
	APIOptions []func(*middleware.Stack) error
	// Limiter paces every EC2 call per account, region and action (NewClients builds it
	// from the config's limits); nil turns client-side limits off.
	Limiter *limit.Limiter
	// CredentialWindow replaces DefaultCredentialWindow (tests).
	CredentialWindow time.Duration

	// clock is AWS's clock per account-region, from the Date of EC2's responses (AWSNow).
	clock awsClock

	mu         sync.Mutex
	self       string
	discovered []string // the organization's accounts, once listed
	ec2        map[string]*ec2.Client
	ssm        map[string]*ssm.Client // ssm.go
	creds      map[string]aws.CredentialsProvider
	verdicts   map[string]*verdict
}

// verdict is whether an account's credentials proved to be that account's (Verify).
type verdict struct {
	mu   sync.Mutex
	done bool
	err  error // nil, or a *ForeignAccountError
}

// NewClients returns a factory over base for the accounts of cfg, with cfg's rate limits.
func NewClients(base aws.Config, cfg *config.Config) *Clients {
	c := &Clients{
		base:     base,
		accounts: map[string]config.Account{},
		org:      cfg.Organization,
		ec2:      map[string]*ec2.Client{},
		creds:    map[string]aws.CredentialsProvider{},
		verdicts: map[string]*verdict{},
	}
	if len(cfg.Regions) > 0 {
		c.stsRegion = cfg.Regions[0]
	}
	for _, a := range cfg.Accounts {
		c.accounts[a.ID] = a
	}
	rates := map[string]limit.Bucket{}
	for name, b := range cfg.Limits.Buckets() {
		rates[name] = limit.Bucket{Burst: b.Burst, PerSecond: b.PerSecond}
	}
	c.Limiter = limit.New(rates)
	return c
}

// Accounts are the accounts to plan: the config's list, or the organization's accounts
// (listed once, then cached), or none — the caller's own account is the caller's concern.
func (c *Clients) Accounts(ctx context.Context) ([]string, error) {
	if c.org == nil {
		ids := make([]string, 0, len(c.accounts))
		for id := range c.accounts {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.discovered != nil {
		return c.discovered, nil
	}
	ids, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	c.discovered = ids
	return ids, nil
}

// organizationsAPI is the part of the Organizations API discovery uses.
type organizationsAPI interface {
	ListAccounts(ctx context.Context, in *organizations.ListAccountsInput, optFns ...func(*organizations.Options)) (*organizations.ListAccountsOutput, error)
	ListAccountsForParent(ctx context.Context, in *organizations.ListAccountsForParentInput, optFns ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error)
	ListChildren(ctx context.Context, in *organizations.ListChildrenInput, optFns ...func(*organizations.Options)) (*organizations.ListChildrenOutput, error)
}

// discover lists the organization's active accounts — all of them, or those under
// include_ous and their child OUs — less the exclusions, sorted.
func (c *Clients) discover(ctx context.Context) ([]string, error) {
	var api organizationsAPI = organizations.NewFromConfig(c.base, func(o *organizations.Options) {
		o.APIOptions = append(o.APIOptions, c.APIOptions...)
	})
	seen := map[string]bool{}
	keep := func(accounts []orgtypes.Account) {
		for _, a := range accounts {
			id := aws.ToString(a.Id)
			if (a.Status == "" || a.Status == orgtypes.AccountStatusActive) && !c.org.Excludes(id) {
				seen[id] = true
			}
		}
	}
	if len(c.org.IncludeOUs) == 0 {
		p := organizations.NewListAccountsPaginator(api, &organizations.ListAccountsInput{})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("listing the organization's accounts: %w", err)
			}
			keep(page.Accounts)
		}
	}
	parents := slices.Clone(c.org.IncludeOUs)
	for visited := map[string]bool{}; len(parents) > 0; {
		parent := parents[0]
		parents = parents[1:]
		if visited[parent] {
			continue
		}
		visited[parent] = true
		pa := organizations.NewListAccountsForParentPaginator(api, &organizations.ListAccountsForParentInput{ParentId: aws.String(parent)})
		for pa.HasMorePages() {
			page, err := pa.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("listing the accounts of %s: %w", parent, err)
			}
			keep(page.Accounts)
		}
		pc := organizations.NewListChildrenPaginator(api, &organizations.ListChildrenInput{
			ParentId: aws.String(parent), ChildType: orgtypes.ChildTypeOrganizationalUnit})
		for pc.HasMorePages() {
			page, err := pc.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("listing the OUs under %s: %w", parent, err)
			}
			for _, ch := range page.Children {
				parents = append(parents, aws.ToString(ch.Id))
			}
		}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Config is the base SDK configuration (for SQS and other services of the caller).
func (c *Clients) Config() aws.Config { return c.base }

// DefaultRegion is the SDK's region, used when the config lists none.
func (c *Clients) DefaultRegion() string { return c.base.Region }

// ErrNoRegion: the config lists no region and the SDK has none (AWS_REGION unset).
var ErrNoRegion = errors.New("no region: set regions in the config, or AWS_REGION")

// Targets are the account-regions to plan: the config's accounts (listed, or discovered
// in the organization) or else the caller's own account, times the given regions or else
// the SDK's region. An organization with no account left after the exclusions is an
// error, not a silent plan of the caller's own account; so is a listed account without a
// role that is not the caller's (CheckAccounts).
func (c *Clients) Targets(ctx context.Context, configRegions []string) (accounts, regions []string, err error) {
	regions = configRegions
	if len(regions) == 0 {
		if c.base.Region == "" {
			return nil, nil, ErrNoRegion // before any call: STS would need a region too
		}
		regions = []string{c.base.Region}
	}
	if err := c.CheckAccounts(ctx); err != nil {
		return nil, nil, err
	}
	accounts, err = c.Accounts(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(accounts) == 0 && c.org != nil {
		return nil, nil, errors.New("accounts.organization: no active account left after the exclusions")
	}
	if len(accounts) == 0 {
		self, err := c.Self(ctx)
		if err != nil {
			return nil, nil, err
		}
		accounts = []string{self}
	}
	return accounts, regions, nil
}

// Self returns the caller's own account id (STS GetCallerIdentity, asked once).
func (c *Clients) Self(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.self != "" {
		return c.self, nil
	}
	out, err := c.sts(nil).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("getting the caller's account: %w", err)
	}
	c.self = aws.ToString(out.Account)
	return c.self, nil
}

// sts is an STS client with creds (nil: the base credentials), in the SDK's region or
// else the config's first.
func (c *Clients) sts(creds aws.CredentialsProvider) *sts.Client {
	cfg := c.base.Copy()
	if creds != nil {
		cfg.Credentials = creds
	}
	if cfg.Region == "" {
		cfg.Region = c.stsRegion
	}
	return sts.NewFromConfig(cfg, func(o *sts.Options) {
		o.APIOptions = append(o.APIOptions, c.APIOptions...)
	})
}

// ForeignAccountError: the credentials snapfleet would act with in Account belong to
// another account (Actual) — an account listed without a role that is not the caller's,
// or a role whose identity is in another account.
type ForeignAccountError struct {
	Account, Actual string
	// Role is the role assumed for Account; "" when it has none.
	Role string
}

func (e *ForeignAccountError) Error() string {
	if e.Role == "" {
		return fmt.Sprintf("accounts: %s has no role_arn, so it must be the caller's own account, but the credentials are account %s's: give it a role_arn, or use %s's credentials",
			e.Account, e.Actual, e.Account)
	}
	return fmt.Sprintf("accounts: %s: role %s gives credentials of account %s, not %s", e.Account, e.Role, e.Actual, e.Account)
}

// CheckAccounts verifies that every listed account without a role is the caller's own
// (one GetCallerIdentity, and only if there is such an account): a *ForeignAccountError
// names the first that is not.
func (c *Clients) CheckAccounts(ctx context.Context) error {
	ids := make([]string, 0, len(c.accounts))
	for id, a := range c.accounts {
		if a.RoleARN == "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := c.Verify(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// Verify checks that the credentials snapfleet acts with in account — the base ones
// without a role, else the assumed role's — are account's own (STS GetCallerIdentity
// through them). The answer is asked once per account and cached; a failure to ask is not
// cached. A mismatch is a *ForeignAccountError.
func (c *Clients) Verify(ctx context.Context, account string) error {
	c.mu.Lock()
	v, ok := c.verdicts[account]
	if !ok {
		v = &verdict{}
		c.verdicts[account] = v
	}
	c.mu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.done {
		return v.err
	}
	role, _ := c.role(account)
	actual, err := c.identity(ctx, account, role)
	if err != nil {
		return fmt.Errorf("verifying the credentials of account %s: %w", account, err)
	}
	v.done = true
	if actual != account {
		v.err = &ForeignAccountError{Account: account, Actual: actual, Role: role}
	}
	return v.err
}

// identity is the account the credentials of account belong to: the caller's without a
// role, else the role's by GetCallerIdentity through its credentials.
func (c *Clients) identity(ctx context.Context, account, role string) (string, error) {
	if role == "" {
		return c.Self(ctx)
	}
	c.mu.Lock()
	creds := c.credsLocked(account)
	c.mu.Unlock()
	out, err := c.sts(creds).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("getting the identity of role %s: %w", role, err)
	}
	return aws.ToString(out.Account), nil
}

// Known reports whether snapfleet may act in account: the caller's own, one in the config
// or one of the configured organization's (discovered on first use) — and, for a listed
// or discovered account, whose credentials proved to be its own (Verify: a
// *ForeignAccountError when they are another's).
func (c *Clients) Known(ctx context.Context, account string) (bool, error) {
	listed := false
	if _, ok := c.accounts[account]; ok {
		listed = true
	} else if c.org != nil {
		ids, err := c.Accounts(ctx)
		if err != nil {
			return false, err
		}
		_, listed = slices.BinarySearch(ids, account)
	}
	if listed {
		if err := c.Verify(ctx, account); err != nil {
			return false, err
		}
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
	cfg := c.configLocked(account, region)
	cl := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, c.APIOptions...)
		o.APIOptions = append(o.APIOptions, clockMiddleware(&c.clock, account, region))
		if c.Limiter != nil {
			o.APIOptions = append(o.APIOptions, limitMiddleware(c.Limiter, account, region))
		}
	})
	c.ec2[key] = cl
	return cl
}

// role is the role to assume in account and its external id: the config's, or the
// organization's role name in any other account.
func (c *Clients) role(account string) (arn, externalID string) {
	if a, ok := c.accounts[account]; ok {
		return a.RoleARN, a.ExternalID
	}
	if c.org != nil {
		return c.org.RoleARN(account), c.org.ExternalID
	}
	return "", ""
}

// credsLocked returns the account's assumed-role credentials, cached: one AssumeRole per
// account per credential lifetime, refreshed CredentialWindow before they expire.
func (c *Clients) credsLocked(account string) aws.CredentialsProvider {
	arn, externalID := c.role(account)
	if arn == "" {
		return nil
	}
	if p, ok := c.creds[account]; ok {
		return p
	}
	stsClient := c.sts(nil)
	window := c.CredentialWindow
	if window == 0 {
		window = DefaultCredentialWindow
	}
	p := aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, arn, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = SessionName
		if externalID != "" {
			o.ExternalID = aws.String(externalID)
		}
	}), func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = window
		o.ExpiryWindowJitterFrac = 0.2
	})
	c.creds[account] = p
	return p
}

// limitMiddleware waits on the limiter before every attempt of an EC2 call of account and
// region (after the SDK's retry step, so each resend takes a token as it does at AWS), and
// tells the limiter when AWS throttled the attempt anyway.
func limitMiddleware(l *limit.Limiter, account, region string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		if _, ok := s.Finalize.Get("Retry"); !ok {
			// A presigning stack (CopySnapshot's PresignedUrl) has no retries and sends
			// nothing: no token to take.
			return nil
		}
		return s.Finalize.Insert(middleware.FinalizeMiddlewareFunc("snapfleetRateLimit",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				op := awsmiddleware.GetOperationName(ctx)
				reserved, err := l.Take(ctx, account, region, op)
				if err != nil {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, err
				}
				out, md, err := next.HandleFinalize(ctx, in)
				if class, _ := Classify(err); class == Throttled {
					l.Throttled(account, region, op, reserved)
				}
				return out, md, err
			}), "Retry", middleware.After)
	}
}

// configLocked is the SDK config of account and region: the base config with the
// account's credentials (its role's, when it has one). c.mu is held.
func (c *Clients) configLocked(account, region string) aws.Config {
	cfg := c.base.Copy()
	cfg.Region = region
	if p := c.credsLocked(account); p != nil {
		cfg.Credentials = p
	}
	return cfg
}
