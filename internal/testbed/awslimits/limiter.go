// Package awslimits is a limits-faithful EC2 endpoint for tests and benchmarks: a reverse
// proxy in front of moto that enforces AWS's API rate limits as EC2 documents them, so
// that snapfleet's throughput can be measured against the ceiling AWS would allow.
//
// Per account, region and bucket it keeps a token bucket, one per EC2 action as AWS has
// them (throttling one action does not slow another; DESIGN.md §8): CreateSnapshot,
// CreateSnapshots and DeleteSnapshot each burst 100, refill 5 per second; CreateTags 100,
// 10; each Describe* action 100, 20 — but a DescribeSnapshots, DescribeVolumes or
// DescribeInstances that names no filter, no ids and no page (MaxResults, NextToken) goes
// to that action's unfiltered bucket, 50, 10 (Unfiltered). A call that finds its bucket
// empty is answered with EC2's RequestLimitExceeded (HTTP 503) and not forwarded. A second CreateSnapshot of
// the same volume within 15 seconds is answered with SnapshotCreationPerVolumeRateExceeded
// (HTTP 400). Latency and a seeded fraction of InternalError faults can be added. The
// account is read from the SigV4 access key (keys issued by AssumeRole through the
// endpoint are mapped to the role's account; others to a default account), the region
// from the SigV4 credential scope.
//
// It is a measuring instrument: the Limiter counts, per bucket, the calls allowed and
// throttled and the times of the first and last allowed call, from which η (operations
// done ÷ operations the buckets allowed) is computed. The Limiter runs on an injectable
// clock so its behaviour is tested without waiting.
//
// Why a new package and not faultproxy: faultproxy injects scripted faults picked by rule
// (every Nth call, a fraction) for chaos tests; this package models AWS's own admission
// control by account, region and bucket state. They share no state and are used apart.
package awslimits

import (
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// Limit is one token bucket's shape.
type Limit struct {
	// Burst is the bucket's capacity and its content at the start.
	Burst float64
	// Refill is the tokens added per second.
	Refill float64
}

// Bucket names: a bucket is named after its action, and Unfiltered(action) for the
// unfiltered, unpaginated calls of the listing actions. Actions without a bucket in the
// limits are not limited (but are counted).
const (
	BucketCreateSnapshot  = "CreateSnapshot"
	BucketCreateSnapshots = "CreateSnapshots"
	BucketDeleteSnapshot  = "DeleteSnapshot"
)

// Listings are the actions whose unfiltered and unpaginated calls take the smaller
// Unfiltered bucket.
var Listings = []string{"DescribeSnapshots", "DescribeVolumes", "DescribeInstances"}

// Unfiltered names the bucket of action's calls that name no filter, no ids and no page.
func Unfiltered(action string) string { return action + ".unfiltered" }

// UnfilteredInput is BucketOf's rule on an SDK input: it reports whether params is a
// call of a listing action that takes the Unfiltered bucket (no filter, no ids, no page),
// and names the action. Tests use it to prove that snapfleet makes no such call.
func UnfilteredInput(params any) (action string, unfiltered bool) {
	switch in := params.(type) {
	case *ec2.DescribeSnapshotsInput:
		return "DescribeSnapshots", len(in.Filters) == 0 && len(in.SnapshotIds) == 0 && in.MaxResults == nil && in.NextToken == nil
	case *ec2.DescribeVolumesInput:
		return "DescribeVolumes", len(in.Filters) == 0 && len(in.VolumeIds) == 0 && in.MaxResults == nil && in.NextToken == nil
	case *ec2.DescribeInstancesInput:
		return "DescribeInstances", len(in.Filters) == 0 && len(in.InstanceIds) == 0 && in.MaxResults == nil && in.NextToken == nil
	}
	return "", false
}

// DefaultLimits are AWS's EC2 buckets (DESIGN.md §8) for the snapshot actions and the
// calls around them.
func DefaultLimits() map[string]Limit {
	mutating, describe := Limit{Burst: 100, Refill: 5}, Limit{Burst: 100, Refill: 20}
	m := map[string]Limit{
		BucketCreateSnapshot: mutating, BucketCreateSnapshots: mutating, BucketDeleteSnapshot: mutating,
		"ModifySnapshotAttribute": mutating, "CreateVolume": mutating, "DeleteVolume": mutating, "AttachVolume": mutating,
		"CreateTags":   {Burst: 100, Refill: 10},
		"CopySnapshot": {Burst: 50, Refill: 5}, "ModifySnapshotTier": {Burst: 50, Refill: 5},
		"DescribeImages": describe, "DescribeSnapshotAttribute": describe, "DescribeLockedSnapshots": describe,
	}
	for _, a := range Listings {
		m[a] = describe
		m[Unfiltered(a)] = Limit{Burst: 50, Refill: 10}
	}
	return m
}

// PerVolumeInterval is EC2's minimum interval between two snapshots of one volume.
const PerVolumeInterval = 15 * time.Second

// BucketOf names the bucket of a call of action with these query parameters: the
// action's own, or Unfiltered(action) for a listing action's call without a filter, ids
// (SnapshotId.N, VolumeId.N, InstanceId.N) and pagination (MaxResults, NextToken).
func BucketOf(action string, params url.Values) string {
	if !slices.Contains(Listings, action) {
		return action
	}
	for k := range params {
		for _, narrow := range []string{"Filter.", "SnapshotId.", "VolumeId.", "InstanceId.", "MaxResults", "NextToken"} {
			if strings.HasPrefix(k, narrow) {
				return action
			}
		}
	}
	return Unfiltered(action)
}

// Verdict is the Limiter's answer to one call.
type Verdict int

// Verdicts.
const (
	// Allow: the call takes a token and goes on.
	Allow Verdict = iota
	// Throttle: the bucket is empty; EC2 answers RequestLimitExceeded, HTTP 503.
	Throttle
	// PerVolume: the volume was snapshotted less than PerVolumeInterval ago; EC2 answers
	// SnapshotCreationPerVolumeRateExceeded, HTTP 400. The call took its token.
	PerVolume
)

// Key names one bucket.
type Key struct {
	Account, Region, Bucket string
}

// Stats is what one bucket saw.
type Stats struct {
	Key
	Limit Limit
	// Allowed is the calls that took a token (PerVolume rejections included).
	Allowed int
	// Throttled is the calls refused with RequestLimitExceeded.
	Throttled int
	// PerVolume is the calls refused with SnapshotCreationPerVolumeRateExceeded.
	PerVolume int
	// First and Last are the times of the first call and the last allowed call.
	First, Last time.Time
}

// Ceiling is the number of calls the bucket could have allowed between from and to, for a
// demand of demand calls: min(demand, burst + refill × (to − from)). The bucket is full at
// from (it has been idle).
func (l Limit) Ceiling(demand int, from, to time.Time) float64 {
	c := l.Burst + l.Refill*to.Sub(from).Seconds()
	if d := float64(demand); d < c {
		return d
	}
	return c
}

type bucket struct {
	tokens float64
	at     time.Time
	st     Stats
}

// Limiter keeps the token buckets and the per-volume rule. Safe for concurrent use.
type Limiter struct {
	now       func() time.Time
	limits    map[string]Limit
	perVolume time.Duration

	mu      sync.Mutex
	buckets map[Key]*bucket
	volumes map[Key]time.Time // Bucket holds the volume id
}

// NewLimiter returns a Limiter with limits (DefaultLimits when nil), the per-volume
// interval (PerVolumeInterval when 0; negative disables the rule) and clock now
// (time.Now when nil).
func NewLimiter(limits map[string]Limit, perVolume time.Duration, now func() time.Time) *Limiter {
	if limits == nil {
		limits = DefaultLimits()
	}
	if perVolume == 0 {
		perVolume = PerVolumeInterval
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, limits: limits, perVolume: perVolume,
		buckets: map[Key]*bucket{}, volumes: map[Key]time.Time{}}
}

// Admit decides one call in account and region that takes a token of the bucket name
// (BucketOf: its action, for most calls); volume is the VolumeId of a CreateSnapshot (""
// otherwise). Calls of a bucket without a limit are always allowed and not counted.
func (l *Limiter) Admit(account, region, name, volume string) Verdict {
	lim, ok := l.limits[name]
	if !ok {
		return Allow
	}
	now := l.now()
	k := Key{account, region, name}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		b = &bucket{tokens: lim.Burst, at: now, st: Stats{Key: k, Limit: lim, First: now}}
		l.buckets[k] = b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(lim.Burst, b.tokens+dt*lim.Refill)
		b.at = now
	}
	if b.tokens < 1 {
		b.st.Throttled++
		return Throttle
	}
	b.tokens--
	b.st.Allowed++
	b.st.Last = now
	if name == BucketCreateSnapshot && volume != "" && l.perVolume > 0 {
		vk := Key{account, region, volume}
		if last, ok := l.volumes[vk]; ok && now.Sub(last) < l.perVolume {
			b.st.PerVolume++
			return PerVolume
		}
		l.volumes[vk] = now
	}
	return Allow
}

// Stats returns every bucket's counts, sorted by account, region and bucket.
func (l *Limiter) Stats() []Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Stats, 0, len(l.buckets))
	for _, b := range l.buckets {
		out = append(out, b.st)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Key, out[j].Key
		if a.Account != b.Account {
			return a.Account < b.Account
		}
		if a.Region != b.Region {
			return a.Region < b.Region
		}
		return a.Bucket < b.Bucket
	})
	return out
}

// Reset forgets every bucket, count and volume: the next window starts with full buckets.
func (l *Limiter) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buckets = map[Key]*bucket{}
	l.volumes = map[Key]time.Time{}
}
