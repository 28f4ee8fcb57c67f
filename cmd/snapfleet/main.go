// Command snapfleet keeps every EBS volume of an AWS fleet backed up and prunes expired
// snapshots: `plan` enqueues jobs, `work` consumes them, `run` does both in one process on
// an embedded queue. See README.md and DESIGN.md §2 for the command-line contract.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	args := os.Args[1:]
	if os.Getenv(envRuntimeAPI) != "" && len(args) == 0 {
		args = []string{"lambda"} // started by the Lambda runtime as bootstrap
	}
	stopProfiles := startProfiles(os.Stderr)
	code := execute(ctx, args, os.Stdout, os.Stderr)
	stopProfiles()
	stop()
	os.Exit(code)
}

// Exit codes of DESIGN.md §2.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError is bad usage, a bad config or bad input: exit 2, nothing done.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// errPartial means the command finished but some of its work failed: exit 1. The
// summary already says what.
var errPartial = errors.New("finished with failures")

// execute runs the command line and returns the exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root, started := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := explainAWSSetup(root.ExecuteContext(ctx))
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errPartial):
		return exitFailure
	case errors.As(err, &ue), !*started:
		// Errors before a command starts (unknown command, bad flag) are usage errors too.
		fmt.Fprintln(stderr, "snapfleet: "+oneLine(err.Error()))
		return exitUsage
	default:
		fmt.Fprintln(stderr, "snapfleet: "+oneLine(err.Error()))
		return exitFailure
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
