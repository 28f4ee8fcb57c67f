package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/snapfleet/snapfleet/internal/config"
)

// TestVersion: the binary `go build` made says its version, commit and Go version, as
// its own build info has them (commit "unknown" when the build was not stamped: a
// worktree, -buildvcs=false), by --version and by `version`, the same line.
func TestVersion(t *testing.T) {
	t.Parallel()
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	commit := "unknown"
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			commit = s.Value
		}
	}
	var lines []string
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(binary, args...).Output()
		if err != nil {
			t.Fatalf("snapfleet %v: %v", args, err)
		}
		lines = append(lines, string(out))
	}
	want := regexp.MustCompile(`^snapfleet \S+ \(commit ` + regexp.QuoteMeta(commit) + `(-dirty)?, ` + regexp.QuoteMeta(bi.GoVersion) + `\)\n$`)
	if !want.MatchString(lines[0]) || lines[1] != lines[0] {
		t.Errorf("--version said %q and version %q, want %s", lines[0], lines[1], want)
	}
	out, err := exec.Command(binary, "version", "--output", "json").Output()
	var v buildVersion
	if err != nil || json.Unmarshal(out, &v) != nil || v.Go != bi.GoVersion || !strings.HasPrefix(v.Commit, commit) {
		t.Errorf("version --output json: %v %s", err, out)
	}
}

// TestReadVersion: what each kind of build info becomes.
func TestReadVersion(t *testing.T) {
	t.Parallel()
	rev := "e805d08094f674207c94907a0c193e5eda9dcaaa"
	stamped := func(version, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: version}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want buildVersion
	}{
		{"no build info", nil, false, buildVersion{"devel", "unknown", runtime.Version()}},
		{"go run", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true,
			buildVersion{"devel", "unknown", "go1.26.8"}},
		{"go build, clean", stamped("v0.0.0-20261202055208-e805d08094f6", "false"), true,
			buildVersion{"v0.0.0-20261202055208-e805d08094f6", rev, "go1.26.8"}},
		{"go build, modified", stamped("v0.0.0-20261202055208-e805d08094f6+dirty", "true"), true,
			buildVersion{"v0.0.0-20261202055208-e805d08094f6+dirty", rev + "-dirty", "go1.26.8"}},
		{"tagged release", stamped("v1.2.3", "false"), true, buildVersion{"v1.2.3", rev, "go1.26.8"}},
	} {
		if got := readVersion(tc.info, tc.ok); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestLogFormatChoice: by default logs are console lines on a terminal and JSON
// otherwise; --log-format json or console forces either.
func TestLogFormatChoice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format   string
		terminal bool
		console  bool
	}{
		{"auto", true, true}, {"auto", false, false},
		{"json", true, false}, {"json", false, false},
		{"console", true, true}, {"console", false, true},
	} {
		if got := consoleLogs(tc.format, tc.terminal); got != tc.console {
			t.Errorf("--log-format %s, terminal %v: console %v, want %v", tc.format, tc.terminal, got, tc.console)
		}
	}
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(file) || isTerminal(&bytes.Buffer{}) || isTerminal(null) {
		t.Error("a file, a buffer or /dev/null is taken for a terminal")
	}
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	defer pty.Close()
	if !isTerminal(pty) {
		t.Error("a pseudo-terminal is not taken for a terminal")
	}
}

// TestNoCredentials: with no credentials anywhere, a command says so in one line — where
// the SDK looked and what to set — instead of the SDK's chain of errors; it fails fast
// (the instance metadata is off) and names the profile it read.
func TestNoCredentials(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	env := []string{"HOME=" + home, "AWS_EC2_METADATA_DISABLED=true", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL=http://127.0.0.1:9"} // were credentials found after all, no call would reach AWS
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".aws", "config"), []byte("[profile dev]\nregion = eu-west-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		env     string
		profile string
	}{
		{[]string{"plan", "--dry-run"}, "", "default"},
		{[]string{"run", "--dry-run", "--queue", "file:" + filepath.Join(home, "q.db")}, "", "default"},
		{[]string{"dlq", "list", "--queue", "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"}, "", "default"},
		{[]string{"plan", "--dry-run"}, "AWS_PROFILE=dev", "dev"},
	} {
		cmd := exec.Command(binary, tc.args...)
		cmd.Env = append(env, tc.env)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
			t.Errorf("%v: %v, want exit %d; stderr: %s", tc.args, err, exitFailure, stderr.String())
		}
		msg := stderr.String()
		if strings.Count(msg, "\n") != 1 {
			t.Errorf("%v: stderr is not one line: %q", tc.args, msg)
		}
		for _, w := range []string{"snapfleet: no AWS credentials found", `profile "` + tc.profile + `"`,
			filepath.Join(home, ".aws", "credentials"), "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: stderr %q does not say %q", tc.args, msg, w)
			}
		}
		if strings.Contains(msg, "ec2imds") || strings.Contains(msg, "operation error") {
			t.Errorf("%v: stderr still has the SDK's chain: %q", tc.args, msg)
		}
	}
}

// TestNoRegion: credentials but no region anywhere (neither the config's regions nor
// AWS_REGION): exit 2 and one line saying what to set, before any AWS call.
func TestNoRegion(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	// No region in the config either; a closed loopback endpoint, so that nothing this
	// test does can leave the machine.
	cmd := exec.Command(binary, "plan", "--dry-run")
	cmd.Env = []string{"HOME=" + home, "AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_ENDPOINT_URL=http://127.0.0.1:1"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	msg := stderr.String()
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || strings.Count(msg, "\n") != 1 ||
		!strings.Contains(msg, "no region: set regions in the config, or AWS_REGION") || strings.Contains(msg, "operation error") {
		t.Errorf("%v; stderr %q, want exit 2 and one line: no region: set regions in the config, or AWS_REGION", err, msg)
	}
}

// TestExplainAWSSetupOnlyMissing: a role that cannot be assumed (credentials exist) is
// not reported as missing credentials; a missing one keeps its exit code's kind.
func TestExplainAWSSetupOnlyMissing(t *testing.T) {
	t.Parallel()
	denied := errors.New("operation error EC2: DescribeInstances, get identity: get credentials: failed to refresh cached credentials, " +
		"operation error STS: AssumeRole, https response error StatusCode: 403, api error AccessDenied: not authorized")
	if got := explainAWSSetup(denied); got != denied {
		t.Errorf("AssumeRole denied became %v", got)
	}
	missing := usageError{errors.New("lambda: get credentials: failed to refresh cached credentials, no EC2 IMDS role found, operation error ec2imds")}
	got := explainAWSSetup(missing)
	var ue usageError
	if !strings.HasPrefix(got.Error(), "no AWS credentials found") || !errors.As(got, &ue) {
		t.Errorf("missing credentials: %v (usage error kept: %v)", got, errors.As(got, &ue))
	}
}

// TestConfigCheckAndExample: `config example` prints the embedded example; `config check`
// finds it valid and says what the config holds, in text or JSON, without an AWS call
// (the endpoint points nowhere and there are no credentials).
func TestConfigCheckAndExample(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	run := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := execute(context.Background(), args, &out, &errb); code != want || errb.Len() != 0 {
			t.Fatalf("snapfleet %v: exit %d, want %d; stderr: %s", args, code, want, errb.String())
		}
		return out.String()
	}
	example := run(0, "config", "example")
	if example != config.Example {
		t.Fatalf("config example printed something else than the embedded example:\n%s", example)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ex := write("snapfleet.yaml", example)
	two := write("two.yaml", "regions: [us-east-1, eu-west-1]\naccounts:\n  - id: \"111111111111\"\n  - id: \"222222222222\"\n"+
		"policies:\n  - name: a\n    retain: {keep_last: 1}\n  - name: b\n    retain: {keep_last: 1}\n")
	org := write("org.yaml", "accounts:\n  organization: {role_name: snapfleet-member}\n")
	for path, want := range map[string]string{
		ex:  "config " + ex + ": OK: 1 policy (daily), the caller's own account, the SDK's region\n",
		two: "config " + two + ": OK: 2 policies (a, b), 2 accounts, 2 regions (us-east-1, eu-west-1)\n",
		org: "config " + org + ": OK: 1 policy (default), accounts from the organization, the SDK's region\n",
	} {
		if got := run(0, "config", "check", "--config", path); got != want {
			t.Errorf("config check said %q, want %q", got, want)
		}
	}
	var s configSummary
	if err := json.Unmarshal([]byte(run(0, "config", "check", "--config", two, "--output", "json")), &s); err != nil ||
		s.Accounts != 2 || len(s.Policies) != 2 || len(s.Regions) != 2 {
		t.Errorf("config check --output json: %+v, %v", s, err)
	}
}
