package cloud

import (
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// KMS returns a KMS client for account and region, with the account's role like EC2's: a
// cross-account copy asks it who manages a snapshot's key.
func (c *Clients) KMS(account, region string) *kms.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.configLocked(account, region)
	return kms.NewFromConfig(cfg, func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, c.APIOptions...)
	})
}
