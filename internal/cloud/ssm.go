package cloud

import (
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// SSM returns the SSM client for account and region (Run Command, for consistency:
// application), with the account's role as EC2's, and paced by the same Limiter: SSM's
// SendCommand and GetCommandInvocation have their own buckets per account-region.
func (c *Clients) SSM(account, region string) *ssm.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := account + "/" + region
	if cl, ok := c.ssm[key]; ok {
		return cl
	}
	if c.ssm == nil {
		c.ssm = map[string]*ssm.Client{}
	}
	cfg := c.configLocked(account, region)
	cl := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		o.APIOptions = append(o.APIOptions, c.APIOptions...)
		if c.Limiter != nil {
			o.APIOptions = append(o.APIOptions, limitMiddleware(c.Limiter, account, region))
		}
	})
	c.ssm[key] = cl
	return cl
}
