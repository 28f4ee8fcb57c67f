package report

import (
	"maps"
	"slices"

	"github.com/snapfleet/snapfleet/internal/config"
)

// UpperBound says what the sizes AWS reports make of the cost estimate. (AWS bills an
// archived snapshot in full, so its part of the figure is the bill; a standard one only
// for the blocks no older snapshot of the volume holds.)
const UpperBound = "estimate, upper bound: each snapshot at the full size AWS reports (FullSnapshotSizeInBytes, else the volume's size); the standard tier bills only blocks that changed since the volume's previous snapshot, the archive tier bills full snapshots"

// Cost is the storage of a set of snapshots and its estimated monthly cost.
type Cost struct {
	Key        string  `json:"key"`
	Snapshots  int     `json:"snapshots"`
	StandardGB float64 `json:"standard_gb"`
	ArchiveGB  float64 `json:"archive_gb"`
	// USD is the estimated monthly cost: StandardGB and ArchiveGB at their prices.
	USD float64 `json:"usd"`
}

// CostReport is the estimated monthly storage cost, broken down.
type CostReport struct {
	// Estimate says what kind of figure this is (UpperBound).
	Estimate string `json:"estimate"`
	// Prices are USD per GB-month.
	StandardPrice float64 `json:"standard_price_gb_month"`
	ArchivePrice  float64 `json:"archive_price_gb_month"`
	Total         Cost    `json:"total"`
	ByAccount     []Cost  `json:"by_account"`
	ByRegion      []Cost  `json:"by_region"`
	ByPolicy      []Cost  `json:"by_policy"`
	// ByTag breaks the cost down by the values of each configured cost tag; snapshots
	// without the tag are under NoTag.
	ByTag map[string][]Cost `json:"by_tag"`
	// Measured is what --measure-changes found; nil without it.
	Measured *Measured `json:"measured"`
}

// price sets c's USD from its sizes.
func (c *Cost) price(standard, archive float64) {
	c.USD = c.StandardGB*standard + c.ArchiveGB*archive
}

func (c *Cost) add(o *Cost) {
	c.Snapshots += o.Snapshots
	c.StandardGB += o.StandardGB
	c.ArchiveGB += o.ArchiveGB
}

// costReport sums the scopes' storage by account, region, policy and cost tag and
// prices it.
func costReport(scopes []*Scope, cfg *config.Config) CostReport {
	std, arc := cfg.Report.StandardPrice(), cfg.Report.ArchivePrice()
	cr := CostReport{Estimate: UpperBound, StandardPrice: std, ArchivePrice: arc, Total: Cost{Key: "total"}, ByTag: map[string][]Cost{}}
	account, region, policy := map[string]*Cost{}, map[string]*Cost{}, map[string]*Cost{}
	tags := map[string]map[string]*Cost{}
	for _, k := range cfg.Report.CostTags {
		tags[k] = map[string]*Cost{}
	}
	for _, sc := range scopes {
		for _, c := range sc.costPolicy {
			cr.Total.add(c)
			costOf(account, sc.Account).add(c)
			costOf(region, sc.Region).add(c)
			costOf(policy, c.Key).add(c)
		}
		for k, byValue := range sc.costTags {
			for _, c := range byValue {
				costOf(tags[k], c.Key).add(c)
			}
		}
	}
	cr.Total.price(std, arc)
	list := func(m map[string]*Cost) []Cost {
		out := make([]Cost, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			c := *m[k]
			c.price(std, arc)
			out = append(out, c)
		}
		return out
	}
	cr.ByAccount, cr.ByRegion, cr.ByPolicy = list(account), list(region), list(policy)
	for k, m := range tags {
		cr.ByTag[k] = list(m)
	}
	return cr
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
