package worker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/snapfleet/snapfleet/internal/tag"
)

const coldPolicy = appPolicy + "    hooks: {stop_instance: true}\n"

// instanceNow reads an instance's state and its snapfleet:stopped-by tag from moto.
func (e *motoEnv) instanceNow(t *testing.T, id string) (types.InstanceStateName, string) {
	t.Helper()
	out, err := e.setup.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	in := out.Reservations[0].Instances[0]
	return in.State.Name, tagMap(in.Tags)[tag.StoppedBy]
}

// TestColdBackup: hooks.stop_instance marks the instance with the job, stops it, waits,
// snapshots it (tagged application), starts it, waits, and removes the mark — in that
// order, through moto, before the snapshots' own tags; no SSM command is sent.
func TestColdBackup(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	inst, _, _ := e.instanceWithData(t, 1)
	s, c := e.appHandlers(t, policyConfig(t, coldPolicy))
	j := instanceJob(inst, "app", appPeriod)
	res, err := s.createInstance(context.Background(), j)
	if err != nil || res.Action != Created {
		t.Fatalf("createInstance = %+v, %v", res, err)
	}
	// The snapshots' own CreateTags come last: the instance runs again before they wait
	// for their bucket (tagPace).
	want := []string{"CreateTags", "StopInstances", "CreateSnapshots", "StartInstances", "DeleteTags", "CreateTags", "CreateTags"}
	if got := c.seen(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", c.seen(), want)
	}
	if state, mark := e.instanceNow(t, inst); state != types.InstanceStateNameRunning || mark != "" {
		t.Errorf("instance %s, mark %q; want running, no mark", state, mark)
	}
	if got := e.consistencyOf(t, j.Key); len(got) != 2 || got[0] != tag.Application {
		t.Errorf("snapfleet:consistency = %v, want application", got)
	}
}

// TestColdBackupStopped: an instance that was stopped already is snapshotted and not
// started.
func TestColdBackupStopped(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	inst, _, _ := e.instanceWithData(t, 1)
	if _, err := e.setup.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{inst}}); err != nil {
		t.Fatal(err)
	}
	s, c := e.appHandlers(t, policyConfig(t, coldPolicy))
	if res, err := s.createInstance(context.Background(), instanceJob(inst, "app", appPeriod)); err != nil || res.Action != Created {
		t.Fatalf("createInstance = %+v, %v", res, err)
	}
	if c.count("StopInstances")+c.count("StartInstances") != 0 {
		t.Errorf("calls %v: a stopped instance was stopped or started", c.seen())
	}
	if state, _ := e.instanceNow(t, inst); state != types.InstanceStateNameStopped {
		t.Errorf("instance %s, want stopped", state)
	}
}

// TestColdBackupRestarts: the instance ends running on every path — CreateSnapshots
// failing, and a worker killed while the instance was stopped (the mark is left, the
// retry finds it: with the snapshots made, or without).
func TestColdBackupRestarts(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	t.Run("CreateSnapshots fails", func(t *testing.T) {
		t.Parallel()
		inst, _, _ := e.instanceWithData(t, 1)
		s, c := e.appHandlers(t, policyConfig(t, coldPolicy))
		s.backoff = backoff{Base: time.Millisecond, Cap: time.Millisecond, Budget: time.Millisecond, SnoozeMin: time.Second}
		c.fake = func(_ context.Context, op, _ string, _ any) (any, error) {
			if op == "CreateSnapshots" {
				return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "boom"}
			}
			return nil, nil
		}
		if _, err := s.createInstance(context.Background(), instanceJob(inst, "app", appPeriod)); err == nil {
			t.Fatal("the job succeeded")
		}
		if state, mark := e.instanceNow(t, inst); state != types.InstanceStateNameRunning || mark != "" {
			t.Errorf("instance %s, mark %q; want running, no mark", state, mark)
		}
	})
	for _, snapped := range []bool{false, true} {
		name := "killed before the snapshots"
		if snapped {
			name = "killed after the snapshots"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inst, _, _ := e.instanceWithData(t, 1)
			j := instanceJob(inst, "app", appPeriod)
			s, c := e.appHandlers(t, policyConfig(t, coldPolicy))
			// What a worker killed while the instance was stopped leaves behind.
			e.fleet(t).Tag(context.Background(), inst, map[string]string{tag.StoppedBy: j.Key})
			if _, err := e.setup.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{inst}}); err != nil {
				t.Fatal(err)
			}
			if snapped {
				if _, err := e.setup.CreateSnapshots(context.Background(), &ec2.CreateSnapshotsInput{
					InstanceSpecification: &types.InstanceSpecification{InstanceId: aws.String(inst)},
					TagSpecifications:     tagSpec(j, s.cfg.Policies[0], s.now()),
				}); err != nil {
					t.Fatal(err)
				}
			}
			res, err := s.createInstance(context.Background(), j)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if want := map[bool]Action{false: Created, true: Existed}[snapped]; res.Action != want {
				t.Errorf("retry: %s, want %s", res.Action, want)
			}
			if state, mark := e.instanceNow(t, inst); state != types.InstanceStateNameRunning || mark != "" {
				t.Errorf("instance %s, mark %q; want running, no mark", state, mark)
			}
			if c.count("StopInstances") != 0 || c.count("StartInstances") != 1 {
				t.Errorf("calls %v, want one StartInstances and no stop", c.seen())
			}
		})
	}
}

// TestColdBackupExcluded: an instance the policy excludes is skipped without being
// stopped.
func TestColdBackupExcluded(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	inst, _, _ := e.instanceWithData(t, 1)
	e.fleet(t).Tag(context.Background(), inst, map[string]string{"skip": "yes"})
	s, c := e.appHandlers(t, policyConfig(t, coldPolicy+"    select: {exclude_tags: {skip: \"yes\"}}\n"))
	_, err := s.createInstance(context.Background(), instanceJob(inst, "app", appPeriod))
	if o, why, _ := outcomeOf(err); o != outSkip || why != "excluded" {
		t.Fatalf("outcome %v %q (%v), want skipped excluded", o, why, err)
	}
	if n := c.count("StopInstances") + c.count("StartInstances") + c.count("CreateTags"); n != 0 {
		t.Errorf("calls %v: an excluded instance was marked, stopped or started", c.seen())
	}
}
