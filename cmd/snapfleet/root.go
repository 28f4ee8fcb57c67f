package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/queue"
)

// globals are the flags every command shares.
type globals struct {
	configPath string
	now        string
	// nowAt is --now parsed (zero: the real clock); set once the flags are checked.
	nowAt     time.Time
	output    string
	logFormat string
	logLevel  string

	stdout, stderr io.Writer
	// display, when set, is the live progress on stderr (a terminal): logs go through it.
	display *display
}

// newRoot builds the command tree; *started turns true once a command's own checks begin.
func newRoot(stdout, stderr io.Writer) (*cobra.Command, *bool) {
	g := &globals{stdout: stdout, stderr: stderr}
	started := new(bool)
	root := &cobra.Command{
		Use:           "snapfleet",
		Short:         "Back up every EBS volume of an AWS fleet and prune expired snapshots",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			*started = true
			if cmd.Flags().NArg() > 0 {
				return usagef("%s takes no arguments, got %q", cmd.CommandPath(), cmd.Flags().Args())
			}
			switch g.output {
			case "text", "table", "json":
			case "html":
				if cmd.Name() != "report" {
					return usagef("--output: html is for report only; %s prints text or json", cmd.Name())
				}
			default:
				return usagef("--output: %q is not text or json (table is text)", g.output)
			}
			switch g.logFormat {
			case "auto", "json", "console":
			default:
				return usagef("--log-format: %q is not auto, json or console", g.logFormat)
			}
			if _, err := zerolog.ParseLevel(g.logLevel); err != nil || g.logLevel == "" {
				return usagef("--log-level: %q is not a level (debug, info, warn, error)", g.logLevel)
			}
			if f := cmd.Flags().Lookup("now"); f != nil && f.Changed {
				// Given, even as --now=, it must be a time in range: never the real clock by accident.
				t, err := config.ParseClock(g.now)
				if err != nil {
					return usagef("--now %q: %v", g.now, err)
				}
				g.nowAt = t
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.output, "output", "text", "result format: text or json (one JSON object on stdout)")
	pf.StringVar(&g.logFormat, "log-format", "auto", "log format on stderr: json, console, or auto (console on a terminal, else json)")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")

	root.Version = thisVersion().String()
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newPlanCmd(g), newWorkCmd(g), newRunCmd(g), newDLQCmd(g), newLambdaCmd(),
		newConfigCmd(g), newVersionCmd(g), newSnapshotsCmd(g), newRestoreCmd(g), newDrillCmd(g),
		newReportCmd(g), newAuditCmd(g))
	return root, started
}

// addConfigFlags adds the flags of commands that read the config and a clock.
func (g *globals) addConfigFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&g.configPath, "config", "", "config file (YAML); default: the built-in policy")
	cmd.Flags().StringVar(&g.now, "now", "", "replace the clock (RFC 3339), for planning and for the worker's re-checks")
}

func (g *globals) logger() zerolog.Logger {
	lvl, _ := zerolog.ParseLevel(g.logLevel)
	var w io.Writer = g.stderr
	if g.display != nil {
		w = g.display
	}
	if consoleLogs(g.logFormat, isTerminal(g.stderr)) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// consoleLogs reports whether logs are console lines: --log-format console, or auto
// (the default) on a terminal; JSON otherwise, for collectors.
func consoleLogs(format string, terminal bool) bool {
	return format == "console" || format == "auto" && terminal
}

// isTerminal reports whether w is a terminal (not a file, a pipe or /dev/null).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd())
}

// clock returns the --now time (checked by the root's PersistentPreRunE), or the real clock.
func (g *globals) clock() func() time.Time {
	if g.nowAt.IsZero() {
		return time.Now
	}
	t := g.nowAt
	return func() time.Time { return t }
}

// env is what a command needs from its flags: the config, the clock, AWS clients.
type env struct {
	cfg     *config.Config
	now     func() time.Time
	clients *cloud.Clients
	log     zerolog.Logger
}

func (g *globals) setup(ctx context.Context) (*env, error) {
	now := g.clock()
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return nil, usageError{err}
	}
	awsCfg, err := cloud.LoadAWS(ctx)
	if err != nil {
		return nil, usageError{err}
	}
	return &env{cfg: cfg, now: now, clients: cloud.NewClients(awsCfg, cfg), log: g.logger()}, nil
}

// checkQueue rejects a malformed --queue as bad usage, before any AWS call.
func checkQueue(url string) error {
	if err := queue.CheckURL(url); err != nil {
		return usagef("--queue: %v", err)
	}
	return nil
}

// openQueue opens --queue; a malformed address is a usage error.
func (e *env) openQueue(ctx context.Context, url string, visibility time.Duration) (queue.Queue, error) {
	if err := checkQueue(url); err != nil {
		return nil, err
	}
	q, err := queue.Open(ctx, url, queue.Options{AWS: e.clients.Config(), Visibility: visibility})
	if errors.Is(err, queue.ErrBadURL) || errors.Is(err, queue.ErrNoQueue) {
		return nil, usagef("--queue: %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening queue %s: %w", url, err)
	}
	return q, nil
}

// openJobs opens --queue as the jobs queue of plan, work or run: it must exist and move a
// message that fails every receive to a dead-letter queue (an SQS queue needs a
// RedrivePolicy; the embedded queue has its own), or a poison message would bounce
// forever. Either lack is bad usage, found before any job is sent or received.
func (e *env) openJobs(ctx context.Context, url string, visibility time.Duration) (queue.Queue, error) {
	q, err := e.openQueue(ctx, url, visibility)
	if err != nil {
		return nil, err
	}
	n, err := q.MaxReceive(ctx)
	switch class, _ := cloud.Classify(err); {
	case class == cloud.NotFound:
		err = usagef("--queue: queue %s does not exist", url)
	case err != nil:
		err = fmt.Errorf("reading the RedrivePolicy of queue %s: %w", url, err)
	case n == 0:
		err = usagef("--queue: queue %s has no RedrivePolicy: set one naming a dead-letter queue (deadLetterTargetArn) and a maxReceiveCount", url)
	}
	if err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

// printJSON writes v as the one JSON object of --output json.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
