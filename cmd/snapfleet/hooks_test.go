package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/snapfleet/snapfleet/internal/tag"
)

// TestRunApplication: `snapfleet run` with a consistency: application policy, through
// moto: one snapshots.create per instance, the worker wired to SSM (a pre and a post
// command per instance, moto records them), every snapshot tagged application, and the
// summary's fallbacks and post_failures keys.
func TestRunApplication(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	if err := os.WriteFile(e.config, []byte(strings.Replace(testConfig, "policies:", "policies:\n  - name: app\n    consistency: application\n    select: {instance_tags: {App: \"yes\"}}\n    retain: {max_age: 7d}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ids, _ := e.instancesWithData(ctx, 2, map[string]string{"App": "yes"})
	r := e.jsonCLI(0, "run", "--queue", "file:"+t.TempDir()+"/q.db", "--now", e.at(0), "--allow-clock-skew")
	for path, want := range map[string]int{"work.fallbacks": 0, "work.post_failures": 0, "work.dead_lettered": 0} {
		if got := num(t, r, path); got != want {
			t.Errorf("%s = %d, want %d (%v)", path, got, want, r)
		}
	}
	out, err := ssm.NewFromConfig(e.moto.AWSConfig(t)).ListCommands(ctx, &ssm.ListCommandsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		var hooks []string
		for _, c := range out.Commands {
			if strings.Contains(aws.ToString(c.Comment), "/"+id+"/") {
				hooks = append(hooks, strings.Fields(aws.ToString(c.Comment))[1])
			}
		}
		if strings.Join(hooks, " ") != "pre post" {
			t.Errorf("instance %s: commands %v, want pre post", id, hooks)
		}
		snaps, err := e.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []types.Filter{
			{Name: aws.String("tag:" + tag.Instance), Values: []string{id}}, {Name: aws.String("tag:" + tag.Policy), Values: []string{"app"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(snaps.Snapshots) != 2 {
			t.Errorf("instance %s: %d snapshots of policy app, want 2", id, len(snaps.Snapshots))
		}
		for _, s := range snaps.Snapshots {
			got := ""
			for _, tg := range s.Tags {
				if aws.ToString(tg.Key) == tag.Consistency {
					got = aws.ToString(tg.Value)
				}
			}
			if got != tag.Application {
				t.Errorf("snapshot %s: %s %q, want application", aws.ToString(s.SnapshotId), tag.Consistency, got)
			}
		}
	}
}
