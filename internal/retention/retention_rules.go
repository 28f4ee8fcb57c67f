package retention

import (
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
)

// FromPolicy returns the keep rules of a configured policy.
func FromPolicy(p config.Policy) Rules {
	return Rules{
		MaxAge:   time.Duration(p.Retain.MaxAge),
		KeepLast: p.Retain.KeepLast,
		MinKeep:  p.Retain.Floor(),
	}
}
