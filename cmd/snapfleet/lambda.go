package main

import (
	"context"
	"os"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/cloud"
)

// envRuntimeAPI is set by the AWS Lambda runtime (provided.al2023) for its bootstrap.
const envRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"

// newLambdaCmd is Lambda mode: the same binary, started by the Lambda runtime as
// `bootstrap` (the runtime sets AWS_LAMBDA_RUNTIME_API and passes no arguments, which main
// turns into `lambda`) or as `snapfleet lambda` (an emulator, a container image with its
// own entrypoint), serves the handler SNAPFLEET_LAMBDA names: see lambdafn.go and
// deploy/README.md. Its settings come from the environment, not from flags.
func newLambdaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lambda",
		Short: "Serve Lambda invocations (SNAPFLEET_LAMBDA=plan|work, SNAPFLEET_QUEUE, SNAPFLEET_CONFIG[_YAML])",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveLambda(cmd.Context(), os.Getenv)
		},
	}
}

// serveLambda checks the environment and serves the Lambda handler until the runtime stops
// the process. A bad setting is a usage error naming the variable.
func serveLambda(ctx context.Context, getenv func(string) string) error {
	if getenv(envRuntimeAPI) == "" {
		return usagef("lambda: %s is not set: run it under the Lambda runtime or an emulator of its API", envRuntimeAPI)
	}
	s, err := lambdaFromEnv(getenv)
	if err != nil {
		return usagef("lambda: %v", err)
	}
	s.AWS, err = cloud.LoadAWS(ctx)
	if err != nil {
		return usagef("lambda: %v", err)
	}
	f, err := newLambdaFunction(ctx, s)
	if err != nil {
		return usagef("lambda: %v", err)
	}
	defer f.Close()
	s.Log.Info().Str("mode", s.Mode).Str("queue", s.Queue).Msg("serving Lambda invocations")
	awslambda.StartWithOptions(f.Handler(), awslambda.WithContext(ctx))
	return nil // StartWithOptions returns only if the runtime API goes away
}
