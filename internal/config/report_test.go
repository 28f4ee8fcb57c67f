package config

import (
	"strings"
	"testing"
	"time"
)

// TestReportConfig: report: is read strictly — grace (global and per policy), prices,
// cost_tags — with the defaults AWS's us-east-1 prices and a quarter of every; every bad
// value is a one-line error naming its key.
func TestReportConfig(t *testing.T) {
	t.Parallel()
	const base = "policies:\n  - name: daily\n    every: 24h\n    retain: {max_age: 7d}\n  - name: hourly\n    every: 4h\n    retain: {max_age: 7d}\n"
	c, err := Parse(strings.NewReader(base))
	if err != nil {
		t.Fatal(err)
	}
	daily, _ := c.Policy("daily")
	hourly, _ := c.Policy("hourly")
	if got := c.Report.GraceOf(daily); got != 6*time.Hour {
		t.Errorf("default grace of daily = %s, want 6h (a quarter of every)", got)
	}
	if got := c.Report.GraceOf(hourly); got != time.Hour {
		t.Errorf("default grace of hourly = %s, want 1h", got)
	}
	if c.Report.StandardPrice() != 0.05 || c.Report.ArchivePrice() != 0.0125 {
		t.Errorf("default prices = %v, %v", c.Report.StandardPrice(), c.Report.ArchivePrice())
	}

	c, err = Parse(strings.NewReader(base + "report:\n  grace: 30m\n  policy_grace: {daily: 2h}\n  prices: {standard: 0.06, archive: 0}\n  cost_tags: [Team, Env]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Report.GraceOf(daily); got != 2*time.Hour {
		t.Errorf("grace of daily = %s, want policy_grace's 2h", got)
	}
	if got := c.Report.GraceOf(hourly); got != 30*time.Minute {
		t.Errorf("grace of hourly = %s, want grace's 30m", got)
	}
	if c.Report.StandardPrice() != 0.06 || c.Report.ArchivePrice() != 0 {
		t.Errorf("prices = %v, %v; want 0.06, 0", c.Report.StandardPrice(), c.Report.ArchivePrice())
	}
	if strings.Join(c.Report.CostTags, ",") != "Team,Env" {
		t.Errorf("cost_tags = %v", c.Report.CostTags)
	}

	for _, tt := range []struct{ doc, want string }{
		{"report:\n  grace: soon\n", "report.grace"},
		{"report:\n  graze: 1h\n", "graze"},
		{"report:\n  policy_grace: {weekly: 1h}\n", "report.policy_grace.weekly"},
		{"report:\n  prices: {standard: -1}\n", "report.prices.standard"},
		{"report:\n  prices: {archive: .nan}\n", "report.prices.archive"},
		{"report:\n  prices: {glacier: 1}\n", "glacier"},
		{"report:\n  cost_tags: [Team, Team]\n", "report.cost_tags[1]"},
		{"report:\n  cost_tags: [\"\"]\n", "report.cost_tags[0]"},
	} {
		_, err := Parse(strings.NewReader(base + tt.doc))
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line naming %s", tt.doc, err, tt.want)
		}
	}
}
