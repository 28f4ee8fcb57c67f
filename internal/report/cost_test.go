package report

import (
	"math"
	"testing"
	"time"
)

// TestCostArithmetic: GiB-months at the standard or archive price by tier, summed per
// account, region, policy and cost tag (untagged under NoTag); error snapshots are not
// billed; configured prices replace the defaults.
func TestCostArithmetic(t *testing.T) {
	t.Parallel()
	gib := int64(1 << 30)
	type snap struct {
		policy, team string
		gib          int64
		archived     bool
		state        string
	}
	for _, tt := range []struct {
		name         string
		extra        string
		snaps        []snap
		total        float64
		daily, ops   float64
		noTeam, arcG float64
	}{
		{name: "standard at the default price", snaps: []snap{{"daily", "ops", 100, false, "completed"}},
			total: 5, daily: 5, ops: 5},
		{name: "archive at the default price", snaps: []snap{{"daily", "ops", 100, true, "completed"}},
			total: 1.25, daily: 1.25, ops: 1.25, arcG: 100},
		{name: "tiers, policies and an untagged snapshot", snaps: []snap{
			{"daily", "ops", 10, false, "completed"}, {"daily", "", 30, true, "completed"}, {"db", "ops", 4, false, "pending"}},
			total: 0.5 + 0.375 + 0.2, daily: 0.875, ops: 0.7, noTeam: 0.375, arcG: 30},
		{name: "error snapshots are not billed", snaps: []snap{{"daily", "ops", 10, false, "error"}}},
		{name: "configured prices", extra: "  prices: {standard: 0.1, archive: 0.01}\n",
			snaps: []snap{{"daily", "ops", 10, false, "completed"}, {"daily", "ops", 100, true, "completed"}},
			total: 2, daily: 2, ops: 2, arcG: 100},
	} {
		cfg := testConfig(t, "report:\n  cost_tags: [Team]\n"+tt.extra)
		sc := NewScope(cfg, "111111111111", "us-east-1")
		for i, s := range tt.snaps {
			tags := map[string]string{}
			if s.team != "" {
				tags["Team"] = s.team
			}
			sc.Add(Snapshot{ID: "snap-" + string(rune('a'+i)), Policy: s.policy, Volume: "vol-a", Start: now.Add(-time.Hour),
				State: s.state, Bytes: s.gib * gib, Archived: s.archived, CostTags: tags})
		}
		cr := Compute([]*Scope{sc}, cfg, now).Cost
		find := func(rows []Cost, key string) Cost {
			for _, c := range rows {
				if c.Key == key {
					return c
				}
			}
			return Cost{}
		}
		near := func(what string, got, want float64) {
			if math.Abs(got-want) > 1e-9 {
				t.Errorf("%s: %s = %v, want %v", tt.name, what, got, want)
			}
		}
		near("total", cr.Total.USD, tt.total)
		near("daily", find(cr.ByPolicy, "daily").USD, tt.daily)
		near("Team=ops", find(cr.ByTag["Team"], "ops").USD, tt.ops)
		near("Team=(none)", find(cr.ByTag["Team"], NoTag).USD, tt.noTeam)
		near("archive GB", cr.Total.ArchiveGB, tt.arcG)
		near("account", find(cr.ByAccount, "111111111111").USD, tt.total)
		near("region", find(cr.ByRegion, "us-east-1").USD, tt.total)
		if cr.Estimate != UpperBound {
			t.Errorf("%s: the estimate is not labelled an upper bound: %q", tt.name, cr.Estimate)
		}
	}
}
