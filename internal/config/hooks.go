package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ConsistencyApplication snapshots an instance with CreateSnapshots between the pre and
// post hooks of the policy (SSM Run Command), or with the instance stopped
// (hooks.stop_instance), or with Windows VSS (hooks.vss).
const ConsistencyApplication = "application"

// What hooks.on_pre_failure can say.
const (
	// PreFailureCrash: the pre hook failed, timed out or could not run — snapshot anyway,
	// tagged snapfleet:consistency=crash, and count a fallback (the default).
	PreFailureCrash = "crash_consistent"
	// PreFailureSkip: no snapshot; the job fails and is retried (or, on an instance that
	// is not an SSM managed instance, is skipped with reason not_managed).
	PreFailureSkip = "skip"
)

// Defaults and bounds of hooks.
const (
	DefaultHookTimeout = 60 * time.Second
	// MaxHookTimeout bounds a hook's timeout: the worker waits no longer for it.
	MaxHookTimeout = 30 * time.Minute
	// DefaultMaxFreeze is how long the default pre script lets a filesystem stay frozen
	// before its watchdog thaws it.
	DefaultMaxFreeze = 10 * time.Second
	MaxMaxFreeze     = 10 * time.Minute
	// DefaultStopTimeout bounds each wait of a cold backup (stopped, running).
	DefaultStopTimeout = 10 * time.Minute
	// DocumentShell is the SSM document of commands on Linux; DocumentPowerShell on Windows.
	DocumentShell      = "AWS-RunShellScript"
	DocumentPowerShell = "AWS-RunPowerShellScript"
	// DocumentVSS makes VSS-consistent snapshots of a Windows instance (hooks.vss).
	DocumentVSS = "AWSEC2-CreateVssSnapshot"
)

// Hooks says how a policy with consistency: application makes its snapshots consistent.
// One of three ways: pre and post hooks around CreateSnapshots (the default Linux freeze
// and thaw when neither is given), stop_instance (a cold backup), or vss (Windows).
type Hooks struct {
	Pre  *Hook `yaml:"pre"`
	Post *Hook `yaml:"post"`
	// OnPreFailure is PreFailureCrash (default, also when empty) or PreFailureSkip.
	OnPreFailure string `yaml:"on_pre_failure"`
	// MaxFreeze bounds the default pre script's freeze: its watchdog thaws after it.
	MaxFreeze Duration `yaml:"max_freeze"`
	// StopInstance: stop the instance, snapshot it, start it again (a cold backup).
	StopInstance bool `yaml:"stop_instance"`
	// StopTimeout bounds the waits for stopped and for running; default 10m.
	StopTimeout Duration `yaml:"stop_timeout"`
	// VSS: the snapshots are made on the Windows instance by AWSEC2-CreateVssSnapshot,
	// which writes the job's tags on them.
	VSS *VSS `yaml:"vss"`
}

// VSS are the options of the AWSEC2-CreateVssSnapshot document.
type VSS struct {
	// CopyOnly keeps SQL Server's differential backup chain (the document's CopyOnly).
	CopyOnly bool `yaml:"copy_only"`
	// NoWriters leaves the application VSS writers out (the document's NoWriters).
	NoWriters bool `yaml:"no_writers"`
	// Timeout bounds the wait for the command; default 60s.
	Timeout Duration `yaml:"timeout"`
}

// Hook is one SSM Run Command: a document and its parameters, or commands for
// AWS-RunShellScript / AWS-RunPowerShellScript, and how long the worker waits for it.
type Hook struct {
	// Document is the SSM document's name or ARN; default AWS-RunShellScript.
	Document   string              `yaml:"document"`
	Parameters map[string][]string `yaml:"parameters"`
	// Commands is the commands parameter of AWS-RunShellScript or AWS-RunPowerShellScript.
	Commands []string `yaml:"commands"`
	// Timeout bounds the wait for the invocation; default 60s.
	Timeout Duration `yaml:"timeout"`
}

// Application reports whether the policy makes application-consistent snapshots.
func (p Policy) Application() bool { return p.Consistency == ConsistencyApplication }

// HookTimeout is the effective timeout of h (nil: the default).
func (h *Hook) HookTimeout() time.Duration {
	if h == nil || h.Timeout == 0 {
		return DefaultHookTimeout
	}
	return time.Duration(h.Timeout)
}

// DocumentName is the document h runs: its own, else AWS-RunShellScript.
func (h *Hook) DocumentName() string {
	if h == nil || h.Document == "" {
		return DocumentShell
	}
	return h.Document
}

// Params are the parameters SendCommand gets: Parameters, plus commands when set.
func (h *Hook) Params() map[string][]string {
	out := map[string][]string{}
	if h == nil {
		return out
	}
	for k, v := range h.Parameters {
		out[k] = v
	}
	if len(h.Commands) > 0 {
		out["commands"] = h.Commands
	}
	return out
}

// Freeze is the effective max_freeze.
func (h Hooks) Freeze() time.Duration {
	if h.MaxFreeze == 0 {
		return DefaultMaxFreeze
	}
	return time.Duration(h.MaxFreeze)
}

// StopWait is the effective stop_timeout.
func (h Hooks) StopWait() time.Duration {
	if h.StopTimeout == 0 {
		return DefaultStopTimeout
	}
	return time.Duration(h.StopTimeout)
}

// SkipOnPreFailure reports whether a failed pre hook means no snapshot.
func (h Hooks) SkipOnPreFailure() bool { return h.OnPreFailure == PreFailureSkip }

// VSSTimeout is the effective vss.timeout.
func (h Hooks) VSSTimeout() time.Duration {
	if h.VSS == nil || h.VSS.Timeout == 0 {
		return DefaultHookTimeout
	}
	return time.Duration(h.VSS.Timeout)
}

// Documents are the SSM documents the policy sends (for the IAM check): none for a cold
// backup.
func (h Hooks) Documents() []string {
	switch {
	case h.StopInstance:
		return nil
	case h.VSS != nil:
		return []string{DocumentVSS}
	}
	return []string{h.Pre.DocumentName(), h.Post.DocumentName()}
}

var (
	documentRE  = regexp.MustCompile(`^([a-zA-Z0-9_\-.]{3,128}|arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:document/[a-zA-Z0-9_\-.]{3,128})$`)
	parameterRE = regexp.MustCompile(`^[a-zA-Z0-9_]{1,64}$`)
)

// validateHooks checks consistency: application's hooks; key is the policy's key path.
func (p Policy) validateHooks(key string) error {
	h := p.Hooks
	if h == nil {
		return nil
	}
	key += ".hooks"
	if !p.Application() {
		return fmt.Errorf("%s: only with consistency: application", key)
	}
	switch h.OnPreFailure {
	case "", PreFailureCrash, PreFailureSkip:
	default:
		return fmt.Errorf("%s.on_pre_failure: %q is not crash_consistent or skip", key, h.OnPreFailure)
	}
	if h.MaxFreeze != 0 && (h.MaxFreeze < Duration(time.Second) || h.MaxFreeze > Duration(MaxMaxFreeze)) {
		return fmt.Errorf("%s.max_freeze: %s is not between 1s and %s", key, h.MaxFreeze, MaxMaxFreeze)
	}
	if h.StopTimeout != 0 && h.StopTimeout < Duration(10*time.Second) {
		return fmt.Errorf("%s.stop_timeout: %s is shorter than 10s", key, h.StopTimeout)
	}
	if !h.StopInstance && h.StopTimeout != 0 {
		return fmt.Errorf("%s.stop_timeout: only with stop_instance: true", key)
	}
	ways := 0
	for _, on := range []bool{h.Pre != nil || h.Post != nil, h.StopInstance, h.VSS != nil} {
		if on {
			ways++
		}
	}
	if ways > 1 {
		return fmt.Errorf("%s: choose one of pre/post, stop_instance and vss", key)
	}
	if h.VSS != nil {
		if err := checkTimeout(key+".vss.timeout", h.VSS.Timeout); err != nil {
			return err
		}
	}
	for _, x := range []struct {
		name string
		h    *Hook
	}{{"pre", h.Pre}, {"post", h.Post}} {
		if err := x.h.validate(key + "." + x.name); err != nil {
			return err
		}
	}
	return nil
}

// validate checks one hook (nil: the default script).
func (h *Hook) validate(key string) error {
	if h == nil {
		return nil
	}
	if h.Document != "" && !documentRE.MatchString(h.Document) {
		return fmt.Errorf("%s.document: %q is not an SSM document name or ARN", key, h.Document)
	}
	doc := h.DocumentName()
	runs := doc == DocumentShell || doc == DocumentPowerShell
	switch {
	case len(h.Commands) > 0 && !runs:
		return fmt.Errorf("%s.commands: only with document %s or %s; give %s its parameters", key, DocumentShell, DocumentPowerShell, doc)
	case len(h.Commands) > 0 && h.Parameters["commands"] != nil:
		return fmt.Errorf("%s.parameters.commands: given twice (commands and parameters.commands)", key)
	case runs && len(h.Commands) == 0 && len(h.Parameters["commands"]) == 0:
		return fmt.Errorf("%s.commands: %s needs commands", key, doc)
	}
	for i, c := range h.Commands {
		if strings.TrimSpace(c) == "" {
			return fmt.Errorf("%s.commands[%d]: empty", key, i)
		}
	}
	for k := range h.Parameters {
		if !parameterRE.MatchString(k) {
			return fmt.Errorf("%s.parameters: %q is not a parameter name", key, k)
		}
	}
	return checkTimeout(key+".timeout", h.Timeout)
}

func checkTimeout(key string, d Duration) error {
	if d != 0 && (d < Duration(time.Second) || d > Duration(MaxHookTimeout)) {
		return fmt.Errorf("%s: %s is not between 1s and %s", key, d, MaxHookTimeout)
	}
	return nil
}

// HookSet is the policy's hooks, the defaults when it sets none.
func (p Policy) HookSet() Hooks {
	if p.Hooks == nil {
		return Hooks{}
	}
	return *p.Hooks
}
