package config

import (
	"errors"
	"fmt"
	"time"
)

// The range a replacement clock (--now, SNAPFLEET_NOW) must fall in: from EC2's first
// year to well past any snapshot's lifetime. A time outside it is a typo or a hostile
// input, never a replay.
var (
	MinClock = time.Date(2006, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxClock = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ParseClock parses a replacement clock: an RFC 3339 time from MinClock (included) to
// MaxClock (excluded). An empty value is an error, not the real clock: leave the setting
// out for that.
func ParseClock(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty: give an RFC 3339 time (e.g. 2026-11-22T01:00:00Z), or leave it out for the real clock")
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("not an RFC 3339 time (e.g. 2026-11-22T01:00:00Z)")
	}
	if t.Before(MinClock) || !t.Before(MaxClock) {
		return time.Time{}, fmt.Errorf("outside %s … %s", MinClock.Format(time.RFC3339), MaxClock.Format(time.RFC3339))
	}
	return t, nil
}
