package config

import (
	"strings"
	"testing"
	"time"
)

func appPolicy(hooks string) string {
	return policy("    retain: {max_age: 1d}\n    consistency: application\n" + hooks)
}

// TestHooksValid: the forms of consistency: application and its hooks that load, with
// their defaults; application policies snapshot per instance.
func TestHooksValid(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader(appPolicy("")))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policies[0]
	h := p.HookSet()
	if !p.PerInstance() || !p.Application() || h.Freeze() != 10*time.Second || h.SkipOnPreFailure() ||
		h.Pre.DocumentName() != DocumentShell || h.Pre.HookTimeout() != time.Minute {
		t.Errorf("defaults: per instance %v, application %v, max_freeze %s, skip %v, document %s, timeout %s",
			p.PerInstance(), p.Application(), h.Freeze(), h.SkipOnPreFailure(), h.Pre.DocumentName(), h.Pre.HookTimeout())
	}
	c, err = Parse(strings.NewReader(appPolicy(`    hooks:
      pre: {commands: ["systemctl stop db"], timeout: 2m}
      post: {document: My-Thaw, parameters: {mode: [fast]}}
      on_pre_failure: skip
      max_freeze: 30s
`)))
	if err != nil {
		t.Fatal(err)
	}
	h = c.Policies[0].HookSet()
	if !h.SkipOnPreFailure() || h.Freeze() != 30*time.Second || h.Pre.HookTimeout() != 2*time.Minute ||
		h.Pre.Params()["commands"][0] != "systemctl stop db" || h.Post.DocumentName() != "My-Thaw" || h.Post.Params()["mode"][0] != "fast" {
		t.Errorf("hooks = %+v", h)
	}
	for _, hooks := range []string{"    hooks: {stop_instance: true}\n", "    hooks: {stop_instance: true, stop_timeout: 5m}\n",
		"    hooks: {vss: {copy_only: true}}\n", "    exclude_boot: true\n"} {
		if _, err := Parse(strings.NewReader(appPolicy(hooks))); err != nil {
			t.Errorf("%q: %v", hooks, err)
		}
	}
}

// TestHooksInvalid: every bad hooks key is a one-line error naming it.
func TestHooksInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, doc, want string }{
		{"hooks without application", policy("    retain: {max_age: 1d}\n    consistency: instance\n    hooks: {stop_instance: true}\n"), "policies[p].hooks: only with consistency: application"},
		{"unknown hooks key", appPolicy("    hooks: {freeze: true}\n"), "policies[0].hooks.freeze: unknown key"},
		{"unknown hook key", appPolicy("    hooks: {pre: {script: x}}\n"), "policies[0].hooks.pre.script: unknown key"},
		{"bad on_pre_failure", appPolicy("    hooks: {on_pre_failure: retry}\n"), `policies[p].hooks.on_pre_failure: "retry"`},
		{"max_freeze too short", appPolicy("    hooks: {max_freeze: 10ms}\n"), "policies[p].hooks.max_freeze: 10ms"},
		{"max_freeze too long", appPolicy("    hooks: {max_freeze: 1h}\n"), "policies[p].hooks.max_freeze: 1h0m0s"},
		{"stop and pre", appPolicy("    hooks: {stop_instance: true, pre: {commands: [x]}}\n"), "policies[p].hooks: choose one"},
		{"vss and stop", appPolicy("    hooks: {stop_instance: true, vss: {}}\n"), "policies[p].hooks: choose one"},
		{"stop_timeout alone", appPolicy("    hooks: {stop_timeout: 1m}\n"), "policies[p].hooks.stop_timeout: only with stop_instance"},
		{"stop_timeout short", appPolicy("    hooks: {stop_instance: true, stop_timeout: 1s}\n"), "policies[p].hooks.stop_timeout: 1s"},
		{"bad document", appPolicy("    hooks: {pre: {document: \"a b\"}}\n"), `policies[p].hooks.pre.document: "a b"`},
		{"commands of another document", appPolicy("    hooks: {pre: {document: My-Doc, commands: [x]}}\n"), "policies[p].hooks.pre.commands: only with document"},
		{"commands twice", appPolicy("    hooks: {pre: {commands: [x], parameters: {commands: [y]}}}\n"), "policies[p].hooks.pre.parameters.commands: given twice"},
		{"shell without commands", appPolicy("    hooks: {post: {timeout: 5s}}\n"), "policies[p].hooks.post.commands: AWS-RunShellScript needs commands"},
		{"empty command", appPolicy("    hooks: {pre: {commands: [\" \"]}}\n"), "policies[p].hooks.pre.commands[0]: empty"},
		{"bad parameter", appPolicy("    hooks: {pre: {document: My-Doc, parameters: {\"a-b\": [x]}}}\n"), `policies[p].hooks.pre.parameters: "a-b"`},
		{"timeout too long", appPolicy("    hooks: {pre: {commands: [x], timeout: 2h}}\n"), "policies[p].hooks.pre.timeout: 2h0m0s"},
		{"vss timeout", appPolicy("    hooks: {vss: {timeout: 10ms}}\n"), "policies[p].hooks.vss.timeout: 10ms"},
		{"unknown consistency", policy("    retain: {max_age: 1d}\n    consistency: app\n"), "volume, instance or application"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error = %v, want one line containing %q", err, tt.want)
			}
		})
	}
}

// FuzzHooks: any hooks mapping either loads and validates, or fails with one line.
func FuzzHooks(f *testing.F) {
	for _, s := range []string{"{}", "{stop_instance: true}", "{vss: {}}", "{pre: {commands: [a]}, post: {commands: [b]}}",
		"{pre: {document: X-Y, parameters: {a: [b]}, timeout: 5s}, on_pre_failure: skip, max_freeze: 3s}", "{pre: 1}", "[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hooks string) {
		c, err := Parse(strings.NewReader(appPolicy("    hooks: " + hooks + "\n")))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse succeeded but Validate fails: %v", err)
		}
	})
}
