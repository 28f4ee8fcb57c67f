package cloud

import (
	"github.com/aws/aws-sdk-go-v2/service/ebs"
)

// EBS returns a client of the EBS direct API for account and region (report
// --measure-changes), with the account's credentials as EC2 has them. It is not cached:
// one report asks for one per account-region.
func (c *Clients) EBS(account, region string) *ebs.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.configLocked(account, region)
	return ebs.NewFromConfig(cfg, func(o *ebs.Options) { o.APIOptions = append(o.APIOptions, c.APIOptions...) })
}
