package config

import (
	"fmt"
	"regexp"
)

// Events configures event-driven snapshots (EC2 state-change notifications, the
// snapfleet.BackupNow event) and the outcome events snapfleet publishes.
type Events struct {
	// OptInTag: an instance whose stopping/stopped notification makes snapshots carries
	// every one of these tags. Empty means DefaultOptInTag.
	OptInTag map[string]string `yaml:"opt_in_tag"`
	// Policy names the policy event snapshots belong to (their retention and tags);
	// empty means the first policy.
	Policy string `yaml:"policy"`
	// Bus, when set, is the EventBridge bus (name or ARN) that run summaries and job
	// failures are published to.
	Bus string `yaml:"bus"`
}

// DefaultOptInTag is the tag an instance carries to be snapshotted when it stops.
func DefaultOptInTag() map[string]string { return map[string]string{"AutoSnapshot": "true"} }

// OptIn is the effective events.opt_in_tag.
func (e Events) OptIn() map[string]string {
	if len(e.OptInTag) == 0 {
		return DefaultOptInTag()
	}
	return e.OptInTag
}

// EventPolicy is the policy event snapshots belong to: events.policy, or the first one.
func (c *Config) EventPolicy() Policy {
	if p, ok := c.Policy(c.Events.Policy); ok && c.Events.Policy != "" {
		return p
	}
	return c.Policies[0]
}

var busRE = regexp.MustCompile(`^([A-Za-z0-9._/-]{1,256}|arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9._/-]{1,256})$`)

func (c *Config) validateEvents() error {
	if err := checkTags("events.opt_in_tag", c.Events.OptInTag, false); err != nil {
		return err
	}
	if n := c.Events.Policy; n != "" {
		if _, ok := c.Policy(n); !ok {
			return fmt.Errorf("events.policy: %q is not a policy of this config", n)
		}
	}
	if b := c.Events.Bus; b != "" && !busRE.MatchString(b) {
		return fmt.Errorf("events.bus: %q is not an EventBridge bus name or ARN", b)
	}
	return nil
}
