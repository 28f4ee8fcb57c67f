package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Report configures `snapfleet report` and the coverage gauges: how late a volume may be
// before it counts as late, the storage prices of the cost estimate, and the tags the
// cost is broken down by.
type Report struct {
	// Grace is how long after its policy's every a volume's newest recovery point may be
	// and still count as ok; nil means a quarter of every (DefaultGraceFraction).
	Grace *Duration `yaml:"grace"`
	// PolicyGrace overrides Grace for the policies it names.
	PolicyGrace map[string]Duration `yaml:"policy_grace"`
	// Prices per GB-month of snapshot storage; nil fields take DefaultPrices.
	Prices Prices `yaml:"prices"`
	// CostTags are snapshot tag keys (e.g. Team) the cost estimate is broken down by.
	CostTags []string `yaml:"cost_tags"`
}

// Prices are the per-GB-month prices of EBS snapshot storage, in USD.
type Prices struct {
	Standard *float64 `yaml:"standard"`
	Archive  *float64 `yaml:"archive"`
}

// Default prices: AWS's published EBS snapshot storage prices in us-east-1, per GB-month.
const (
	DefaultStandardPrice = 0.05
	DefaultArchivePrice  = 0.0125
)

// DefaultGraceFraction is the grace of a policy without one configured: this fraction of
// its every.
const DefaultGraceFraction = 0.25

// StandardPrice is the effective report.prices.standard.
func (r Report) StandardPrice() float64 { return priceOr(r.Prices.Standard, DefaultStandardPrice) }

// ArchivePrice is the effective report.prices.archive.
func (r Report) ArchivePrice() float64 { return priceOr(r.Prices.Archive, DefaultArchivePrice) }

func priceOr(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

// GraceOf is the effective grace of policy p: report.policy_grace[p], else report.grace,
// else a quarter of p's every.
func (r Report) GraceOf(p Policy) time.Duration {
	if g, ok := r.PolicyGrace[p.Name]; ok {
		return time.Duration(g)
	}
	if r.Grace != nil {
		return time.Duration(*r.Grace)
	}
	return time.Duration(float64(p.Every) * DefaultGraceFraction)
}

func (c *Config) validateReport() error {
	r := c.Report
	for _, name := range slices.Sorted(maps.Keys(r.PolicyGrace)) {
		if _, ok := c.Policy(name); !ok {
			return fmt.Errorf("report.policy_grace.%s: not a policy of this config", name)
		}
	}
	for _, p := range []struct {
		key string
		v   *float64
	}{{"report.prices.standard", r.Prices.Standard}, {"report.prices.archive", r.Prices.Archive}} {
		if p.v != nil && (*p.v < 0 || math.IsNaN(*p.v) || math.IsInf(*p.v, 0)) {
			return fmt.Errorf("%s: %v is not a price (USD per GB-month, 0 or more)", p.key, *p.v)
		}
	}
	seen := map[string]bool{}
	for i, k := range r.CostTags {
		key := fmt.Sprintf("report.cost_tags[%d]", i)
		switch {
		case k == "" || len(k) > 128:
			return fmt.Errorf("%s: %q is not a tag key (1 to 128 characters)", key, k)
		case seen[k]:
			return fmt.Errorf("%s: %q is listed twice", key, k)
		}
		seen[k] = true
	}
	return nil
}
