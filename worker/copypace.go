package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// MaxCopiesInProgress is AWS's limit of CopySnapshot in progress per destination region.
const MaxCopiesInProgress = 20

// copyPaceTTL is how long a destination's listing of its pending copies is trusted;
// copyPaceFullTTL when it said the destination was full, so that a slot a completed copy
// frees is seen soon (one DescribeSnapshots per destination every 2 s at most).
const (
	copyPaceTTL     = 10 * time.Second
	copyPaceFullTTL = 2 * time.Second
)

// copyPace counts the copies in progress per destination account-region: those pending at
// the destination's last listing (one listing, cached copyPaceTTL) plus those this worker
// started since. A copy beyond MaxCopiesInProgress waits on the queue (copy_limit).
type copyPace struct {
	mu    sync.Mutex
	dests map[string]*paceEntry
	// ttl replaces copyPaceTTL (tests); now replaces time.Now.
	ttl time.Duration
	now func() time.Time
}

type paceEntry struct {
	mu      sync.Mutex
	listed  int       // pending copies at the last listing
	at      time.Time // of the last listing; zero: never listed
	started int       // copies this worker started since
}

func (p *copyPace) entry(account, region string) *paceEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dests == nil {
		p.dests = map[string]*paceEntry{}
	}
	k := account + "/" + region
	e := p.dests[k]
	if e == nil {
		e = &paceEntry{}
		p.dests[k] = e
	}
	return e
}

func (p *copyPace) clock() (time.Time, time.Duration) {
	now, ttl := time.Now(), copyPaceTTL
	if p.now != nil {
		now = p.now()
	}
	if p.ttl > 0 {
		ttl = p.ttl
	}
	return now, ttl
}

// acquire takes a slot for one copy to account and region, or snoozes the job
// (copy_limit) when the destination has MaxCopiesInProgress copies in progress.
func (p *copyPace) acquire(ctx context.Context, s *snapshots, dst EC2, account, region string) error {
	e := p.entry(account, region)
	e.mu.Lock()
	defer e.mu.Unlock()
	now, ttl := p.clock()
	if e.listed+e.started >= MaxCopiesInProgress {
		ttl = min(ttl, copyPaceFullTTL)
	}
	if e.at.IsZero() || now.Sub(e.at) >= ttl {
		pending, err := s.listSnapshots(ctx, dst, account, &ec2.DescribeSnapshotsInput{Filters: []types.Filter{
			filter("status", string(types.SnapshotStatePending)), filter("tag-key", tag.Source)}})
		if err != nil {
			return fail(fmt.Errorf("listing the copies in progress in %s/%s: %w", account, region, err))
		}
		e.listed, e.at, e.started = len(pending), now, 0
	}
	if n := e.listed + e.started; n >= MaxCopiesInProgress {
		return snoozeFor(reason.CopyLimit, jitter(copyLimitDelay), fmt.Errorf("%d copies in progress in %s/%s (at most %d)", n, account, region, MaxCopiesInProgress))
	}
	e.started++
	return nil
}

// release gives back a slot taken for a copy that was not started.
func (p *copyPace) release(account, region string) {
	e := p.entry(account, region)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started > 0 {
		e.started--
	}
}
