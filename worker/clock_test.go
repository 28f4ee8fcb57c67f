package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/cloud"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// TestDeleteClockSkew (issue 12.5): the worker compares its clock with AWS's — the Date
// of moto's responses, read by cloud.Clients — before re-checking a delete. A clock 60 days
// ahead would expire a 5-day-old snapshot, one 60 days behind would refuse (and
// dead-letter) a 40-day-old one: both are snoozed for clock_skew instead, with no
// DeleteSnapshot. Within MaxClockSkew, or with the guard off (AWSNow nil:
// --allow-clock-skew), the delete goes on as before.
func TestDeleteClockSkew(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, "policies: [{name: daily, every: 24h, retain: {max_age: 30d}}]")
	clients := cloud.NewClients(e.cfg, cfg)
	api := func(a, r string) EC2 { return clients.EC2(a, r) }
	vol := e.volume(t)
	e.managed(t, vol, "daily", 24*time.Hour)
	young := e.managed(t, vol, "daily", 5*24*time.Hour)
	old := e.managed(t, vol, "daily", 40*24*time.Hour)
	ctx := context.Background()
	at := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
	guarded := func(now func() time.Time) *snapshots {
		return &snapshots{cfg: cfg, ec2: api, now: now, backoff: defaultBackoff, awsNow: clients.AWSNow}
	}

	for _, tc := range []struct {
		name string
		snap string
		skew time.Duration
	}{
		{"60 days ahead", young, 60 * 24 * time.Hour},
		{"60 days behind", old, -60 * 24 * time.Hour},
		{"6 minutes ahead", young, 6 * time.Minute},
	} {
		_, err := guarded(at(tc.skew)).delete(ctx, deleteJob(tc.snap, "daily"))
		o, why, delay := outcomeOf(err)
		if o != outSnooze || why != reason.ClockSkew || delay != clockSkewDelay {
			t.Errorf("%s: outcome %v %q %v (%v), want snoozed for clock_skew", tc.name, o, why, delay, err)
		}
		if err != nil && !strings.Contains(err.Error(), "from AWS's") {
			t.Errorf("%s: error %q does not name AWS's clock", tc.name, err)
		}
		if !e.exists(t, tc.snap) {
			t.Fatalf("%s: snapshot %s deleted on a skewed clock", tc.name, tc.snap)
		}
	}

	// The guard off: the clock 60 days behind refuses as before (the job's verdict on that
	// clock), and 60 days ahead deletes the young snapshot (a replay's --now).
	off := &snapshots{cfg: cfg, ec2: api, now: at(-60 * 24 * time.Hour), backoff: defaultBackoff}
	var perm *PermanentError
	if _, err := off.delete(ctx, deleteJob(old, "daily")); !errors.As(err, &perm) || perm.Reason != reason.RefusedRetention {
		t.Errorf("guard off, clock behind: %v, want refused_retention", err)
	}
	off.now = at(60 * 24 * time.Hour)
	if res, err := off.delete(ctx, deleteJob(young, "daily")); err != nil || res.Action != Deleted {
		t.Errorf("guard off, clock ahead: %+v, %v, want deleted", res, err)
	}
	// Within MaxClockSkew the guard lets an expired snapshot go.
	if res, err := guarded(at(4*time.Minute)).delete(ctx, deleteJob(old, "daily")); err != nil || res.Action != Deleted {
		t.Errorf("4 minutes ahead: %+v, %v, want deleted", res, err)
	}
}

// TestCheckClockUnknown: before any dated response AWS's clock is unknown, and a delete
// waits rather than trusting the worker's own.
func TestCheckClockUnknown(t *testing.T) {
	t.Parallel()
	s := &snapshots{awsNow: func(string, string) (time.Time, bool) { return time.Time{}, false }}
	if o, why, _ := outcomeOf(s.checkClock(deleteJob("snap-0123456789abcdef0", "daily"), time.Now())); o != outSnooze || why != reason.ClockSkew {
		t.Errorf("unknown AWS clock: %v %q, want snoozed for clock_skew", o, why)
	}
	if err := (&snapshots{}).checkClock(deleteJob("snap-0123456789abcdef0", "daily"), time.Time{}); err != nil {
		t.Errorf("guard off: %v", err)
	}
}
