// Package deploy holds snapfleet's deployment templates (CloudFormation/SAM, ECS,
// Kubernetes, the Dockerfile); it has no Go code. Its tests check that the IAM policies of
// the templates are exactly the least-privilege set README.md lists, and that each check of
// scripts/deploy-check.sh really runs: a broken copy of every file must fail it.
package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// templates are the CloudFormation templates; manifests the Kubernetes ones.
var (
	templates = []string{"hub.yaml", "member-role.yaml", "member-stackset.yaml", "member-events.yaml", "ecs-worker.yaml"}
	manifests = []string{"k8s/serviceaccount.yaml", "k8s/configmap.yaml", "k8s/deployment.yaml", "k8s/scaledobject.yaml"}
)

// statement is one IAM policy statement, read from a template.
type statement struct {
	Sid       string
	Effect    string
	Actions   []string
	Resources []*yaml.Node
	Condition *yaml.Node
}

// scalars returns the values of a scalar or a sequence of scalars (CloudFormation's
// !Sub, !Ref and !GetAtt are tagged scalars or sequences: their text is kept).
func scalars(n *yaml.Node) []string {
	switch {
	case n == nil:
		return nil
	case n.Kind == yaml.ScalarNode:
		return []string{n.Value}
	case n.Kind == yaml.SequenceNode:
		var out []string
		for _, c := range n.Content {
			out = append(out, scalars(c)...)
		}
		return out
	}
	return nil
}

func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// roles reads every AWS::IAM::Role of a template: its inline policies' statements, by
// logical id.
func roles(t *testing.T, file string) map[string][]statement {
	t.Helper()
	res := resources(t, file)
	out := map[string][]statement{}
	for i := 0; res != nil && i+1 < len(res.Content); i += 2 {
		id, r := res.Content[i].Value, res.Content[i+1]
		switch get(r, "Type").Value {
		case "AWS::IAM::Role":
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::UserPolicy", "AWS::IAM::User":
			t.Errorf("%s: %s is a %s: the check reads inline role policies only", file, id, get(r, "Type").Value)
			continue
		default:
			continue
		}
		out[id] = []statement{}
		for _, p := range get(get(r, "Properties"), "Policies").Content {
			for _, s := range get(get(p, "PolicyDocument"), "Statement").Content {
				st := statement{Effect: get(s, "Effect").Value, Actions: scalars(get(s, "Action")), Condition: get(s, "Condition")}
				if sid := get(s, "Sid"); sid != nil {
					st.Sid = sid.Value
				}
				if r := get(s, "Resource"); r != nil && r.Kind == yaml.SequenceNode {
					st.Resources = r.Content
				} else {
					st.Resources = []*yaml.Node{r}
				}
				if get(s, "NotAction") != nil || get(s, "NotResource") != nil {
					t.Errorf("%s: %s statement %q uses NotAction/NotResource", file, id, st.Sid)
				}
				out[id] = append(out[id], st)
			}
		}
	}
	return out
}

// readmeTable reads the least-privilege table of README.md: template → role → actions.
func readmeTable(t *testing.T) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	begin, end := strings.Index(s, "<!-- iam:begin -->"), strings.Index(s, "<!-- iam:end -->")
	if begin < 0 || end < begin {
		t.Fatal("README.md has no <!-- iam:begin --> ... <!-- iam:end --> table")
	}
	action := regexp.MustCompile("`([a-z0-9-]+:[A-Za-z0-9*]+)`")
	out := map[string]map[string][]string{}
	for _, line := range strings.Split(s[begin:end], "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 5 || !strings.HasSuffix(strings.TrimSpace(cells[1]), ".yaml") {
			continue
		}
		file, role := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		if out[file] == nil {
			out[file] = map[string][]string{}
		}
		for _, m := range action.FindAllStringSubmatch(cells[3], -1) {
			out[file][role] = append(out[file][role], m[1])
		}
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// TestIAMIsTheREADMEsLeastPrivilege: every role of every template allows exactly the
// actions README.md lists for it, no action is a wildcard, only Describe-type actions run
// on Resource "*", and nothing is denied-by-omission silently (a role missing from either
// side fails).
func TestIAMIsTheREADMEsLeastPrivilege(t *testing.T) {
	t.Parallel()
	table := readmeTable(t)
	starOK := map[string]bool{"ec2:DescribeInstances": true, "ec2:DescribeVolumes": true, "ec2:DescribeSnapshots": true, "ec2:DescribeImages": true, "ec2:DescribeSnapshotAttribute": true, "ec2:DescribeLockedSnapshots": true, "ecr:GetAuthorizationToken": true}
	seen := map[string]bool{}
	for _, file := range templates {
		for role, stmts := range roles(t, file) {
			seen[file+"/"+role] = true
			var allowed []string
			for _, st := range stmts {
				if st.Effect != "Allow" {
					continue
				}
				allowed = append(allowed, st.Actions...)
				for _, a := range st.Actions {
					if strings.Contains(a, "*") {
						t.Errorf("%s %s: action %q has a wildcard", file, role, a)
					}
					for _, r := range st.Resources {
						if r != nil && r.Kind == yaml.ScalarNode && r.Value == "*" && !starOK[a] {
							t.Errorf("%s %s: %s on Resource \"*\"", file, role, a)
						}
					}
				}
			}
			want, ok := table[file][role]
			if !ok {
				t.Errorf("%s: role %s is not in README.md's least-privilege table", file, role)
				continue
			}
			if got := sorted(allowed); !slices.Equal(got, sorted(want)) {
				t.Errorf("%s %s allows %v; README.md lists %v", file, role, got, sorted(want))
			}
		}
	}
	for file, rs := range table {
		for role := range rs {
			if !seen[file+"/"+role] {
				t.Errorf("README.md lists %s %s, which the template does not create", file, role)
			}
		}
	}
}

// TestMemberRoleConditions: the member role creates only tagged snapshots (CreateSnapshot
// and CreateSnapshots), tags on create or — volume, device and Name only — managed
// snapshots, deletes only managed snapshots, and trusts the hub only with the ExternalId.
func TestMemberRoleConditions(t *testing.T) {
	t.Parallel()
	stmts := roles(t, "member-role.yaml")["MemberRole"]
	cond := func(st statement, op, key string) string {
		v := get(get(st.Condition, op), key)
		if v == nil {
			return ""
		}
		return v.Value
	}
	onSnapshot := func(st statement) bool {
		for _, r := range st.Resources {
			if r == nil || !strings.Contains(r.Value, ":snapshot/") {
				return false
			}
		}
		return true
	}
	var createTagged, createVolume, tags, deletes int
	for _, st := range stmts {
		for _, a := range st.Actions {
			switch {
			case (a == "ec2:CreateSnapshot" || a == "ec2:CreateSnapshots") && onSnapshot(st):
				createTagged++
				if cond(st, "Null", "aws:RequestTag/snapfleet:policy") != "false" {
					t.Errorf("statement %s: %s on snapshots without the snapfleet:policy request tag condition", st.Sid, a)
				}
			case a == "ec2:CreateSnapshot" || a == "ec2:CreateSnapshots":
				createVolume++
				for _, r := range st.Resources {
					if r == nil || !(strings.Contains(r.Value, ":volume/") || (a == "ec2:CreateSnapshots" && strings.Contains(r.Value, ":instance/"))) {
						t.Errorf("statement %s: untagged %s on %v, want volumes (and instances) only", st.Sid, a, r)
					}
				}
			case a == "ec2:CreateTags":
				tags++
				onCreate := slices.Equal(sorted(scalars(get(get(st.Condition, "StringEquals"), "ec2:CreateAction"))), []string{"CreateSnapshot", "CreateSnapshots"})
				keys := scalars(get(get(st.Condition, "ForAllValues:StringEquals"), "aws:TagKeys"))
				onManaged := cond(st, "Null", "aws:ResourceTag/snapfleet:policy") == "false" && len(keys) > 0 &&
					!slices.ContainsFunc(keys, func(k string) bool { return k != "snapfleet:volume" && k != "snapfleet:device" && k != "Name" })
				if !onSnapshot(st) || (!onCreate && !onManaged) {
					t.Errorf("statement %s: CreateTags neither limited to snapshots being created nor to the volume, device and Name of managed ones", st.Sid)
				}
			case a == "ec2:DeleteSnapshot":
				deletes++
				if cond(st, "Null", "aws:ResourceTag/snapfleet:policy") != "false" || !onSnapshot(st) {
					t.Errorf("statement %s: DeleteSnapshot not limited to snapshots carrying snapfleet:policy", st.Sid)
				}
			}
		}
	}
	if createTagged != 2 || createVolume != 2 || tags != 2 || deletes != 1 {
		t.Errorf("member role statements: %d tagged creates, %d volume creates, %d tags, %d deletes; want 2, 2, 2, 1", createTagged, createVolume, tags, deletes)
	}
	trust := get(get(get(resources(t, "member-role.yaml"), "MemberRole"), "Properties"), "AssumeRolePolicyDocument")
	for _, s := range get(trust, "Statement").Content {
		c := get(s, "Condition")
		if v := get(get(c, "StringEquals"), "sts:ExternalId"); v == nil || v.Value != "ExternalId" {
			t.Errorf("member role trust statement without sts:ExternalId = !Ref ExternalId: %v", c)
		}
		if get(get(c, "ArnLike"), "aws:PrincipalArn") == nil {
			t.Error("member role trusts the whole hub account, not its snapfleet roles")
		}
	}
}

// TestHubQueues: SSE and TLS-only on both queues, only the planner (and the optional
// replay role) may send jobs, the DLQ keeps messages longer than the queue, maxReceiveCount
// >= 5, the worker's event source mapping reports batch item failures and caps
// concurrency, the schedule has a time zone.
func TestHubQueues(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("hub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	res := get(doc.Content[0], "Resources")
	props := func(id string) *yaml.Node { return get(get(res, id), "Properties") }
	val := func(n *yaml.Node) string {
		if n == nil {
			return ""
		}
		return n.Value
	}
	for _, q := range []string{"JobsQueue", "JobsDeadLetterQueue"} {
		if val(get(props(q), "SqsManagedSseEnabled")) != "true" && get(props(q), "KmsMasterKeyId") == nil {
			t.Errorf("%s is not encrypted at rest", q)
		}
	}
	var retention [2]int
	fmt.Sscan(val(get(props("JobsQueue"), "MessageRetentionPeriod")), &retention[0])
	fmt.Sscan(val(get(props("JobsDeadLetterQueue"), "MessageRetentionPeriod")), &retention[1])
	if retention[1] <= retention[0] {
		t.Errorf("DLQ retention %d s is not longer than the queue's %d s", retention[1], retention[0])
	}
	var maxReceive int
	fmt.Sscan(val(get(get(props("JobsQueue"), "RedrivePolicy"), "maxReceiveCount")), &maxReceive)
	if maxReceive < 5 {
		t.Errorf("maxReceiveCount %d < 5", maxReceive)
	}
	for _, p := range []string{"JobsQueuePolicy", "JobsDeadLetterQueuePolicy"} {
		var tls, send bool
		for _, s := range get(get(props(p), "PolicyDocument"), "Statement").Content {
			if val(get(s, "Effect")) != "Deny" {
				t.Errorf("%s: a statement that is not a Deny", p)
			}
			if val(get(get(get(s, "Condition"), "Bool"), "aws:SecureTransport")) == "false" && slices.Contains(scalars(get(s, "Action")), "sqs:*") {
				tls = true
			}
			if pa := get(get(get(s, "Condition"), "ArnNotEquals"), "aws:PrincipalArn"); pa != nil && strings.Contains(fmt.Sprint(scalars(pa)), "PlannerRole.Arn") {
				send = true
			}
		}
		if !tls {
			t.Errorf("%s does not deny requests without TLS", p)
		}
		if p == "JobsQueuePolicy" && !send {
			t.Errorf("%s does not deny SendMessage to everyone but the planner role", p)
		}
	}
	esm := props("WorkerEventSource")
	if !slices.Contains(scalars(get(esm, "FunctionResponseTypes")), "ReportBatchItemFailures") {
		t.Error("worker event source mapping does not report batch item failures")
	}
	if get(get(esm, "ScalingConfig"), "MaximumConcurrency") == nil {
		t.Error("worker event source mapping has no MaximumConcurrency")
	}
	if get(props("PlanSchedule"), "ScheduleExpressionTimezone") == nil {
		t.Error("the plan schedule has no time zone")
	}
	alarm := props("DeadLetterAlarm")
	dims := get(alarm, "Dimensions")
	if val(get(alarm, "MetricName")) != "ApproximateNumberOfMessagesVisible" || dims == nil || len(dims.Content) != 1 ||
		val(get(dims.Content[0], "Value")) != "JobsDeadLetterQueue.QueueName" {
		t.Error("no alarm on the DLQ depth")
	}
}

// resources reads the Resources of a template.
func resources(t *testing.T, file string) *yaml.Node {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return get(doc.Content[0], "Resources")
}

// TestMemberEventsForwardTheHubPattern: member-events.yaml forwards exactly the events the
// hub's StateChangeRule hands to the planner, to the hub's default bus through its role,
// and that role trusts EventBridge only on behalf of its own account.
func TestMemberEventsForwardTheHubPattern(t *testing.T) {
	t.Parallel()
	hub, member := resources(t, "hub.yaml"), resources(t, "member-events.yaml")
	pattern := func(file string, res *yaml.Node, id string) any {
		var p any
		n := get(get(get(res, id), "Properties"), "EventPattern")
		if n == nil {
			t.Fatalf("%s: %s has no EventPattern", file, id)
		}
		if err := n.Decode(&p); err != nil {
			t.Fatalf("%s: %s EventPattern: %v", file, id, err)
		}
		return p
	}
	want, got := pattern("hub.yaml", hub, "StateChangeRule"), pattern("member-events.yaml", member, "ForwardRule")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("member-events.yaml ForwardRule pattern %v; hub.yaml StateChangeRule has %v", got, want)
	}
	rule := get(get(member, "ForwardRule"), "Properties")
	if bus := get(rule, "EventBusName"); bus != nil && bus.Value != "default" {
		t.Errorf("ForwardRule is on bus %q, want the default bus where EC2 publishes", bus.Value)
	}
	targets := get(rule, "Targets")
	if targets == nil || len(targets.Content) != 1 {
		t.Fatalf("ForwardRule: want one target, got %v", targets)
	}
	target := targets.Content[0]
	if arn := get(target, "Arn"); arn == nil || arn.Value != "arn:${AWS::Partition}:events:${HubRegion}:${HubAccountId}:event-bus/default" {
		t.Errorf("ForwardRule target %v, want the hub's default bus", arn)
	}
	if r := get(target, "RoleArn"); r == nil || r.Tag != "!GetAtt" || r.Value != "ForwardRole.Arn" {
		t.Errorf("ForwardRule target RoleArn %v, want !GetAtt ForwardRole.Arn: the hub's bus grants by organization id", r)
	}
	for _, st := range roles(t, "member-events.yaml")["ForwardRole"] {
		for _, r := range st.Resources {
			if r == nil || r.Value != get(target, "Arn").Value {
				t.Errorf("ForwardRole statement %s on %v, want only the hub's default bus", st.Sid, r)
			}
		}
	}
	trust := get(get(get(member, "ForwardRole"), "Properties"), "AssumeRolePolicyDocument")
	for _, s := range get(trust, "Statement").Content {
		if p := get(get(s, "Principal"), "Service"); p == nil || p.Value != "events.amazonaws.com" {
			t.Errorf("ForwardRole trusts %v, want events.amazonaws.com", p)
		}
		if v := get(get(get(s, "Condition"), "StringEquals"), "aws:SourceAccount"); v == nil || v.Value != "AWS::AccountId" {
			t.Errorf("ForwardRole trust statement without aws:SourceAccount = !Ref AWS::AccountId")
		}
	}
}

// checker runs scripts/deploy-check.sh KIND FILES... and returns its exit error and output.
func checker(t *testing.T, kind string, files ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("../scripts/deploy-check.sh", append([]string{kind}, files...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// broken writes a copy of file into dir with edit applied, and fails when edit changed
// nothing.
func broken(t *testing.T, dir, file, name string, edit func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := edit(string(b))
	if out == string(b) {
		t.Fatalf("breaking %s changed nothing", file)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBrokenTemplatesFailCfnLint: each template with an unknown property in its first
// resource fails cfn-lint, which names the file and the property.
func TestBrokenTemplatesFailCfnLint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var paths []string
	for _, f := range templates {
		paths = append(paths, broken(t, dir, f, "broken-"+f, func(s string) string {
			return strings.Replace(s, "    Properties:\n", "    Properties:\n      NotAProperty: 1\n", 1)
		}))
	}
	out, err := checker(t, "cfn", paths...)
	if err == nil {
		t.Fatalf("cfn-lint passed broken templates:\n%s", out)
	}
	for _, p := range paths {
		if !regexp.MustCompile(regexp.QuoteMeta(p) + `:\d+:.*NotAProperty`).MatchString(out) {
			t.Errorf("cfn-lint output does not report NotAProperty in %s:\n%s", p, out)
		}
	}
}

// TestBrokenManifestsFailKubeconform: each manifest with an unknown top-level field fails
// kubeconform -strict against the committed schemas, which names the file and field.
func TestBrokenManifestsFailKubeconform(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var paths []string
	for _, f := range manifests {
		paths = append(paths, broken(t, dir, f, filepath.Base(f), func(s string) string {
			return strings.Replace(s, "\napiVersion:", "\nnotAField: 1\napiVersion:", 1)
		}))
	}
	// The good ones pass: the schemas are found, nothing is skipped.
	good, err := checker(t, "k8s", manifests...)
	if err != nil || !strings.Contains(good, "Invalid: 0, Errors: 0, Skipped: 0") {
		t.Fatalf("kubeconform on deploy/k8s: %v\n%s", err, good)
	}
	out, err := checker(t, "k8s", paths...)
	if err == nil {
		t.Fatalf("kubeconform passed broken manifests:\n%s", out)
	}
	for _, p := range paths {
		if !regexp.MustCompile(regexp.QuoteMeta(p) + ` - .*is invalid.*notAField`).MatchString(out) {
			t.Errorf("kubeconform output does not report notAField in %s:\n%s", p, out)
		}
	}
}

// TestBrokenDockerfilesFailTheRules: each rule of the Dockerfile check catches its break.
func TestBrokenDockerfilesFailTheRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if out, err := checker(t, "docker", "Dockerfile"); err != nil {
		t.Fatalf("the Dockerfile fails its own check: %v\n%s", err, out)
	}
	cases := []struct {
		name, want string
		edit       func(string) string
	}{
		{"root-user", "USER 0", func(s string) string { return strings.Replace(s, "USER 65532:65532", "USER 0", 1) }},
		{"no-user", "no USER", func(s string) string { return strings.Replace(s, "USER 65532:65532\n", "", 1) }},
		{"named-user", "USER nonroot", func(s string) string { return strings.Replace(s, "USER 65532:65532", "USER nonroot", 1) }},
		{"latest", "latest is not a pinned", func(s string) string { return strings.Replace(s, "golang:1.26.8-bookworm", "golang:latest", 1) }},
		{"untagged", "pin the image", func(s string) string { return strings.Replace(s, "golang:1.26.8-bookworm", "golang", 1) }},
		{"fat-final", "want distroless/static or scratch", func(s string) string {
			return strings.Replace(s, "gcr.io/distroless/static-debian12:nonroot", "debian:12.8", 1)
		}},
		{"cgo", "CGO_ENABLED=0", func(s string) string { return strings.ReplaceAll(s, "CGO_ENABLED=0", "CGO_ENABLED=1") }},
		{"shell-entrypoint", "exec form", func(s string) string {
			return strings.Replace(s, `ENTRYPOINT ["/snapfleet"]`, "ENTRYPOINT /snapfleet", 1)
		}},
		{"add-url", "ADD from a URL", func(s string) string {
			return strings.Replace(s, "WORKDIR /src\n", "WORKDIR /src\nADD https://example.com/x.tgz /tmp/\n", 1)
		}},
	}
	var paths []string
	for _, c := range cases {
		paths = append(paths, broken(t, dir, "Dockerfile", c.name+".Dockerfile", c.edit))
	}
	out, err := checker(t, "docker", paths...)
	if err == nil {
		t.Fatalf("the Dockerfile check passed broken copies:\n%s", out)
	}
	for i, c := range cases {
		if !regexp.MustCompile(regexp.QuoteMeta(paths[i]) + `:\d+: .*` + regexp.QuoteMeta(c.want)).MatchString(out) {
			t.Errorf("%s: output does not report %q for %s:\n%s", c.name, c.want, paths[i], out)
		}
	}
}

// TestLambdaCheckRefusesWhatIsNotAStaticGoBinary: the make lambda check fails on a
// bootstrap that is not a Go binary and on a missing architecture.
func TestLambdaCheckRefusesWhatIsNotAStaticGoBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, arch := range []string{"arm64", "amd64"} {
		if err := os.MkdirAll(filepath.Join(dir, arch), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "arm64", "bootstrap"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := checker(t, "lambda", dir)
	if err == nil || !strings.Contains(out, "arm64/bootstrap: not a Go binary") {
		t.Errorf("lambda check on a shell script: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(dir, "arm64", "bootstrap")); err != nil {
		t.Fatal(err)
	}
	out, err = checker(t, "lambda", dir)
	if err == nil || !strings.Contains(out, "arm64/bootstrap: missing") {
		t.Errorf("lambda check with no binary: %v\n%s", err, out)
	}
}

// probe is a Kubernetes httpGet probe.
type probe struct {
	HTTPGet struct{ Path, Port string } `yaml:"httpGet"`
}

// TestDeploymentProbes: the worker Deployment serves --health-addr on a named container
// port, and its liveness and readiness probes read /healthz and /readyz there.
func TestDeploymentProbes(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("k8s/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name  string
						Args  []string
						Ports []struct {
							Name          string
							ContainerPort int `yaml:"containerPort"`
						}
						Liveness  *probe `yaml:"livenessProbe"`
						Readiness *probe `yaml:"readinessProbe"`
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("want one container, got %d", len(cs))
	}
	c := cs[0]
	i := slices.Index(c.Args, "--health-addr")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("worker args %v lack --health-addr", c.Args)
	}
	port := map[string]int{}
	for _, p := range c.Ports {
		port[p.Name] = p.ContainerPort
	}
	for _, pr := range []struct {
		name, path string
		probe      *probe
	}{{"livenessProbe", "/healthz", c.Liveness}, {"readinessProbe", "/readyz", c.Readiness}} {
		if pr.probe == nil {
			t.Errorf("no %s", pr.name)
			continue
		}
		g := pr.probe.HTTPGet
		if g.Path != pr.path || port[g.Port] == 0 || c.Args[i+1] != fmt.Sprintf(":%d", port[g.Port]) {
			t.Errorf("%s reads %s on port %q (%d); want %s on the port of --health-addr %s", pr.name, g.Path, g.Port, port[g.Port], pr.path, c.Args[i+1])
		}
	}
}
