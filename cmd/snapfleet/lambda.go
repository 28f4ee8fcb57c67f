package main

import (
	"context"
	"fmt"
	"io"
	"os"

	awslambda "github.com/aws/aws-lambda-go/lambda"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/lambda"
)

// envRuntimeAPI is set by the AWS Lambda runtime (provided.al2023) for its bootstrap.
const envRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"

// Lambda mode: the same binary, started by the Lambda runtime as `bootstrap` (the runtime
// sets AWS_LAMBDA_RUNTIME_API) or as `snapfleet lambda` (an emulator, a container image
// with its own entrypoint), serves the handler SNAPFLEET_LAMBDA names instead of the
// command line: see internal/lambda and deploy/README.md.
//
// It is entered from init, before the command tree is built, because the runtime starts
// the binary with no arguments: nothing else of the command line applies in Lambda mode.
func init() {
	args := os.Args[1:]
	if os.Getenv(envRuntimeAPI) == "" && (len(args) == 0 || args[0] != "lambda") {
		return
	}
	os.Exit(lambdaMain(context.Background(), args, os.Getenv, os.Stderr))
}

// lambdaMain checks the environment and serves the Lambda handler until the runtime stops
// the process. A bad setting exits 2 with a one-line reason naming the variable.
func lambdaMain(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintln(stderr, "snapfleet lambda: "+oneLine(fmt.Sprintf(format, a...)))
		return code
	}
	if len(args) > 1 || (len(args) == 1 && args[0] != "lambda") {
		return fail(exitUsage, "takes no arguments in Lambda mode, got %q", args)
	}
	if getenv(envRuntimeAPI) == "" {
		return fail(exitUsage, "%s is not set: run it under the Lambda runtime or an emulator of its API", envRuntimeAPI)
	}
	s, err := lambda.FromEnv(getenv)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	s.AWS, err = cloud.LoadAWS(ctx)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	f, err := lambda.New(ctx, s)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	defer f.Close()
	s.Log.Info().Str("mode", s.Mode).Str("queue", s.Queue).Msg("serving Lambda invocations")
	awslambda.StartWithOptions(f.Handler(), awslambda.WithContext(ctx))
	return exitOK // StartWithOptions returns only if the runtime API goes away
}
