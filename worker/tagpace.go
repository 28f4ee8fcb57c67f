package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
)

// Tagging after the effect. Once CreateSnapshots has returned, an instance job's
// snapshots exist, carry the managed marker and the job key, and their point in time is
// fixed (the post hook is sent then); what is left is each snapshot's own tags
// (tagVolumes: volume, device, Name), one CreateTags per snapshot. Per instance of two
// volumes or more, the CreateTags bucket (DESIGN.md §8: 100, 10 a second) is narrower than
// the CreateSnapshots one (100, 5 a second), so the tags follow at their bucket's pace
// without holding back other instances' CreateSnapshots: the job reserves its CreateTags
// tokens at once, however far ahead they are due, gives its slot back while they come
// due (as a job waiting for a coalesced lookup does, slot.go), and takes a slot again to
// make its calls. The wait is not cut short by the runner's max-wait: snoozed, the job
// would come back only to find its snapshots by their job tag and tag them then, at the
// cost of a lookup. Its message stays in flight, heart-beaten, until the tags are
// written; a job stopped meanwhile (shutdown) is retried and its retry writes them.
//
// The admission does not reserve CreateTags (needs, admit.go): a job is admitted when its
// tokens are all due within admitAhead, so reserving the tags there would make its
// CreateSnapshots wait for the tagging bucket — the very wait this avoids.

// maxTagRounds bounds how many times writeTags paces the tags still to write again after
// a throttle; then the throttle's snooze stands, and the retry tags the snapshots.
const maxTagRounds = 8

// writeTags makes the CreateTags calls of an instance job's snapshots at the bucket's
// pace (tagPace). A call throttled by AWS, or one whose in-process retry would have to
// wait for a token beyond the tokens paced for it, paces the calls left again, without
// the slot, rather than waiting in it or snoozing the job.
func (s *snapshots) writeTags(ctx context.Context, api EC2, j job.Job, todo []*ec2.CreateTagsInput) error {
	for round := 1; len(todo) > 0; round++ {
		pctx, release, err := s.tagPace(ctx, j, len(todo))
		if err != nil {
			return fail(fmt.Errorf("waiting to tag the snapshots of instance %s: %w", j.Instance, err))
		}
		for len(todo) > 0 && err == nil {
			in := todo[0]
			err = s.call(pctx, func(ctx context.Context) error {
				_, err := api.CreateTags(ctx, in)
				return err
			})
			if err == nil {
				todo = todo[1:]
			}
		}
		release()
		var wait *limit.WaitError
		class, _ := cloud.Classify(err)
		paced := s.lim != nil && round < maxTagRounds
		if err != nil && (!paced || (class != cloud.Throttled && !errors.As(err, &wait))) {
			return fail(fmt.Errorf("tagging snapshot %s of instance %s: %w", todo[0].Resources[0], j.Instance, err))
		}
	}
	return nil
}

// tagPace reserves n CreateTags tokens of j's account-region, however far ahead they are
// due, and waits until they are (almost) due, without the job's slot when that is longer
// than admitWait. It returns the context to make the calls under — the tokens prepaid;
// any other token (a retry's) waited for in the slot at most admitWait — and the release
// of the tokens left unused; on an error (ctx ended) nothing is held.
func (s *snapshots) tagPace(ctx context.Context, j job.Job, n int) (context.Context, func(), error) {
	ctx = limit.WithMaxWait(ctx, admitWait)
	if s.lim == nil || n <= 0 {
		return ctx, func() {}, nil
	}
	ctx, release, wait, _ := s.lim.Admit(ctx, j.Account, j.Region, []limit.Need{{Action: "CreateTags", N: n}}, math.MaxInt64)
	if wait <= admitWait {
		return ctx, release, nil
	}
	idle(ctx) // only waiting for tokens: the slot can start another job
	t := time.NewTimer(wait - admitWait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if err := resume(ctx); err != nil {
		release()
		return nil, nil, err
	}
	return ctx, release, nil
}

// joinErr is errors.Join of a and b, or the one that is not nil as it is.
func joinErr(a, b error) error {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return errors.Join(a, b)
}
