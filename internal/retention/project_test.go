package retention

import (
	"testing"
	"time"
)

// TestProjectArchive: a snapshot is worth archiving only when retention keeps it now and
// 90 days later, the policy making its daily snapshots meanwhile; archiving one that
// retention deletes sooner would cost more (AWS bills 90 days of archive), and is refused.
func TestProjectArchive(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	every := day
	start := now.Truncate(day)
	// daily snapshots for the last 400 days, at 01:00 UTC
	var snaps []Snapshot
	for i := range 400 {
		at := start.Add(-time.Duration(i)*day + time.Hour)
		if at.After(now) {
			continue
		}
		snaps = append(snaps, Snapshot{ID: at.Format("2006-01-02"), Start: at})
	}
	tests := []struct {
		name       string
		rules      Rules
		id         string
		now, later bool
	}{
		{"monthly kept a year: archived", Rules{KeepDaily: 7, KeepMonthly: 12, MinKeep: 1}, "2026-07-31", true, true},
		{"monthly near the end of keep_monthly: deleted within 90 days, costs more", Rules{KeepDaily: 7, KeepMonthly: 6, MinKeep: 1}, "2026-06-30", true, false},
		{"max_age 120d, 100 days old: deleted in 20 days, costs more", Rules{MaxAge: 120 * day, MinKeep: 1}, "2026-08-14", true, false},
		{"max_age 400d, 100 days old: archived", Rules{MaxAge: 400 * day, MinKeep: 1}, "2026-08-14", true, true},
		{"yearly kept 3 years: archived", Rules{KeepDaily: 7, KeepYearly: 3, MinKeep: 1}, "2025-12-31", true, true},
		{"daily within keep_daily 30: gone in 30 days", Rules{KeepDaily: 30, MinKeep: 1}, "2026-11-10", true, false},
		{"expired now", Rules{KeepDaily: 7, MinKeep: 1}, "2026-10-01", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := Project(snaps, tt.rules, now, start, every, true, 90*day)[tt.id]
			if p.Now != tt.now || p.Later != tt.later {
				t.Errorf("%s: kept now %v, in 90 days %v; want %v, %v", tt.id, p.Now, p.Later, tt.now, tt.later)
			}
		})
	}
	// Without the policy's future snapshots (a gone volume), keep_daily 30 keeps the
	// same snapshot 90 days on: the projection depends on the schedule.
	if p := Project(snaps, Rules{KeepDaily: 30, MinKeep: 1}, now, start, every, false, 90*day)["2026-11-10"]; !p.Later {
		t.Errorf("orphan: %+v, want kept in 90 days (no new snapshots push it out)", p)
	}
}
