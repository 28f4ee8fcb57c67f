package retention

import (
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
)

// FromPolicy returns the keep rules of a configured policy, for a live volume; call
// Orphaned on them for a volume that is gone.
func FromPolicy(p config.Policy) Rules {
	r := p.Retain
	return Rules{
		MaxAge:        time.Duration(r.MaxAge),
		KeepLast:      r.KeepLast,
		KeepHourly:    r.KeepHourly,
		KeepDaily:     r.KeepDaily,
		KeepWeekly:    r.KeepWeekly,
		KeepMonthly:   r.KeepMonthly,
		KeepYearly:    r.KeepYearly,
		MinKeep:       r.Floor(),
		OrphanMinKeep: p.OrphanFloor(),
	}
}
