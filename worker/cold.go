package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// coldBackup is createInstance for hooks.stop_instance: mark the instance (tag
// snapfleet:stopped-by, naming the job), stop it, wait until it is stopped, snapshot it,
// start it, wait until it runs, remove the mark. Whoever finds the mark — this job on any
// path, a retry after a crash, a later job — starts the instance again. An instance that
// was stopped already, without the mark, is snapshotted and left stopped.
func (s *snapshots) coldBackup(ctx context.Context, c createStart, j job.Job, inst types.Instance) (res Result, err error) {
	ours := tagMap(inst.Tags)[tag.StoppedBy] != ""
	defer func() {
		if ours {
			err = errors.Join(err, s.restart(ctx, c.api, j, c.policy))
		}
	}()
	c.started = func() error {
		if !ours {
			return nil
		}
		ours = false
		return s.restart(ctx, c.api, j, c.policy)
	}
	if c.found.exists() {
		serr := c.started()
		return Result{Action: Existed, Snapshot: c.found.first()}, joinErr(serr, s.tagVolumes(ctx, c.api, j, inst, c.found.found()))
	}
	// Nothing to snapshot (exclude tags): never stop the instance for it.
	if spec, err := s.instanceSpec(ctx, c.api, c.policy, inst); err != nil || spec == nil {
		return s.snapshotInstance(ctx, c, j, inst)
	}
	switch state := instanceState(inst); {
	case state == types.InstanceStateNameRunning:
		if !ours {
			if err := s.mark(ctx, c.api, j); err != nil {
				return Result{}, err
			}
			ours = true
		}
		if err := s.call(ctx, func(ctx context.Context) error {
			_, err := c.api.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{j.Instance}})
			return err
		}); err != nil {
			return Result{}, fail(fmt.Errorf("stopping instance %s: %w", j.Instance, err))
		}
	case state == types.InstanceStateNameStopped:
	case !ours:
		return Result{}, fail(fmt.Errorf("instance %s is %s: a cold backup starts from running or stopped", j.Instance, state))
	}
	if inst, err = s.waitState(ctx, c.api, j.Instance, types.InstanceStateNameStopped, c.policy); err != nil {
		return Result{}, err
	}
	return s.snapshotInstance(ctx, c, j, inst)
}

// instanceState is the instance's state name.
func instanceState(inst types.Instance) types.InstanceStateName {
	if inst.State == nil {
		return ""
	}
	return inst.State.Name
}

// mark tags the instance with the job's key before it is stopped.
func (s *snapshots) mark(ctx context.Context, api EC2, j job.Job) error {
	err := s.call(ctx, func(ctx context.Context) error {
		_, err := api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{j.Instance},
			Tags: []types.Tag{{Key: aws.String(tag.StoppedBy), Value: aws.String(j.Key)}}})
		return err
	})
	if err != nil {
		return fail(fmt.Errorf("marking instance %s before stopping it: %w", j.Instance, err))
	}
	return nil
}

// restart starts the instance a cold backup stopped — StartInstances with a context of
// its own, so that a cancelled job starts it too — waits until it runs and removes the
// mark. Until the mark is gone, a retry starts it again.
func (s *snapshots) restart(ctx context.Context, api EC2, j job.Job, p config.Policy) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err := s.call(sctx, func(ctx context.Context) error {
		_, err := api.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{j.Instance}})
		return err
	})
	if err != nil {
		s.log(j).Error().Err(err).Msg("starting the instance again failed; it keeps its snapfleet:stopped-by tag and a retry starts it")
		return fail(fmt.Errorf("starting instance %s again: %w", j.Instance, err))
	}
	if _, err := s.waitState(ctx, api, j.Instance, types.InstanceStateNameRunning, p); err != nil {
		return err
	}
	err = s.call(ctx, func(ctx context.Context) error {
		_, err := api.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{j.Instance},
			Tags: []types.Tag{{Key: aws.String(tag.StoppedBy)}}})
		return err
	})
	if err != nil {
		return fail(fmt.Errorf("removing the %s tag of instance %s: %w", tag.StoppedBy, j.Instance, err))
	}
	return nil
}

// waitState reads the instance until it is in state want, at most the policy's
// stop_timeout.
func (s *snapshots) waitState(ctx context.Context, api EC2, id string, want types.InstanceStateName, p config.Policy) (types.Instance, error) {
	wait := p.HookSet().StopWait()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	delay, last := 200*time.Millisecond, types.InstanceStateName("")
	for {
		inst, err := s.readInstance(ctx, api, id)
		if err == nil && instanceState(inst) == want {
			return inst, nil
		}
		if err == nil {
			last = instanceState(inst)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return types.Instance{}, fail(fmt.Errorf("instance %s is %s, not %s, after %s (last error: %v)", id, last, want, wait, err))
		case <-t.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}
