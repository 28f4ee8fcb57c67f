package config

import (
	"fmt"
	"regexp"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
)

// Copy is one disaster-recovery destination of a policy: every completed snapshot of the
// policy is copied to Region (in Account, when set: another configured account), and the
// copies there are pruned by their own Retain rules, grouped by source volume.
type Copy struct {
	Region string `yaml:"region"`
	// Account, when set, is another configured account (a vault); empty means the
	// source snapshot's own account. Without an accounts list (the caller's own account)
	// the planner checks it against the accounts it plans.
	Account string `yaml:"account"`
	// KMSKey, when set, is the ARN of a KMS key in Region that the copy is encrypted with.
	KMSKey string `yaml:"kms_key"`
	// Retain are the copies' keep rules, with the same floor as at the source.
	Retain Retain `yaml:"retain"`
}

// Archive moves the snapshots retention keeps to the archive tier once they are older
// than After and retention will still keep them 90 days later (AWS's minimum billed
// archive time).
type Archive struct {
	After Duration `yaml:"after"`
}

// ArchiveMinDays is AWS's minimum billed time in the archive tier: a snapshot archived and
// deleted sooner costs as if it stayed this long.
const ArchiveMinDays = 90

// DestAccount is the account of copy c of a snapshot owned by source.
func (c Copy) DestAccount(source string) string {
	if c.Account == "" {
		return source
	}
	return c.Account
}

// CopyTo returns the destination of p in account and region for a snapshot in srcAccount
// and srcRegion; false when p does not copy such a snapshot there.
func (p Policy) CopyTo(srcAccount, srcRegion, account, region string) (Copy, bool) {
	for _, c := range p.Copy {
		if c.Region == region && c.DestAccount(srcAccount) == account && !(c.Region == srcRegion && account == srcAccount) {
			return c, true
		}
	}
	return Copy{}, false
}

var kmsKeyRE = regexp.MustCompile(`^arn:aws[a-z-]*:kms:([a-z]{2}(?:-[a-z]+)+-[0-9]+):([0-9]{12}):(key/[0-9a-zA-Z-]+|alias/[\w/+=,.@-]+)$`)

// validateCopies checks copy: and archive: of a policy; key is its key path.
func (c *Config) validateCopies(p Policy, key string) error {
	type dest struct{ account, region string }
	seen := map[dest]bool{}
	for i, cp := range p.Copy {
		k := fmt.Sprintf("%s.copy[%d]", key, i)
		if !job.ValidRegion(cp.Region) {
			return fmt.Errorf("%s.region: %q is not a region name", k, cp.Region)
		}
		if cp.Account != "" {
			if !job.ValidAccount(cp.Account) {
				return fmt.Errorf("%s.account: %q is not a 12-digit account id (quote it in YAML)", k, cp.Account)
			}
			if o := c.Organization; o != nil {
				if o.Excludes(cp.Account) {
					return fmt.Errorf("%s.account: %s is excluded from the organization's accounts", k, cp.Account)
				}
			} else if _, ok := c.Account(cp.Account); !ok && len(c.Accounts) > 0 {
				return fmt.Errorf("%s.account: %s is not in accounts (a destination account must be configured, with its role)", k, cp.Account)
			}
		}
		if d := (dest{cp.Account, cp.Region}); seen[d] {
			return fmt.Errorf("%s: destination %s is listed twice", k, cp.Region)
		}
		seen[dest{cp.Account, cp.Region}] = true
		if cp.KMSKey != "" {
			m := kmsKeyRE.FindStringSubmatch(cp.KMSKey)
			if m == nil {
				return fmt.Errorf("%s.kms_key: %q is not a KMS key ARN", k, cp.KMSKey)
			}
			if m[1] != cp.Region {
				return fmt.Errorf("%s.kms_key: %q is in region %s, not %s", k, cp.KMSKey, m[1], cp.Region)
			}
		}
		if err := (Policy{Retain: cp.Retain}).validateRetain(k); err != nil {
			return err
		}
	}
	if a := p.Archive; a != nil && time.Duration(a.After) < 24*time.Hour {
		return fmt.Errorf("%s.archive.after: %s is shorter than 1d", key, a.After)
	}
	return nil
}
