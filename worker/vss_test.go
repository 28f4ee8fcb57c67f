package worker

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// TestVSS: hooks.vss sends AWSEC2-CreateVssSnapshot with the job's tags and description;
// the document makes the snapshots on the instance (played here as the document does it,
// from the parameters sent), and the worker finds them by the job's key, tags their
// volumes, and a retry makes nothing more. The worker calls no CreateSnapshots itself.
func TestVSS(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	inst, _, _ := e.instanceWithData(t, 1)
	s, c := e.appHandlers(t, policyConfig(t, appPolicy+"    hooks: {vss: {copy_only: true}}\n"))
	var mu sync.Mutex
	var sent *ssm.SendCommandInput
	c.fake = func(ctx context.Context, op, hook string, params any) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		switch p := params.(type) {
		case *ssm.SendCommandInput:
			sent = p
		case *ssm.GetCommandInvocationInput:
			// The document: CreateSnapshots of the instance with its tags parameter.
			var tags []types.Tag
			for _, kv := range strings.Split(sent.Parameters["tags"][0], ";") {
				k, v, _ := strings.Cut(strings.TrimPrefix(kv, "Key="), ",Value=")
				tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
			}
			_, err := e.setup.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{
				InstanceSpecification: &types.InstanceSpecification{InstanceId: aws.String(inst)},
				Description:           aws.String(sent.Parameters["description"][0]),
				TagSpecifications:     []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: tags}},
			})
			if err != nil {
				return nil, err
			}
			return invocation(ssmtypes.CommandInvocationStatusSuccess, "Success", ""), nil
		}
		return nil, nil
	}
	j := instanceJob(inst, "app", appPeriod)
	res, err := s.createInstance(context.Background(), j)
	if err != nil || res.Action != Created {
		t.Fatalf("createInstance = %+v, %v", res, err)
	}
	if aws.ToString(sent.DocumentName) != config.DocumentVSS || sent.Parameters["CopyOnly"][0] != "True" ||
		sent.Parameters["CreateAmi"][0] != "False" || !strings.Contains(sent.Parameters["tags"][0], "Key="+tag.Job+",Value="+j.Key) {
		t.Errorf("sent %s %v", aws.ToString(sent.DocumentName), sent.Parameters)
	}
	if c.count("CreateSnapshots") != 0 || c.count("SendCommand post") != 0 {
		t.Errorf("calls %v: no CreateSnapshots and no post with VSS", c.seen())
	}
	snaps := e.byJob(t, j.Key)
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots carry the key, want 2", len(snaps))
	}
	for _, sn := range snaps {
		m := tagMap(sn.Tags)
		if m[tag.Consistency] != tag.Application || m[tag.Volume] != aws.ToString(sn.VolumeId) || m[tag.Policy] != "app" {
			t.Errorf("snapshot %s tags %v", aws.ToString(sn.SnapshotId), m)
		}
	}
	if res, err := s.createInstance(context.Background(), j); err != nil || res.Action != Existed || c.count("SendCommand vss") != 1 {
		t.Errorf("retry = %+v, %v after %d VSS commands; want existed, one command", res, err, c.count("SendCommand vss"))
	}
}
