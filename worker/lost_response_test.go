package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/snapfleet/snapfleet/internal/testbed/faultproxy"
)

// TestCreateLostResponse: CreateSnapshot takes effect at moto but its answer is lost (a
// 500, or a connection reset). The SDK must not resend the call blindly — it carries no
// client token, so a resend makes a second snapshot; the job fails as a retryable
// attempt and its retry finds the snapshot by its job tag. One CreateSnapshot reaches
// EC2, no duplicate is made, none has to be deleted.
func TestCreateLostResponse(t *testing.T) {
	t.Parallel()
	for _, fault := range []faultproxy.Fault{faultproxy.LoseResponse, faultproxy.DropResponse} {
		t.Run(fault.String(), func(t *testing.T) {
			t.Parallel()
			e := newMoto(t)
			p := faultproxy.Start(t, e.s.Endpoint)
			p.Add(faultproxy.Rule{Action: "CreateSnapshot", Fault: fault, Limit: 1})
			api := ec2.NewFromConfig(e.cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(p.URL) })
			cfg := policyConfig(t, "policies: [{name: daily, every: 24h, retain: {max_age: 30d}}]")
			now := func() time.Time { return time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC) }
			s := &snapshots{cfg: cfg, ec2: func(string, string) EC2 { return api }, now: now, backoff: defaultBackoff}
			j := createJob(e.volume(t), "daily", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))

			_, err := s.create(context.Background(), j)
			if o, _, _ := outcomeOf(err); o != outRetry {
				t.Fatalf("first attempt: outcome %v (%v), want a retry", o, err)
			}
			var perm *PermanentError
			if errors.As(err, &perm) {
				t.Fatalf("lost response dead-letters: %v", err)
			}
			res, err := s.create(context.Background(), j)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			snaps := e.byJob(t, j.Key)
			if len(snaps) != 1 {
				t.Fatalf("%d snapshots carry the job key, want 1", len(snaps))
			}
			if res.Action != Existed || res.Snapshot != aws.ToString(snaps[0].SnapshotId) {
				t.Errorf("retry: %+v, want existed %s", res, aws.ToString(snaps[0].SnapshotId))
			}
			if c := p.Count("CreateSnapshot"); c.Calls != 1 || c.Forwarded != 1 {
				t.Errorf("CreateSnapshot reached the proxy %d times (forwarded %d), want once", c.Calls, c.Forwarded)
			}
			if c := p.Count("DeleteSnapshot"); c.Calls != 0 {
				t.Errorf("DeleteSnapshot called %d times: a duplicate was made", c.Calls)
			}
		})
	}
}
