package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// withVSS makes a Windows instance's snapshots with VSS: the AWSEC2-CreateVssSnapshot
// document freezes the VSS writers and calls CreateSnapshots on the instance itself,
// writing the tags and the description it is given — the job's key and its set id among
// them, so that a retried job finds the snapshots by its key, and duplicates are told
// apart by the keeper rule, as for the worker's own CreateSnapshots. (DLM's
// AWSEC2-VssInstallAndSnapshot is a pre script for DLM's own snapshots, which DLM tags:
// it cannot carry a job key.) When the document fails, the fallback is the worker's own
// crash-consistent CreateSnapshots, as for a failed pre hook.
func (s *snapshots) withVSS(ctx context.Context, c createStart, j job.Job, in *ec2.CreateSnapshotsInput, create func(context.Context) error) (run hookRun, err error) {
	h := c.policy.HookSet()
	api, err := s.ssmOf(j)
	if err != nil {
		return run, err
	}
	hk := hook{name: "vss", document: config.DocumentVSS, timeout: h.VSSTimeout(), params: map[string][]string{
		"ExcludeBootVolume": {word(aws.ToBool(in.InstanceSpecification.ExcludeBootVolume))},
		"CopyOnly":          {word(h.VSS.CopyOnly)},
		"NoWriters":         {word(h.VSS.NoWriters)},
		"CreateAmi":         {"False"},
		"description":       {aws.ToString(in.Description)},
		"tags":              {vssTags(in.TagSpecifications)},
	}}
	id, err := s.sendHook(ctx, api, j, hk)
	if err == nil {
		err = s.awaitHook(ctx, api, j, id, hk)
	}
	if err != nil {
		why, ferr := s.preFailed(ctx, j, h, err)
		if ferr != nil {
			return run, ferr
		}
		run.consistency, run.fallback = tag.Crash, why
		setConsistency(in, tag.Crash)
		return run, create(ctx)
	}
	run.consistency = tag.Application
	k, err := s.jobSnapshots(ctx, c.api, j)
	if err != nil {
		return run, fail(fmt.Errorf("looking for the VSS snapshots of job %s: %w", j.Key, err))
	}
	found := k.found()
	if len(found) == 0 {
		return run, fail(errors.New(config.DocumentVSS + " succeeded but no snapshot carries the job's key"))
	}
	run.vss = &ec2.CreateSnapshotsOutput{}
	for _, sn := range found {
		run.vss.Snapshots = append(run.vss.Snapshots, types.SnapshotInfo{SnapshotId: sn.SnapshotId, VolumeId: sn.VolumeId, StartTime: sn.StartTime})
	}
	return run, nil
}

// word is a bool as the VSS document's parameters spell it.
func word(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// vssTags is the document's tags parameter, "Key=k,Value=v;Key=…", with
// snapfleet:consistency application: the document splits on ',' and ';', so they are
// replaced by '_' in values (the job key and snapfleet's tags have none).
func vssTags(specs []types.TagSpecification) string {
	clean := strings.NewReplacer(",", "_", ";", "_")
	var parts []string
	for _, ts := range specs {
		for _, t := range ts.Tags {
			parts = append(parts, "Key="+clean.Replace(aws.ToString(t.Key))+",Value="+clean.Replace(aws.ToString(t.Value)))
		}
	}
	parts = append(parts, "Key="+tag.Consistency+",Value="+tag.Application)
	return strings.Join(parts, ";")
}
