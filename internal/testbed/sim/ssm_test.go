package sim_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// TestSSM: the simulator's Run Command through the SDK: SendCommand records the command,
// its invocation on the instance succeeds at once (and says when), another instance's
// does not exist.
func TestSSM(t *testing.T) {
	t.Parallel()
	s, cfg := start(t)
	api := ssm.NewFromConfig(cfg)
	ctx := context.Background()
	out, err := api.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("AWS-RunShellScript"),
		InstanceIds: []string{"i-0000000000000001"}, Comment: aws.String("snapfleet pre k"),
		Parameters: map[string][]string{"commands": {"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Command.CommandId)
	inv, err := api.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(id), InstanceId: aws.String("i-0000000000000001")})
	if err != nil || inv.Status != ssmtypes.CommandInvocationStatusSuccess {
		t.Fatalf("invocation: %+v, %v", inv, err)
	}
	if _, err := api.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(id), InstanceId: aws.String("i-0000000000000002")}); code(t, err) != "InvocationDoesNotExist" {
		t.Errorf("another instance's invocation: %v", err)
	}
	cmds := s.Commands()
	if len(cmds) != 1 || cmds[0].ID != id || cmds[0].Comment != "snapfleet pre k" || !cmds[0].Succeeded.Equal(t0) ||
		cmds[0].Parameters["commands"][0] != "true" || cmds[0].Region != region {
		t.Errorf("commands %+v", cmds)
	}
}
