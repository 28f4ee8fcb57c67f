package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/limit"
)

// maxLookupValues is the most values one coalesced DescribeSnapshots carries in its
// varying filter, well within what EC2 takes in one call.
const maxLookupValues = 50

// lookupWindow is how long a batch of lookups stays open at least, when the worker is
// rate limited and has other jobs of the account-region (peers): long enough that, at the
// rates one account-region allows (5 creates and 5 deletes per second, each create
// looking up twice), a call serves several jobs. A job waiting for it gives back its slot
// (idle), so it costs the job time, not the worker throughput. (At the bench's -scale
// 0.25, mixed/2w: 1 s gave 0.8–1.0 Describe calls per job, 1.5 s 0.9, 2 s 0.87; the
// creates delayed by it cost single/1w's η, measured at a fixed time, 0.01 per 0.5 s.)
const lookupWindow = 1500 * time.Millisecond

// lookups coalesces the DescribeSnapshots calls of one account-region that differ only in
// the values of one filter — the job-tag lookups of create jobs (before and after the
// create), the listings of delete jobs' volumes —, which otherwise cost one token each of
// the DescribeSnapshots bucket (DESIGN.md §8).
//
// The first lookup of a kind opens a batch and reserves a DescribeSnapshots token; the
// lookups of other jobs that come within the batch's window (lookupWindow), or later
// while the token is not yet due, join the batch; then one call carries all their values
// (a full batch goes at once). So batches grow with the jobs' rate, and more when the
// DescribeSnapshots bucket is short. A lookup is answered only by a call made after it
// joined: it sees every snapshot that existed when it asked.
type lookups struct {
	mu   sync.Mutex
	open map[lookupKey]*lookup
}

type lookupKey struct{ account, region, fixed, name string }

// lookup is one batch: open while values may join, done when its call returned.
type lookup struct {
	values []string
	opened time.Time
	full   chan struct{} // closed when the batch has maxLookupValues values
	done   chan struct{}
	listed []types.Snapshot
	err    error
}

// lookup lists the account's snapshots that match the fixed filters and whose filter name
// has value, in one call with the other lookups of the same account-region, fixed filters
// and name that joined while it waited for its DescribeSnapshots token. The result also holds the
// other values' snapshots: the caller picks its own.
func (s *snapshots) lookup(ctx context.Context, api EC2, account, region string, fixed []types.Filter, name, value string) ([]types.Snapshot, error) {
	k := lookupKey{account, region, filtersKey(fixed), name}
	for {
		l, leader := s.lookups.join(k, value)
		idle(ctx) // only waiting for the batch: the slot can start another job
		if leader {
			s.runLookup(ctx, api, k, l, fixed)
			if err := resume(ctx); err != nil {
				return nil, err
			}
			return l.listed, l.err
		}
		select {
		case <-l.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := resume(ctx); err != nil {
			return nil, err
		}
		// The leader was stopped (its worker is shutting down) before its call: this
		// lookup was not answered, so it asks again, itself.
		if errors.Is(l.err, errLeaderStopped) && ctx.Err() == nil {
			continue
		}
		return l.listed, l.err
	}
}

// errLeaderStopped answers the lookups of a batch whose leader's context ended first.
var errLeaderStopped = errors.New("the job that was to make this coalesced lookup was stopped")

// join adds value to the open batch of k, or opens one (leader: the caller makes its
// call). A batch that is full is closed to others.
func (ls *lookups) join(k lookupKey, value string) (l *lookup, leader bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.open == nil {
		ls.open = map[lookupKey]*lookup{}
	}
	l = ls.open[k]
	if l == nil {
		l, leader = &lookup{opened: time.Now(), full: make(chan struct{}), done: make(chan struct{})}, true
		ls.open[k] = l
	}
	if !slices.Contains(l.values, value) {
		l.values = append(l.values, value)
	}
	if len(l.values) >= maxLookupValues {
		delete(ls.open, k)
		if len(l.values) == maxLookupValues {
			close(l.full)
		}
	}
	return l, leader
}

// close closes l to others and returns its values.
func (ls *lookups) close(k lookupKey, l *lookup) []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.open[k] == l {
		delete(ls.open, k)
	}
	return slices.Clone(l.values)
}

// runLookup is the leader's part: wait for the batch's window and DescribeSnapshots token
// (gathering), close the batch, make its call and answer everyone in it.
func (s *snapshots) runLookup(ctx context.Context, api EC2, k lookupKey, l *lookup, fixed []types.Filter) {
	defer close(l.done)
	callCtx := ctx
	if s.lim != nil {
		bound, bounded := limit.MaxWait(ctx)
		if !bounded {
			bound = time.Hour
		}
		// Refused (the token is further away than the job may wait): the call below
		// then gets the limiter's WaitError, a snooze for the whole batch.
		if c, release, wait, ok := s.lim.Admit(ctx, k.account, k.region, []limit.Need{{Action: "DescribeSnapshots", N: 1}}, bound); ok {
			defer release()
			callCtx = c
			due, until := time.Now().Add(wait), time.Time{}
			// Only a worker with other jobs of the account-region keeps the batch open
			// for them.
			if peers(ctx, k.account, k.region) {
				until = l.opened.Add(lookupWindow)
			}
			if !gather(ctx, l, due, until) {
				s.lookups.close(k, l)
				l.err = fmt.Errorf("%w: %w", errLeaderStopped, ctx.Err())
				return
			}
		}
	}
	values := s.lookups.close(k, l)
	in := &ec2.DescribeSnapshotsInput{Filters: append(slices.Clone(fixed), filter(k.name, values...))}
	l.listed, l.err = s.listSnapshots(callCtx, api, k.account, in)
	if l.err != nil && ctx.Err() != nil {
		l.err = fmt.Errorf("%w: %w", errLeaderStopped, l.err)
	}
}

// gather lets other lookups join l until its token is due and its window (until) is
// over, the window cut short when l fills up; false when ctx ends first.
func gather(ctx context.Context, l *lookup, due, until time.Time) bool {
	full := l.full
	for {
		end := due
		if full != nil && until.After(end) {
			end = until
		}
		d := time.Until(end)
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return true
		case <-full:
			full = nil // the token may still be due later
		case <-ctx.Done():
			t.Stop()
			return false
		}
		t.Stop()
	}
}

// filtersKey is a key of fixed filters.
func filtersKey(fs []types.Filter) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(aws.ToString(f.Name))
		for _, v := range f.Values {
			b.WriteString("\x00" + v)
		}
		b.WriteString("\x01")
	}
	return b.String()
}
