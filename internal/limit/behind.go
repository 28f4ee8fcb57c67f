package limit

import "time"

// Behind is how long a token of the bucket of account, region and action, reserved now,
// would take to come due: 0 while the bucket holds one, more as tokens are reserved ahead
// of it (Admit). It takes nothing. 0 for an action that is not limited.
func (l *Limiter) Behind(account, region, action string) time.Duration {
	if l == nil {
		return 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.getLocked(key{account, region, action}, now)
	if b == nil || b.cur <= 0 {
		return 0
	}
	missing := 1 - b.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / b.cur * float64(time.Second))
}
