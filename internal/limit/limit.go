// Package limit holds snapfleet's client-side token buckets: one per account, region and
// API action, as EC2 throttles them (DESIGN.md §8: throttling one action does not slow
// another). The buckets adapt: a throttle
// from AWS (other workers and tools share the real bucket) halves that bucket's rate, which
// then recovers additively, never above the configured rate.
//
// Fairness: because every account-region has its own buckets, a job can be admitted
// before it starts (Admit: all the tokens it needs reserved, or none), so that it never
// holds a concurrency slot while one busy account-region refills; and a caller that would
// wait longer than a bound (WithMaxWait) gets a *WaitError at once, without taking a
// token, and can hand its job back to the queue.
package limit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Bucket is one configured bucket: Burst tokens, refilled at PerSecond.
type Bucket struct {
	Burst     int
	PerSecond float64
}

const (
	// minFraction is the floor of an adapted rate, as a fraction of the configured one.
	minFraction = 1.0 / 32
	// recoverPerSecond is the additive recovery per second, as a fraction of the
	// configured rate: from half to full in 10 s without further throttles.
	recoverPerSecond = 0.05
	// cutInterval: throttles closer together than this are one signal (the calls that were
	// in flight when AWS's bucket ran dry) and halve the rate once.
	cutInterval = time.Second
	// reserveDivisor: a bucket holds its configured burst less a twentieth of it (none
	// under 20), which AWS's bucket keeps as a reserve against the network's jitter. At
	// AWS's own rate and burst, a call the limiter released on time but that reached AWS
	// sooner after the one before it than their release times differ found AWS's bucket
	// empty: a throttle, and a halved rate for seconds (in plan100k, 3 s of a 45 s
	// listing). The reserve costs a twentieth of one burst, once.
	reserveDivisor = 20
)

// Limiter holds the buckets. Actions without a configured bucket are not limited. It is
// safe for concurrent use.
type Limiter struct {
	rates map[string]Bucket
	now   func() time.Time

	mu      sync.Mutex
	buckets map[key]*bucket
}

type key struct{ account, region, action string }

type bucket struct {
	lim  *rate.Limiter
	max  float64   // configured rate
	cur  float64   // adapted rate
	last time.Time // of the last adjustment
	cut  time.Time // of the last halving
}

// New returns a Limiter with these buckets by API action (CreateSnapshot,
// DescribeSnapshots, ...).
func New(rates map[string]Bucket) *Limiter {
	return &Limiter{rates: rates, now: time.Now, buckets: map[key]*bucket{}}
}

// WaitError says the bucket would make the caller wait longer than its bound.
type WaitError struct {
	Account, Region, Action string
	// Delay is how long the caller would have waited for a token.
	Delay time.Duration
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("rate limit %s in %s/%s: next token in %s, longer than the wait allowed",
		e.Action, e.Account, e.Region, e.Delay.Round(time.Millisecond))
}

type maxWaitKey struct{}

// WithMaxWait bounds how long Wait may block for a token under ctx; a longer wait is a
// *WaitError at once.
func WithMaxWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, maxWaitKey{}, d)
}

// MaxWait is the bound WithMaxWait set on ctx, if any.
func MaxWait(ctx context.Context) (time.Duration, bool) {
	d, ok := ctx.Value(maxWaitKey{}).(time.Duration)
	return d, ok
}

// get returns the bucket of k, or nil for an action that is not limited; recovery of the
// adapted rate is applied at now. l.mu is held.
func (l *Limiter) getLocked(k key, now time.Time) *bucket {
	b, ok := l.buckets[k]
	if !ok {
		conf, ok := l.rates[k.action]
		if !ok || conf.PerSecond <= 0 || conf.Burst <= 0 {
			return nil
		}
		burst := conf.Burst - conf.Burst/reserveDivisor
		b = &bucket{lim: rate.NewLimiter(rate.Limit(conf.PerSecond), burst),
			max: conf.PerSecond, cur: conf.PerSecond, last: now}
		// A new bucket starts full at now, whatever clock the limiter uses.
		b.lim.SetBurstAt(now, burst)
		l.buckets[k] = b
		return b
	}
	if b.cur < b.max && now.After(b.last) {
		b.cur = min(b.max, b.cur+b.max*recoverPerSecond*now.Sub(b.last).Seconds())
		b.lim.SetLimitAt(now, rate.Limit(b.cur))
	}
	if now.After(b.last) {
		b.last = now
	}
	return b
}

// reserve takes one token of the bucket at now and says how long to wait for it; a wait
// longer than bound (when bounded) takes no token and is a *WaitError.
func (l *Limiter) reserve(k key, now time.Time, bound time.Duration, bounded bool) (*rate.Reservation, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.getLocked(k, now)
	if b == nil {
		return nil, 0, nil
	}
	r := b.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if bounded && d > bound {
		r.CancelAt(now)
		return nil, 0, &WaitError{Account: k.account, Region: k.region, Action: k.action, Delay: d}
	}
	return r, d, nil
}

// Wait blocks until the bucket of account, region and action has a token, ctx is done, or
// — under WithMaxWait — returns a *WaitError at once when the wait would be longer.
func (l *Limiter) Wait(ctx context.Context, account, region, action string) error {
	_, err := l.Take(ctx, account, region, action)
	return err
}

// Take is Wait, and returns when the token was reserved, at the rate of that time: for a
// token Admit reserved, when the job was admitted. Tell Throttled.
func (l *Limiter) Take(ctx context.Context, account, region, action string) (reserved time.Time, err error) {
	if l == nil {
		return time.Time{}, nil
	}
	k := key{account, region, action}
	if p, ok := ctx.Value(prepaidKey{}).(*prepaid); ok {
		if t, ok := p.take(k); ok {
			if !l.cutAfter(k, t.at) {
				return t.at, l.sleep(ctx, k, t.r, t.r.DelayFrom(l.now()))
			}
			// Reserved at the rate before a halving: AWS's bucket ran dry since, and a
			// call on it would be throttled too. Paced again at the rate now.
			t.r.CancelAt(l.now())
		}
	}
	_, reserved, err = l.next(ctx, k)
	return reserved, err
}

// next reserves a token of k now and waits for it, at most MaxWait (else a *WaitError);
// no token (nil) for an action that is not limited.
func (l *Limiter) next(ctx context.Context, k key) (*rate.Reservation, time.Time, error) {
	bound, bounded := MaxWait(ctx)
	now := l.now()
	r, d, err := l.reserve(k, now, bound, bounded)
	if err != nil || r == nil {
		return nil, now, err
	}
	return r, now, l.sleep(ctx, k, r, d)
}

// sleep waits d for the token of r; ctx done first cancels r.
func (l *Limiter) sleep(ctx context.Context, k key, r *rate.Reservation, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return fmt.Errorf("waiting for the %s rate limit of %s/%s: %w", k.action, k.account, k.region, ctx.Err())
	}
}

// Need is N tokens of the bucket of Action (an API action: CreateSnapshot,
// DescribeSnapshots, ...) that a job will use.
type Need struct {
	Action string
	N      int
}

// ByAction sums needs by action, each action's bucket once; needs of no token are left
// out.
func ByAction(needs []Need) []Need {
	var out []Need
	for _, n := range needs {
		if n.N <= 0 {
			continue
		}
		if i := slices.IndexFunc(out, func(o Need) bool { return o.Action == n.Action }); i >= 0 {
			out[i].N += n.N
		} else {
			out = append(out, n)
		}
	}
	return out
}

type prepaidKey struct{}

// prepaid are the tokens Admit reserved for one job; its Waits take them first.
type prepaid struct {
	mu  sync.Mutex
	res map[key][]token
}

// token is a reservation and when it was made.
type token struct {
	r  *rate.Reservation
	at time.Time
}

func (p *prepaid) take(k key) (token, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.res[k]
	if len(ts) == 0 {
		return token{}, false
	}
	p.res[k] = ts[1:]
	return ts[0], true
}

// put gives t back, first to be taken.
func (p *prepaid) put(k key, t token) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.res[k] = append([]token{t}, p.res[k]...)
}

// cutAfter reports whether the bucket of k was halved (Throttled) after t.
func (l *Limiter) cutAfter(k key, t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	return b != nil && b.cut.After(t)
}

// Renew paces again, now, the token Admit reserved under ctx for account, region and
// action when the bucket's rate was halved since: it waits for a token at the rate now
// (at most MaxWait: else a *WaitError) and keeps it for the job's call, which then does
// not wait. A job calls it before a step that must not wait: an application-consistent
// snapshot renews its CreateSnapshots token before it freezes the filesystems, instead of
// making, frozen, a call paced at the rate before a throttle (seconds earlier, when it was
// admitted), which AWS would throttle too.
func (l *Limiter) Renew(ctx context.Context, account, region, action string) error {
	if l == nil {
		return nil
	}
	p, ok := ctx.Value(prepaidKey{}).(*prepaid)
	if !ok {
		return nil
	}
	k := key{account, region, action}
	t, ok := p.take(k)
	if !ok {
		return nil
	}
	if !l.cutAfter(k, t.at) {
		p.put(k, t)
		return nil
	}
	t.r.CancelAt(l.now())
	r, at, err := l.next(ctx, k)
	if err != nil || r == nil {
		return err
	}
	p.put(k, token{r, at})
	return nil
}

// Admit reserves, before a job of account and region starts, the tokens it needs. When
// every one of them is due within bound, it reserves them (ok) and returns ctx carrying
// them — the job's Waits under it take them instead of reserving others —, release, which
// hands back those the job did not use (call it when the job ends, or instead of starting
// it), and wait, how long until the last of them is due: start the job then. Reserved
// tokens are not given to others meanwhile, so a job needing several tokens of a bucket
// is not starved by jobs needing one. Otherwise it takes nothing and wait says how
// long until the tokens would be due: the caller starts another account-region's job
// meanwhile, instead of one that would hold a concurrency slot while this bucket
// refills. Actions that are not limited need no token.
func (l *Limiter) Admit(ctx context.Context, account, region string, needs []Need, bound time.Duration) (_ context.Context, release func(), wait time.Duration, ok bool) {
	if l == nil || len(needs) == 0 {
		return ctx, func() {}, 0, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// Look first, reserve only when admitted: a reservation cancelled behind others does
	// not give its token back (rate.Reservation restores only the last one), so trying
	// and cancelling would leak tokens into the future at every refusal.
	type take struct {
		b *bucket
		k key
		n int
	}
	var takes []take
	for _, n := range ByAction(needs) {
		k := key{account, region, n.Action}
		if b := l.getLocked(k, now); b != nil {
			takes = append(takes, take{b, k, n.N})
		}
	}
	for _, t := range takes {
		if missing := float64(t.n) - t.b.lim.TokensAt(now); missing > 0 {
			wait = max(wait, time.Duration(missing/t.b.cur*float64(time.Second)))
		}
	}
	if wait > bound {
		return ctx, func() {}, wait, false
	}
	p := &prepaid{res: map[key][]token{}}
	for _, t := range takes {
		for range t.n {
			p.res[t.k] = append(p.res[t.k], token{t.b.lim.ReserveN(now, 1), now})
		}
	}
	release = func() {
		now := l.now()
		p.mu.Lock()
		defer p.mu.Unlock()
		for k, ts := range p.res {
			for _, t := range ts {
				t.r.CancelAt(now)
			}
			delete(p.res, k)
		}
	}
	return context.WithValue(ctx, prepaidKey{}, p), release, wait, true
}

// Within is how many tokens the bucket of account, region and action could give within
// d: those it holds now and those the configured rate refills (not the adapted rate: how
// much of the real bucket other workers leave is not known here); +Inf for an action that
// is not limited.
func (l *Limiter) Within(account, region, action string, d time.Duration) float64 {
	if l == nil {
		return math.Inf(1)
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.getLocked(key{account, region, action}, now)
	if b == nil {
		return math.Inf(1)
	}
	return max(b.lim.TokensAt(now), 0) + b.max*d.Seconds()
}

// Throttled records that AWS throttled action in account and region anyway, on a call
// whose token was reserved at reserved (Take): AWS's bucket is empty, so this one is
// emptied too (other workers or tools used the tokens it still counted), and its rate is
// halved — down to 1/32 of the configured rate — to recover from there. A call whose
// token was reserved before the last halving was paced at the rate before it: its
// throttle is the same signal, and halves nothing (a job admitted before the halving may
// make its call seconds later, after a hook: in hooks/app, such calls halved two workers'
// rates three times over where once was due, and left AWS's bucket a third idle). Nor do
// throttles closer together than cutInterval.
func (l *Limiter) Throttled(account, region, action string, reserved time.Time) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.getLocked(key{account, region, action}, now)
	if b == nil {
		return
	}
	if now.Sub(b.cut) >= cutInterval && !reserved.Before(b.cut) {
		b.cur = max(b.cur/2, b.max*minFraction)
		b.cut = now
		b.last = now
		b.lim.SetLimitAt(now, rate.Limit(b.cur))
	}
	if n := int(b.lim.TokensAt(now)); n > 0 {
		b.lim.AllowN(now, n)
	}
}

// Rate is the current (adapted) rate of a bucket, and its configured rate; 0, 0 for an
// action that is not limited.
func (l *Limiter) Rate(account, region, action string) (cur, configured float64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.getLocked(key{account, region, action}, now)
	if b == nil {
		return 0, 0
	}
	return b.cur, b.max
}
