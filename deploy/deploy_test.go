// Package deploy holds snapfleet's deployment templates (CloudFormation/SAM, ECS,
// Kubernetes, the Dockerfile); it has no Go code. Its tests check that the IAM policies of
// the templates are exactly the least-privilege set README.md lists, and that each check of
// scripts/deploy-check.sh really runs: a broken copy of every file must fail it.
package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// templates are the CloudFormation templates; manifests the Kubernetes ones.
var (
	templates = []string{"hub.yaml", "member-role.yaml", "member-stackset.yaml", "member-events.yaml", "ecs-worker.yaml", "audit.yaml"}
	manifests = []string{"k8s/serviceaccount.yaml", "k8s/configmap.yaml", "k8s/deployment.yaml", "k8s/scaledobject.yaml"}
)

// statement is one IAM policy statement, read from a template.
type statement struct {
	Sid       string
	Effect    string
	Actions   []string
	Resources []*yaml.Node
	Condition *yaml.Node
	// When is the CloudFormation condition of a statement written !If [COND, {...},
	// !Ref AWS::NoValue]: it exists only when COND holds.
	When string
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

// intrinsic reports whether n carries a CloudFormation short-form tag (!Sub, !Ref, ...).
func intrinsic(n *yaml.Node) bool {
	return strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!")
}

// text is a scalar as the least-privilege table writes it: "*", an ARN, or the template's
// intrinsic as written ("!GetAtt JobsQueue.Arn", "!Sub arn:${AWS::Partition}:..."). Other
// forms (a !Sub with variables, an !If) are refused: the table could not say them.
func text(t *testing.T, n *yaml.Node) string {
	t.Helper()
	switch {
	case n == nil:
		t.Error("a missing scalar in an IAM statement")
		return ""
	case n.Kind != yaml.ScalarNode:
		t.Errorf("line %d: %s %v is not a scalar: the least-privilege check cannot compare it", n.Line, n.Tag, scalars(n))
		return ""
	case intrinsic(n):
		return n.Tag + " " + n.Value
	}
	return n.Value
}

// conditions renders an IAM Condition as "OPERATOR KEY=V1,V2" clauses, sorted.
func conditions(t *testing.T, c *yaml.Node) []string {
	t.Helper()
	var out []string
	for i := 0; c != nil && i+1 < len(c.Content); i += 2 {
		op, keys := c.Content[i].Value, c.Content[i+1]
		for j := 0; j+1 < len(keys.Content); j += 2 {
			v := keys.Content[j+1]
			vals := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode && !intrinsic(v) {
				vals = v.Content
			}
			var texts []string
			for _, x := range vals {
				texts = append(texts, text(t, x))
			}
			out = append(out, op+" "+keys.Content[j].Value+"="+strings.Join(sorted(texts), ","))
		}
	}
	return sorted(out)
}

// rule is a statement as the least-privilege table of deploy/README.md writes it: what
// is allowed, on what, under which conditions ("if COND" for a CloudFormation condition).
func (st statement) rule(t *testing.T) string {
	t.Helper()
	var res []string
	for _, r := range st.Resources {
		res = append(res, text(t, r))
	}
	cond := conditions(t, st.Condition)
	if st.When != "" {
		cond = append(cond, "if "+st.When)
	}
	return fmt.Sprintf("%s | %s | %s", strings.Join(sorted(st.Actions), " "), strings.Join(sorted(res), " "), strings.Join(cond, " "))
}

// parseStatement reads one statement of a policy document; an !If [COND, STATEMENT,
// !Ref AWS::NoValue] is the statement, when COND.
func parseStatement(t *testing.T, file, id string, s *yaml.Node) statement {
	t.Helper()
	var when string
	if s.Tag == "!If" {
		if len(s.Content) != 3 || s.Content[1].Kind != yaml.MappingNode || s.Content[2].Value != "AWS::NoValue" {
			t.Fatalf("%s: %s line %d: an !If statement must be [COND, STATEMENT, !Ref AWS::NoValue]", file, id, s.Line)
		}
		when, s = s.Content[0].Value, s.Content[1]
	}
	st := statement{Effect: get(s, "Effect").Value, Actions: scalars(get(s, "Action")), Condition: get(s, "Condition"), When: when}
	if sid := get(s, "Sid"); sid != nil {
		st.Sid = sid.Value
	}
	if r := get(s, "Resource"); r != nil && r.Kind == yaml.SequenceNode && !intrinsic(r) {
		st.Resources = r.Content
	} else {
		st.Resources = []*yaml.Node{r}
	}
	if get(s, "NotAction") != nil || get(s, "NotResource") != nil {
		t.Errorf("%s: %s statement %q uses NotAction/NotResource", file, id, st.Sid)
	}
	return st
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
				out[id] = append(out[id], parseStatement(t, file, id, s))
			}
		}
	}
	return out
}

// readmeTable reads the least-privilege table of deploy/README.md: template → role → the
// rules of its statements (statement.rule), one row each.
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
	code := regexp.MustCompile("`([^`]+)`")
	items := func(cell string) []string {
		var out []string
		for _, m := range code.FindAllStringSubmatch(cell, -1) {
			out = append(out, m[1])
		}
		return sorted(out)
	}
	out := map[string]map[string][]string{}
	for _, line := range strings.Split(s[begin:end], "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 7 || !strings.HasSuffix(strings.TrimSpace(cells[1]), ".yaml") {
			continue
		}
		file, role := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		if out[file] == nil {
			out[file] = map[string][]string{}
		}
		out[file][role] = append(out[file][role], fmt.Sprintf("%s | %s | %s",
			strings.Join(items(cells[3]), " "), strings.Join(items(cells[4]), " "), strings.Join(items(cells[5]), " ")))
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// TestIAMIsTheREADMEsLeastPrivilege: every role of every template has exactly the
// statements the table of deploy/README.md lists for it — the same actions on the same
// resources under the same conditions —, no action is a wildcard, only Describe-type and
// list actions run on Resource "*", and nothing is denied-by-omission silently (a role or
// a statement missing from either side fails).
func TestIAMIsTheREADMEsLeastPrivilege(t *testing.T) {
	t.Parallel()
	table := readmeTable(t)
	starOK := map[string]bool{"ec2:DescribeInstances": true, "ec2:DescribeVolumes": true, "ec2:DescribeSnapshots": true, "ec2:DescribeImages": true, "ec2:DescribeSnapshotAttribute": true, "ec2:DescribeLockedSnapshots": true, "ec2:DescribeAvailabilityZones": true, "ec2:DescribeSnapshotTierStatus": true, "ecr:GetAuthorizationToken": true,
		"organizations:ListAccounts": true, "organizations:ListAccountsForParent": true, "organizations:ListChildren": true,
		"ssm:GetCommandInvocation": true} // SSM gives it no resource-level permission
	seen := map[string]bool{}
	for _, file := range templates {
		for role, stmts := range roles(t, file) {
			seen[file+"/"+role] = true
			var got []string
			for _, st := range stmts {
				if st.Effect != "Allow" {
					t.Errorf("%s %s: statement %s is not an Allow", file, role, st.Sid)
					continue
				}
				got = append(got, st.rule(t))
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
				t.Errorf("%s: role %s is not in deploy/README.md's least-privilege table", file, role)
				continue
			}
			for _, r := range missing(got, want) {
				t.Errorf("%s %s allows %s; deploy/README.md does not list it", file, role, r)
			}
			for _, r := range missing(want, got) {
				t.Errorf("deploy/README.md lists %s %s: %s; the template has no such statement", file, role, r)
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

// missing returns the elements of a that b lacks, as multisets.
func missing(a, b []string) []string {
	left := map[string]int{}
	for _, x := range b {
		left[x]++
	}
	var out []string
	for _, x := range a {
		if left[x] > 0 {
			left[x]--
			continue
		}
		out = append(out, x)
	}
	return out
}

// TestREADMEPolicyIsTheMemberRole: the least-privilege policy README.md gives for the
// account snapfleet works in is the member role's, statement for statement: the same
// actions on the same resources under the same conditions (the partition written aws).
func TestREADMEPolicyIsTheMemberRole(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "## IAM permissions")
	if i < 0 {
		t.Fatal("README.md has no IAM permissions section")
	}
	s = s[i:]
	begin := strings.Index(s, "```json\n")
	end := strings.Index(s[begin+1:], "```")
	if begin < 0 || end < 0 {
		t.Fatal("README.md's IAM permissions section has no json block")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s[begin+len("```json\n"):begin+1+end]), &doc); err != nil {
		t.Fatalf("README.md's IAM policy: %v", err)
	}
	var readme []string
	for _, st := range get(doc.Content[0], "Statement").Content {
		readme = append(readme, parseStatement(t, "README.md", "policy", st).rule(t))
	}
	var template []string
	for _, st := range roles(t, "member-role.yaml")["MemberRole"] {
		r := strings.ReplaceAll(st.rule(t), "!Sub ", "")
		r = strings.ReplaceAll(r, "${AWS::AccountId}", "ACCOUNT_ID") // README: the account's id
		r = strings.ReplaceAll(r, "${AWS::Partition}", "aws")
		parts := strings.Split(r, " | ") // resources sorted again, as written
		parts[1] = strings.Join(sorted(strings.Fields(parts[1])), " ")
		template = append(template, strings.Join(parts, " | "))
	}
	for _, r := range missing(readme, template) {
		t.Errorf("README.md allows %s; member-role.yaml has no such statement", r)
	}
	for _, r := range missing(template, readme) {
		t.Errorf("member-role.yaml allows %s; README.md's policy lacks it", r)
	}
}

// TestMemberRoleConditions: the member role creates only tagged snapshots (CreateSnapshot
// and CreateSnapshots), tags on create or — volume, device and Name only — managed
// snapshots, deletes only managed snapshots, creates volumes only tagged
// snapfleet:restored-from (tagging them only on create), attaches only those, deletes only
// volumes tagged snapfleet:drill, and trusts the hub only with the ExternalId.
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
	onVolume := func(st statement) bool {
		for _, r := range st.Resources {
			if r == nil || !strings.Contains(r.Value, ":volume/") {
				return false
			}
		}
		return true
	}
	onInstance := func(st statement) bool {
		for _, r := range st.Resources {
			if r == nil || !strings.Contains(r.Value, ":instance/") {
				return false
			}
		}
		return true
	}
	var createTagged, createVolume, tags, deletes, volumeTags, restores int
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
			case a == "ec2:CreateTags" && onVolume(st):
				volumeTags++
				if cond(st, "StringEquals", "ec2:CreateAction") != "CreateVolume" {
					t.Errorf("statement %s: CreateTags on volumes not limited to CreateVolume", st.Sid)
				}
			case a == "ec2:CreateVolume" && onVolume(st):
				restores++
				if cond(st, "Null", "aws:RequestTag/snapfleet:restored-from") != "false" {
					t.Errorf("statement %s: CreateVolume without the snapfleet:restored-from request tag condition", st.Sid)
				}
			case a == "ec2:CreateVolume" && !onSnapshot(st):
				t.Errorf("statement %s: CreateVolume on %v, want volumes (tagged) and snapshots", st.Sid, st.Resources)
			case a == "ec2:AttachVolume" && onVolume(st):
				if cond(st, "Null", "aws:ResourceTag/snapfleet:restored-from") != "false" {
					t.Errorf("statement %s: AttachVolume of volumes not carrying snapfleet:restored-from", st.Sid)
				}
			case a == "ec2:DeleteVolume":
				if cond(st, "Null", "aws:ResourceTag/snapfleet:drill") != "false" || !onVolume(st) {
					t.Errorf("statement %s: DeleteVolume not limited to volumes carrying snapfleet:drill", st.Sid)
				}
			case (a == "ec2:CreateTags" || a == "ec2:DeleteTags") && onInstance(st):
				// Cold backups: only snapfleet:stopped-by, on instances, keys required.
				keys := scalars(get(get(st.Condition, "ForAllValues:StringEquals"), "aws:TagKeys"))
				if !slices.Equal(keys, []string{"snapfleet:stopped-by"}) || cond(st, "Null", "aws:TagKeys") != "false" {
					t.Errorf("statement %s: %s on instances not limited to the snapfleet:stopped-by tag", st.Sid, a)
				}
			case a == "ec2:StopInstances" || a == "ec2:StartInstances":
				if cond(st, "Null", "aws:ResourceTag/snapfleet:stopped-by") != "false" || !onInstance(st) {
					t.Errorf("statement %s: %s not limited to instances carrying snapfleet:stopped-by", st.Sid, a)
				}
			case a == "ec2:CreateTags":
				tags++
				onCreate := slices.Equal(sorted(scalars(get(get(st.Condition, "StringEquals"), "ec2:CreateAction"))), []string{"CopySnapshot", "CreateSnapshot", "CreateSnapshots"})
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
	if createTagged != 2 || createVolume != 2 || tags != 2 || deletes != 1 || volumeTags != 1 || restores != 1 {
		t.Errorf("member role statements: %d tagged creates, %d volume creates, %d tags, %d deletes, %d volume tags, %d restores; want 2, 2, 2, 1, 1, 1",
			createTagged, createVolume, tags, deletes, volumeTags, restores)
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

// TestHubQueues: SSE and TLS-only on both queues, a send deny on the jobs queue, the DLQ keeps messages longer than the queue, maxReceiveCount
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
			if pa := get(get(get(s, "Condition"), "ArnNotLike"), "aws:PrincipalArn"); pa != nil && slices.Contains(scalars(get(s, "Action")), "sqs:SendMessage") {
				send = true // who it lets through: TestOnlySnapfleetSendsJobs
			}
		}
		if !tls {
			t.Errorf("%s does not deny requests without TLS", p)
		}
		if p == "JobsQueuePolicy" && !send {
			t.Errorf("%s does not deny SendMessage to every principal but snapfleet's", p)
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

// stack resolves the intrinsics of a template the way CloudFormation would in one
// deployment: parameters at their defaults, the pseudo parameters below, the ARNs of the
// roles and queues the template names.
type stack struct {
	t    *testing.T
	file string
	res  *yaml.Node
	vars map[string]string
}

func newStack(t *testing.T, file string, params map[string]string) *stack {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "222222222222"}
	ps := get(doc.Content[0], "Parameters")
	for i := 0; ps != nil && i+1 < len(ps.Content); i += 2 {
		if d := get(ps.Content[i+1], "Default"); d != nil {
			vars[ps.Content[i].Value] = d.Value
		}
	}
	for k, v := range params {
		vars[k] = v
	}
	return &stack{t: t, file: file, res: get(doc.Content[0], "Resources"), vars: vars}
}

var subVar = regexp.MustCompile(`\$\{([A-Za-z0-9:]+)\}`)

// value resolves a scalar: !Sub, !Ref, and !GetAtt X.Arn of an IAM role or SQS queue.
func (s *stack) value(n *yaml.Node) string {
	s.t.Helper()
	switch n.Tag {
	case "!Sub":
		return subVar.ReplaceAllStringFunc(n.Value, func(m string) string {
			v, ok := s.vars[m[2:len(m)-1]]
			if !ok {
				s.t.Errorf("%s: ${%s} has no value", s.file, m[2:len(m)-1])
			}
			return v
		})
	case "!Ref":
		v, ok := s.vars[n.Value]
		if !ok {
			s.t.Errorf("%s: !Ref %s has no value", s.file, n.Value)
		}
		return v
	case "!GetAtt":
		id, ok := strings.CutSuffix(n.Value, ".Arn")
		props := get(get(s.res, id), "Properties")
		switch {
		case ok && get(props, "RoleName") != nil:
			return s.value(&yaml.Node{Tag: "!Sub", Value: "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"}) + s.value(get(props, "RoleName"))
		case ok && get(props, "QueueName") != nil:
			return s.value(&yaml.Node{Tag: "!Sub", Value: "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:"}) + s.value(get(props, "QueueName"))
		}
		s.t.Errorf("%s: cannot resolve !GetAtt %s", s.file, n.Value)
		return ""
	}
	return n.Value
}

// arnLike is IAM's ArnLike: * and ? are wildcards.
func arnLike(pattern, arn string) bool {
	re := strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern))
	return regexp.MustCompile("^" + re + "$").MatchString(arn)
}

// TestOnlySnapfleetSendsJobs: the jobs queue's policy lets the planner, the replay role
// and every worker role — hub.yaml's Lambda worker, ecs-worker.yaml's task role — send
// messages, and no one else; and the worker roles are allowed to send to the jobs queue.
// A worker requeues a job throttled on its last receive but one (worker/worker.go); were
// the send denied, the requeue would fail and the queue's redrive would dead-letter a
// throttled job, breaking DESIGN.md §6.6.
func TestOnlySnapfleetSendsJobs(t *testing.T) {
	t.Parallel()
	const replay = "arn:aws:iam::222222222222:role/ops-replay"
	hub := newStack(t, "hub.yaml", map[string]string{"ReplayRoleArn": replay})
	ecs := newStack(t, "ecs-worker.yaml", nil)
	queueARN := hub.value(&yaml.Node{Tag: "!GetAtt", Value: "JobsQueue.Arn"})
	role := func(s *stack, id string) string {
		return s.value(&yaml.Node{Tag: "!GetAtt", Value: id + ".Arn"})
	}
	workers := map[string]string{"hub.yaml WorkerRole": role(hub, "WorkerRole"), "ecs-worker.yaml TaskRole": role(ecs, "TaskRole")}

	// The deny of SendMessage, for a principal, with and without the replay role.
	var deny *yaml.Node
	for _, st := range get(get(get(get(hub.res, "JobsQueuePolicy"), "Properties"), "PolicyDocument"), "Statement").Content {
		if slices.Contains(scalars(get(st, "Action")), "sqs:SendMessage") {
			deny = st
		}
	}
	if deny == nil || get(deny, "Effect").Value != "Deny" {
		t.Fatal("JobsQueuePolicy has no statement denying sqs:SendMessage")
	}
	cond := get(deny, "Condition")
	pa := get(get(cond, "ArnNotLike"), "aws:PrincipalArn")
	if pa == nil || len(cond.Content) != 2 || len(get(cond, "ArnNotLike").Content) != 2 {
		t.Fatalf("the send deny's condition is not only ArnNotLike aws:PrincipalArn (a pattern list): %v", scalars(cond))
	}
	if pa.Tag != "!If" || len(pa.Content) != 3 || pa.Content[0].Value != "HasReplayRole" {
		t.Fatalf("aws:PrincipalArn of the send deny: want !If [HasReplayRole, WITH, WITHOUT]")
	}
	for i, branch := range map[int]string{1: "with ReplayRoleArn", 2: "without ReplayRoleArn"} {
		var patterns []string
		for _, n := range pa.Content[i].Content {
			patterns = append(patterns, hub.value(n))
		}
		denied := func(arn string) bool {
			return !slices.ContainsFunc(patterns, func(p string) bool { return arnLike(p, arn) })
		}
		allowed := maps.Clone(workers)
		allowed["hub.yaml PlannerRole"] = role(hub, "PlannerRole")
		if i == 1 {
			allowed["the replay role"] = replay
		}
		for who, arn := range allowed {
			if denied(arn) {
				t.Errorf("%s: the jobs queue denies SendMessage to %s (%s): patterns %v", branch, who, arn, patterns)
			}
		}
		for _, arn := range []string{
			"arn:aws:iam::222222222222:role/deployer", "arn:aws:iam::333333333333:role/snapfleet-worker-eu-west-1",
			"arn:aws:iam::222222222222:user/snapfleet-worker-x", replay + "-not",
		} {
			if i == 2 && arn == replay+"-not" {
				continue
			}
			if !denied(arn) {
				t.Errorf("%s: the jobs queue lets %s send", branch, arn)
			}
		}
	}

	// The worker roles may send to the jobs queue.
	for _, w := range []struct {
		s  *stack
		id string
	}{{hub, "WorkerRole"}, {ecs, "TaskRole"}} {
		ok := false
		for _, st := range roles(t, w.s.file)[w.id] {
			if st.Effect == "Allow" && st.When == "" && slices.Contains(st.Actions, "sqs:SendMessage") && st.Condition == nil &&
				slices.ContainsFunc(st.Resources, func(r *yaml.Node) bool { return w.s.value(r) == queueARN }) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s %s may not send to the jobs queue %s: it could not requeue a throttled job", w.s.file, w.id, queueARN)
		}
	}
}

// TestHubEventsDeadLetter: no event meant for the planner is dropped silently. Every
// EventBridge rule target and the schedule retry and then dead-letter to the events
// dead-letter queue, whose policy lets EventBridge send on behalf of exactly those rules;
// the planner's asynchronous invocations that fail go there too (its on-failure
// destination), and an alarm watches the queue's depth.
func TestHubEventsDeadLetter(t *testing.T) {
	t.Parallel()
	res := resources(t, "hub.yaml")
	const dlq = "EventsDeadLetterQueue.Arn"
	isDLQ := func(n *yaml.Node) bool { return n != nil && n.Tag == "!GetAtt" && n.Value == dlq }
	var rules []string
	for i := 0; i+1 < len(res.Content); i += 2 {
		id, r := res.Content[i].Value, res.Content[i+1]
		if get(r, "Type").Value != "AWS::Events::Rule" {
			continue
		}
		rules = append(rules, id+".Arn")
		for _, tg := range get(get(r, "Properties"), "Targets").Content {
			if !isDLQ(get(get(tg, "DeadLetterConfig"), "Arn")) {
				t.Errorf("rule %s target %s has no DeadLetterConfig on the events dead-letter queue", id, get(tg, "Id").Value)
			}
			if get(get(tg, "RetryPolicy"), "MaximumRetryAttempts") == nil {
				t.Errorf("rule %s target %s has no RetryPolicy", id, get(tg, "Id").Value)
			}
		}
	}
	if len(rules) < 2 {
		t.Fatalf("hub.yaml has %d rules, want the state-change and BackupNow rules", len(rules))
	}
	target := get(get(get(res, "PlanSchedule"), "Properties"), "Target")
	if !isDLQ(get(get(target, "DeadLetterConfig"), "Arn")) || get(target, "RetryPolicy") == nil {
		t.Error("the plan schedule does not retry and then dead-letter to the events dead-letter queue")
	}
	onFailure := get(get(get(get(get(res, "PlannerFunction"), "Properties"), "EventInvokeConfig"), "DestinationConfig"), "OnFailure")
	if get(onFailure, "Type") == nil || get(onFailure, "Type").Value != "SQS" || !isDLQ(get(onFailure, "Destination")) {
		t.Error("the planner's failed asynchronous invocations have no on-failure destination on the events dead-letter queue")
	}
	stmts := get(get(get(get(res, "EventsDeadLetterQueuePolicy"), "Properties"), "PolicyDocument"), "Statement")
	if stmts == nil {
		t.Fatal("hub.yaml has no EventsDeadLetterQueuePolicy")
	}
	var allowed []string
	for _, st := range stmts.Content {
		if get(st, "Effect").Value != "Allow" {
			continue
		}
		if p := get(get(st, "Principal"), "Service"); p == nil || p.Value != "events.amazonaws.com" || !slices.Equal(scalars(get(st, "Action")), []string{"sqs:SendMessage"}) {
			t.Errorf("events dead-letter queue policy allows %v to %v, want only events.amazonaws.com to send", get(st, "Principal"), scalars(get(st, "Action")))
		}
		allowed = append(allowed, scalars(get(get(get(st, "Condition"), "ArnEquals"), "aws:SourceArn"))...)
	}
	if !slices.Equal(sorted(allowed), sorted(rules)) {
		t.Errorf("events dead-letter queue accepts EventBridge sends for %v, want exactly the rules %v", allowed, rules)
	}
	alarm := get(get(res, "EventsDeadLetterAlarm"), "Properties")
	if dims := get(alarm, "Dimensions"); dims == nil || len(dims.Content) != 1 || get(dims.Content[0], "Value").Value != "EventsDeadLetterQueue.QueueName" {
		t.Error("no alarm on the events dead-letter queue's depth")
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
		{"arch-default", "ARG TARGETARCH=amd64: a default wins over docker build --platform", func(s string) string {
			return strings.Replace(s, "ARG TARGETARCH\n", "ARG TARGETARCH=amd64\n", 1)
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

// TestImageArchitecture: the image is built for the architecture ECS runs it on. Every
// `docker build` of the guide and of the Dockerfile's header names --platform
// linux/ARCH, ARCH being ecs-worker.yaml's CpuArchitecture, and the Dockerfile compiles
// for BuildKit's TARGETARCH (which --platform sets; the Dockerfile rules refuse a default).
func TestImageArchitecture(t *testing.T) {
	t.Parallel()
	cpu := get(get(get(get(resources(t, "ecs-worker.yaml"), "TaskDefinition"), "Properties"), "RuntimePlatform"), "CpuArchitecture")
	arch := map[string]string{"ARM64": "arm64", "X86_64": "amd64"}[cpu.Value]
	if arch == "" {
		t.Fatalf("ecs-worker.yaml CpuArchitecture %q", cpu.Value)
	}
	builds := 0
	for _, f := range []string{"README.md", "Dockerfile"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, "docker build ") {
				continue
			}
			builds++
			if !strings.Contains(line, "--platform linux/"+arch+" ") {
				t.Errorf("%s: %q does not build for linux/%s, the ECS tasks' architecture", f, strings.TrimSpace(line), arch)
			}
		}
	}
	if builds < 2 {
		t.Errorf("found %d docker build commands in README.md and the Dockerfile, want one in each", builds)
	}
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ARG TARGETARCH$`).Match(b) || !strings.Contains(string(b), "GOARCH=${TARGETARCH}") {
		t.Error("the Dockerfile does not compile for BuildKit's TARGETARCH")
	}
}

// TestLambdaCheckRefusesWhatIsNotAStaticGoBinary: the make lambda check fails on a
// bootstrap that is not a Go binary, on a missing architecture, on a binary of the wrong
// architecture and on a dynamically linked one; it passes the same small program built
// as make lambda builds it.
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

	// A small Go program, built like make lambda does (static, CGO off, lambda.norpc) for
	// each architecture, and with cgo for this machine's: dynamically linked to libc.
	src := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module bootstrap\n\ngo 1.26\n",
		"main.go": "package main\n\nfunc main() {}\n",
		"cgo.go":  "//go:build cgo\n\npackage main\n\nimport _ \"runtime/cgo\"\n",
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := func(name, arch, cgo string) string {
		t.Helper()
		bin := filepath.Join(src, name)
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED="+cgo, "GOWORK=off", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, out)
		}
		return bin
	}
	static := map[string]string{"arm64": build("static-arm64", "arm64", "0"), "amd64": build("static-amd64", "amd64", "0")}
	host := runtime.GOARCH
	if static[host] == "" {
		t.Fatalf("this machine is %s: the dynamic case needs arm64 or amd64", host)
	}
	dynamic := maps.Clone(static)
	dynamic[host] = build("dynamic", host, "1")
	for _, c := range []struct {
		name string
		bins map[string]string // arch → bootstrap
		want string            // "" passes
	}{
		{"as make lambda builds", static, ""},
		{"wrong architecture", map[string]string{"arm64": static["amd64"], "amd64": static["amd64"]}, "arm64/bootstrap: not an arm64 binary"},
		{"dynamically linked", dynamic, host + "/bootstrap: not statically linked"},
	} {
		for arch, bin := range c.bins {
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, arch, "bootstrap"), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		out, err := checker(t, "lambda", dir)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: the lambda check fails: %v\n%s", c.name, err, out)
		case c.want != "" && (err == nil || !strings.Contains(out, c.want)):
			t.Errorf("%s: lambda check %v, want it to fail with %q:\n%s", c.name, err, c.want, out)
		}
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
