package worker

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// inAccount is j moved to account, with its key.
func inAccount(j job.Job, account string) job.Job {
	j.Account = account
	if j.Kind == job.KindDelete {
		j.Key = job.DeleteKey(account, j.Region, j.Snapshot)
	} else {
		j.Key = job.CreateKey(account, j.Region, j.Volume, j.Policy, plannedAt)
	}
	return j
}

// TestForeignAccountRefused: jobs for accounts the worker's credentials cannot prove to be
// — one listed without a role that is not the caller's, one whose role hands out another
// account's credentials — are dead-lettered refused_foreign_account with no EC2 call: on
// moto, which answers any owner, a forged create would have snapshotted the caller's
// volume under the other account's key, and a forged delete reached the caller's
// snapshots. The caller's own job beside them is done; each account's identity is asked
// once however many jobs name it.
func TestForeignAccountRefused(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	old := e.managed(t, vol, "default", 400*24*time.Hour)
	e.managed(t, vol, "default", time.Hour)
	const (
		stranger   = "801119661308"
		redirected = "222222222222"
		elsewhere  = "333333333333"
	)
	role := "arn:aws:iam::" + redirected + ":role/x"
	cfg := config.Default()
	cfg.Accounts = []config.Account{{ID: testAccount}, {ID: stranger}, {ID: redirected, RoleARN: role}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	clients := cloud.NewClients(e.cfg, cfg)
	clients.APIOptions = append(clients.APIOptions, e.faults.apply, func(s *middleware.Stack) error {
		// The role's trust chain hands out credentials of another account.
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("snapfleetTestRedirectRole",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if ar, ok := in.Parameters.(*sts.AssumeRoleInput); ok {
					cp := *ar
					cp.RoleArn = aws.String("arn:aws:iam::" + elsewhere + ":role/x")
					in.Parameters = &cp
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	})

	var bodies [][]byte
	for _, a := range []string{stranger, redirected} {
		bodies = append(bodies,
			encode(t, inAccount(createJob(vol, "default", plannedAt), a)),
			encode(t, inAccount(deleteJob(old, "default"), a)))
	}
	own := createJob(vol, "default", plannedAt)
	bodies = append(bodies, encode(t, own))
	q := newFakeQueue()
	ids := q.add(0, bodies...)
	w := e.newWorker(q, cfg, nil)
	w.EC2 = func(a, r string) EC2 { return clients.EC2(a, r) }
	w.KnownAccount = clients.Known
	st := runFor(t, w, 20*time.Second)

	if want := (Stats{Processed: 5, Created: 1, DeadLettered: 4}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	reasons := q.deadReasons()
	for _, id := range ids[:4] {
		if reasons[id] != reason.RefusedForeignAccount {
			t.Errorf("message %s: reason %q, want %s", id, reasons[id], reason.RefusedForeignAccount)
		}
	}
	if !e.exists(t, old) {
		t.Errorf("snapshot %s deleted by a job of another account", old)
	}
	for _, a := range []string{stranger, redirected} {
		for _, sn := range e.byJob(t, job.CreateKey(a, testRegion, vol, "default", plannedAt)) {
			t.Errorf("snapshot %s created under %s's key", aws.ToString(sn.SnapshotId), a)
		}
	}
	if got := e.byJob(t, own.Key); len(got) != 1 {
		t.Errorf("the caller's own job made %d snapshots, want 1", len(got))
	}
	// EC2 was called for the caller's job only: its lookup and create, never a delete.
	if n := e.faults.count("DeleteSnapshot"); n != 0 {
		t.Errorf("DeleteSnapshot called %d times", n)
	}
	if n := e.faults.count("CreateSnapshot"); n != 1 {
		t.Errorf("CreateSnapshot called %d times, want 1 (the caller's job)", n)
	}
	if n := e.faults.count("GetCallerIdentity"); n != 2 {
		t.Errorf("GetCallerIdentity called %d times, want 2: the caller's and the role's, once each for 5 jobs", n)
	}
}
