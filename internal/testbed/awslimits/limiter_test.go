package awslimits

import (
	"net/url"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)} }

// admitN sends n calls and returns how many were allowed.
func admitN(l *Limiter, n int, account, region, action string) int {
	ok := 0
	for range n {
		if l.Admit(account, region, action, "") == Allow {
			ok++
		}
	}
	return ok
}

func TestBucketBurstAndRefill(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		action        string
		burst, refill int
	}{
		{"CreateSnapshot", 100, 5},
		{"CreateSnapshots", 100, 5},
		{"DeleteSnapshot", 100, 5},
		{"CreateTags", 100, 10},
		{"DescribeSnapshots", 100, 20},
		{"DescribeVolumes", 100, 20},
		{"DescribeInstances", 100, 20},
		{"DescribeImages", 100, 20},
		{"DescribeSnapshotAttribute", 100, 20},
		{"DescribeLockedSnapshots", 100, 20},
		{"DescribeSnapshots.unfiltered", 50, 10},
		{"DescribeVolumes.unfiltered", 50, 10},
		{"DescribeInstances.unfiltered", 50, 10},
	} {
		t.Run(tc.action, func(t *testing.T) {
			t.Parallel()
			c := newClock()
			l := NewLimiter(nil, -1, c.now)
			if got := admitN(l, 150, "111111111111", "us-east-1", tc.action); got != tc.burst {
				t.Fatalf("burst: allowed %d of 150, want %d", got, tc.burst)
			}
			c.add(time.Second)
			if got := admitN(l, 50, "111111111111", "us-east-1", tc.action); got != tc.refill {
				t.Fatalf("after 1s: allowed %d, want %d", got, tc.refill)
			}
			c.add(time.Second / time.Duration(tc.refill)) // exactly one token
			if got := admitN(l, 5, "111111111111", "us-east-1", tc.action); got != 1 {
				t.Fatalf("after one refill period: allowed %d, want 1", got)
			}
			c.add(time.Hour) // refill stops at the burst
			if got := admitN(l, 500, "111111111111", "us-east-1", tc.action); got != tc.burst {
				t.Fatalf("after an hour idle: allowed %d, want the burst %d", got, tc.burst)
			}
			st := l.Stats()
			if len(st) != 1 || st[0].Allowed != 2*tc.burst+tc.refill+1 || st[0].Throttled != 150+50+5+500-st[0].Allowed {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestBucketsAreSeparate(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLimiter(nil, -1, c.now)
	if got := admitN(l, 100, "111111111111", "us-east-1", "CreateSnapshot"); got != 100 {
		t.Fatalf("first bucket: %d", got)
	}
	if l.Admit("111111111111", "us-east-1", "CreateSnapshot", "") != Throttle {
		t.Fatal("101st create in the same account-region was allowed")
	}
	// Another account, another region, another action: each has a full bucket, every
	// Describe* action too, and the unfiltered calls of a listing action.
	for _, k := range []struct{ account, region, action string }{
		{"222222222222", "us-east-1", "CreateSnapshot"},
		{"111111111111", "eu-west-1", "CreateSnapshot"},
		{"111111111111", "us-east-1", "DeleteSnapshot"},
		{"111111111111", "us-east-1", "CreateSnapshots"},
		{"111111111111", "us-east-1", "DescribeVolumes"},
		{"111111111111", "us-east-1", "DescribeSnapshots"},
		{"111111111111", "us-east-1", "DescribeSnapshotAttribute"},
	} {
		if got := admitN(l, 100, k.account, k.region, k.action); got != 100 {
			t.Errorf("%+v: allowed %d of 100, want a full bucket", k, got)
		}
	}
	if got := admitN(l, 50, "111111111111", "us-east-1", Unfiltered("DescribeVolumes")); got != 50 {
		t.Errorf("unfiltered DescribeVolumes after the filtered bucket emptied: allowed %d of 50", got)
	}
	// Unlimited actions pass and are not counted.
	if got := admitN(l, 1000, "111111111111", "us-east-1", "RunInstances"); got != 1000 {
		t.Errorf("RunInstances: allowed %d of 1000", got)
	}
	if n := len(l.Stats()); n != 9 {
		t.Errorf("%d buckets, want 9", n)
	}
}

// TestBucketOf: a listing call goes to the unfiltered bucket only when it names no
// filter, no ids and no page; every other call to its action's bucket.
func TestBucketOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		action, query, want string
	}{
		{"DescribeSnapshots", "Action=DescribeSnapshots&Version=2016-11-15", "DescribeSnapshots.unfiltered"},
		{"DescribeSnapshots", "Action=DescribeSnapshots&Owner.1=self", "DescribeSnapshots.unfiltered"},
		{"DescribeSnapshots", "Action=DescribeSnapshots&Owner.1=self&Filter.1.Name=tag%3Ax&Filter.1.Value.1=y", "DescribeSnapshots"},
		{"DescribeSnapshots", "Action=DescribeSnapshots&SnapshotId.1=snap-1", "DescribeSnapshots"},
		{"DescribeVolumes", "Action=DescribeVolumes", "DescribeVolumes.unfiltered"},
		{"DescribeVolumes", "Action=DescribeVolumes&MaxResults=500", "DescribeVolumes"},
		{"DescribeVolumes", "Action=DescribeVolumes&VolumeId.1=vol-1", "DescribeVolumes"},
		{"DescribeInstances", "Action=DescribeInstances", "DescribeInstances.unfiltered"},
		{"DescribeInstances", "Action=DescribeInstances&NextToken=abc", "DescribeInstances"},
		{"DescribeInstances", "Action=DescribeInstances&InstanceId.1=i-1", "DescribeInstances"},
		{"DescribeImages", "Action=DescribeImages", "DescribeImages"},
		{"DescribeLockedSnapshots", "Action=DescribeLockedSnapshots", "DescribeLockedSnapshots"},
		{"CreateSnapshot", "Action=CreateSnapshot&VolumeId=vol-1", "CreateSnapshot"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if got := BucketOf(tc.action, q); got != tc.want {
			t.Errorf("BucketOf(%s) = %s, want %s", tc.query, got, tc.want)
		}
	}
}

func TestPerVolumeRule(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLimiter(nil, 0, c.now)
	const a, r = "111111111111", "us-east-1"
	if v := l.Admit(a, r, "CreateSnapshot", "vol-1"); v != Allow {
		t.Fatalf("first create: %v", v)
	}
	c.add(14 * time.Second)
	if v := l.Admit(a, r, "CreateSnapshot", "vol-1"); v != PerVolume {
		t.Fatalf("second create after 14s: %v, want PerVolume", v)
	}
	if v := l.Admit(a, r, "CreateSnapshot", "vol-2"); v != Allow {
		t.Fatalf("another volume: %v", v)
	}
	if v := l.Admit("222222222222", r, "CreateSnapshot", "vol-1"); v != Allow {
		t.Fatalf("same volume id in another account: %v", v)
	}
	c.add(time.Second) // 15s after the first create; the refused one did not restart the window
	if v := l.Admit(a, r, "CreateSnapshot", "vol-1"); v != Allow {
		t.Fatalf("create after 15s: %v", v)
	}
	st := l.Stats()
	if st[0].Account != a || st[0].Allowed != 4 || st[0].PerVolume != 1 {
		t.Fatalf("stats %+v: the refused call takes its token and is counted", st[0])
	}
}

func TestCeiling(t *testing.T) {
	t.Parallel()
	l := Limit{Burst: 100, Refill: 5}
	t0 := time.Unix(0, 0)
	for _, tc := range []struct {
		demand  int
		elapsed time.Duration
		want    float64
	}{
		{2000, 0, 100},
		{2000, 10 * time.Second, 150},
		{120, 10 * time.Second, 120},
		{2000, 380 * time.Second, 2000},
	} {
		if got := l.Ceiling(tc.demand, t0, t0.Add(tc.elapsed)); got != tc.want {
			t.Errorf("Ceiling(%d, %s) = %v, want %v", tc.demand, tc.elapsed, got, tc.want)
		}
	}
}
