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

// lookups coalesces the DescribeSnapshots calls of one account-region that differ only in
// the values of one filter — the job-tag lookups of create jobs (before and after the
// create), the listings of delete jobs' volumes —, which otherwise cost one token each of
// the DescribeSnapshots bucket (DESIGN.md §8).
//
// The first lookup of a kind opens a batch and reserves a DescribeSnapshots token; the
// lookups of other jobs that come while the token is not yet due join the batch; when it
// is due, one call carries all their values. So batches grow exactly when the
// DescribeSnapshots bucket is short, and a lookup waits no longer than it would have alone. A lookup is answered only
// by a call made after it joined: it sees every snapshot that existed when it asked.
type lookups struct {
	mu   sync.Mutex
	open map[lookupKey]*lookup
}

type lookupKey struct{ account, region, fixed, name string }

// lookup is one batch: open while values may join, done when its call returned.
type lookup struct {
	values []string
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
		if leader {
			s.runLookup(ctx, api, k, l, fixed)
			return l.listed, l.err
		}
		select {
		case <-l.done:
		case <-ctx.Done():
			return nil, ctx.Err()
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
		l, leader = &lookup{done: make(chan struct{})}, true
		ls.open[k] = l
	}
	if !slices.Contains(l.values, value) {
		l.values = append(l.values, value)
	}
	if len(l.values) >= maxLookupValues {
		delete(ls.open, k)
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

// runLookup is the leader's part: wait for the batch's DescribeSnapshots token (gathering), close
// the batch, make its call and answer everyone in it.
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
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
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
