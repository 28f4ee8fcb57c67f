package worker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/worker"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// A handler reports what it did as a Result, or says with its error what becomes of the
// message; the worker routes the outcome.
func ExampleMux() {
	mux := worker.NewMux()
	mux.RegisterFunc(job.KindCreate, func(_ context.Context, j job.Job) (worker.Result, error) {
		switch j.Volume {
		case "vol-00000000000000001":
			return worker.Result{Action: worker.Created, Snapshot: "snap-00000000000000001"}, nil
		case "vol-00000000000000002":
			return worker.Result{}, worker.Skip(reason.VolumeGone)
		default:
			return worker.Result{}, worker.Snooze(15*time.Second, errors.New("SnapshotCreationPerVolumeRateExceeded"))
		}
	})
	for _, j := range []job.Job{
		{Kind: job.KindCreate, Volume: "vol-00000000000000001"},
		{Kind: job.KindCreate, Volume: "vol-00000000000000002"},
		{Kind: job.KindCreate, Volume: "vol-00000000000000003"},
		{Kind: job.KindDelete, Snapshot: "snap-00000000000000001"},
	} {
		res, err := mux.Handle(context.Background(), j)
		var perm *worker.PermanentError
		switch {
		case errors.As(err, &perm):
			fmt.Printf("%s: dead-letter with reason %s\n", j.Kind, perm.Reason)
		case err != nil:
			fmt.Printf("%s: %v\n", j.Kind, err)
		default:
			fmt.Printf("%s: %s %s\n", j.Kind, res.Action, res.Snapshot)
		}
	}
	// Output:
	// snapshot.create: created snap-00000000000000001
	// snapshot.create: skipped: volume_gone
	// snapshot.create: snoozed for 15s: SnapshotCreationPerVolumeRateExceeded
	// snapshot.delete: dead-letter with reason invalid_message
}
