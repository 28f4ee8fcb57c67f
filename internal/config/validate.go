package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
)

var (
	ouRE       = regexp.MustCompile(`^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$`)
	roleNameRE = regexp.MustCompile(`^([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$`)
	roleRE     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::([0-9]{12}):role/[\w+=,.@/-]{1,512}$`)
)

var instanceStates = map[string]bool{
	"pending": true, "running": true, "shutting-down": true,
	"terminated": true, "stopping": true, "stopped": true,
}

// Validate checks every key and names the first bad one.
func (c *Config) Validate() error {
	for _, check := range []func() error{c.validateRegions, c.validateAccounts, c.validateOrganization,
		c.validateLimits, c.validateEvents, c.validatePolicies, c.validateReport} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateRegions() error {
	seen := map[string]bool{}
	for i, r := range c.Regions {
		if err := checkName(seen, job.ValidRegion, fmt.Sprintf("regions[%d]", i), r, "%q is not a region name", "%q is listed twice"); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateAccounts() error {
	ids := map[string]bool{}
	for i, a := range c.Accounts {
		key := fmt.Sprintf("accounts[%d]", i)
		if err := checkName(ids, job.ValidAccount, key+".id", a.ID, "%q is not a 12-digit account id (quote it in YAML)", "%q is listed twice"); err != nil {
			return err
		}
		if a.RoleARN != "" {
			m := roleRE.FindStringSubmatch(a.RoleARN)
			if m == nil {
				return fmt.Errorf("%s.role_arn: %q is not an IAM role ARN", key, a.RoleARN)
			}
			if m[1] != a.ID {
				return fmt.Errorf("%s.role_arn: %q is in account %s, not %s", key, a.RoleARN, m[1], a.ID)
			}
		}
		if a.ExternalID != "" && a.RoleARN == "" {
			return fmt.Errorf("%s.external_id: set without role_arn", key)
		}
	}
	return nil
}

func (c *Config) validateOrganization() error {
	o := c.Organization
	if o == nil {
		return nil
	}
	if len(c.Accounts) > 0 {
		return errors.New("accounts: both a list and an organization; choose one")
	}
	if o.RoleName == "" {
		return errors.New("accounts.organization.role_name: required (the role assumed in every member account)")
	}
	if !roleNameRE.MatchString(o.RoleName) {
		return fmt.Errorf("accounts.organization.role_name: %q is not a role name (a path and name, not an ARN)", o.RoleName)
	}
	for i, id := range o.Exclude {
		if !job.ValidAccount(id) {
			return fmt.Errorf("accounts.organization.exclude[%d]: %q is not a 12-digit account id (quote it in YAML)", i, id)
		}
	}
	for i, ou := range o.IncludeOUs {
		if !ouRE.MatchString(ou) {
			return fmt.Errorf("accounts.organization.include_ous[%d]: %q is not an OU id (ou-xxxx-xxxxxxxx) or a root id (r-xxxx)", i, ou)
		}
	}
	return nil
}

// validateLimits checks the token buckets and the circuit breaker's max_delete_fraction.
func (c *Config) validateLimits() error {
	for _, f := range c.Limits.fields() {
		switch b := f.bucket; {
		case b == nil:
		case b.Burst < 1:
			return fmt.Errorf("limits.%s.burst: %d is less than 1", f.key, b.Burst)
		case !(b.PerSecond > 0): // NaN too
			return fmt.Errorf("limits.%s.per_second: %v is not positive", f.key, b.PerSecond)
		}
	}
	if f := c.MaxDeleteFraction; f != nil && !(*f > 0 && *f <= 1) { // NaN too
		return fmt.Errorf("max_delete_fraction: %v is not in (0, 1]", *f)
	}
	return nil
}

// validatePolicies checks each policy, that names are unique and that at most one adopts.
func (c *Config) validatePolicies() error {
	names := map[string]bool{}
	adopter := ""
	for i, p := range c.Policies {
		err := checkName(names, job.ValidPolicyName, fmt.Sprintf("policies[%d].name", i), p.Name, "%q must match [a-z0-9-]+ (at most 64)", "duplicate policy name %q")
		if err != nil {
			return err
		}
		key := fmt.Sprintf("policies[%s]", p.Name)
		if err := p.validate(key); err != nil {
			return err
		}
		if err := c.validateCopies(p, key); err != nil {
			return err
		}
		if p.Adopt != nil {
			if adopter != "" {
				return fmt.Errorf("%s.adopt: policy %s adopts already; at most one policy may adopt legacy snapshots", key, adopter)
			}
			adopter = p.Name
		}
	}
	return nil
}

// validate checks one policy but its name; key is its key path.
func (p Policy) validate(key string) error {
	for j, s := range p.Select.InstanceStates {
		if !instanceStates[s] {
			return fmt.Errorf("%s.select.instance_states[%d]: %q is not an instance state", key, j, s)
		}
	}
	if err := checkTags(key+".select.instance_tags", p.Select.InstanceTags, false); err != nil {
		return err
	}
	if err := checkTags(key+".select.exclude_tags", p.Select.ExcludeTags, false); err != nil {
		return err
	}
	if err := checkTags(key+".tags", p.Tags, true); err != nil {
		return err
	}
	if err := p.validateTagsFromInstance(key); err != nil {
		return err
	}
	switch p.Consistency {
	case "", ConsistencyVolume:
		if p.ExcludeBoot {
			return fmt.Errorf("%s.exclude_boot: only with consistency: instance", key)
		}
	case ConsistencyInstance, ConsistencyApplication:
	default:
		return fmt.Errorf("%s.consistency: %q is not volume, instance or application", key, p.Consistency)
	}
	if err := p.validateHooks(key); err != nil {
		return err
	}
	if p.Every < Duration(time.Minute) {
		return fmt.Errorf("%s.every: %s is shorter than 1m", key, p.Every)
	}
	if err := p.validateRetain(key); err != nil {
		return err
	}
	if p.Adopt != nil {
		if len(p.Adopt.Tags) == 0 {
			return fmt.Errorf("%s.adopt.tags: empty; name the tags that mark the legacy snapshots to adopt (e.g. {AutoBackup: \"true\"})", key)
		}
		if err := checkTags(key+".adopt.tags", p.Adopt.Tags, true); err != nil {
			return err
		}
	}
	return nil
}

// validateRetain checks retain (at least one keep rule) and orphans.min_keep.
func (p Policy) validateRetain(key string) error {
	r := p.Retain
	if r.MaxAge < 0 {
		return fmt.Errorf("%s.retain.max_age: negative", key)
	}
	counts := []struct {
		name string
		n    int
	}{{"keep_last", r.KeepLast}, {"keep_hourly", r.KeepHourly}, {"keep_daily", r.KeepDaily},
		{"keep_weekly", r.KeepWeekly}, {"keep_monthly", r.KeepMonthly}, {"keep_yearly", r.KeepYearly}}
	anyRule := r.MaxAge > 0
	for _, c := range counts {
		if c.n < 0 {
			return fmt.Errorf("%s.retain.%s: %d is negative", key, c.name, c.n)
		}
		anyRule = anyRule || c.n > 0
	}
	if r.MinKeep != nil && *r.MinKeep < 0 {
		return fmt.Errorf("%s.retain.min_keep: %d is negative", key, *r.MinKeep)
	}
	if !anyRule {
		return fmt.Errorf("%s.retain: no keep rule (set max_age, keep_last or keep_hourly/daily/weekly/monthly/yearly); refusing a policy that would expire everything", key)
	}
	if o := p.Orphans.MinKeep; o != nil {
		if *o < 0 {
			return fmt.Errorf("%s.orphans.min_keep: %d is negative", key, *o)
		}
		if *o > r.LiveFloor() {
			live := fmt.Sprintf("retain.min_keep %d", r.Floor())
			if r.Floor() == 0 {
				live = "the live floor 1 (retain.min_keep 0 still keeps the newest)"
			}
			return fmt.Errorf("%s.orphans.min_keep: %d is more than %s; it can only lower the floor for gone volumes", key, *o, live)
		}
	}
	return nil
}

// checkName checks the name v at key: it matches re, else the error is bad; it is not in
// seen, else the error is dup. It adds v to seen. bad and dup format v with %q.
func checkName(seen map[string]bool, valid func(string) bool, key, v, bad, dup string) error {
	if !valid(v) {
		return fmt.Errorf("%s: "+bad, key, v)
	}
	if seen[v] {
		return fmt.Errorf("%s: "+dup, key, v)
	}
	seen[v] = true
	return nil
}

func checkTags(key string, tags map[string]string, writable bool) error {
	for k, v := range tags {
		switch {
		case k == "" || len(k) > 128:
			return fmt.Errorf("%s: tag key %q must be 1 to 128 characters", key, k)
		case len(v) > 256:
			return fmt.Errorf("%s[%q]: tag value longer than 256 characters", key, k)
		case writable && strings.HasPrefix(strings.ToLower(k), "aws:"):
			return fmt.Errorf("%s[%q]: the aws: prefix is reserved by AWS", key, k)
		case writable && strings.HasPrefix(k, ReservedTagPrefix):
			return fmt.Errorf("%s[%q]: the %s prefix is written by snapfleet itself", key, k, ReservedTagPrefix)
		}
	}
	return nil
}
