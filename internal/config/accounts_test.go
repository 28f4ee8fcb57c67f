package config

import (
	"reflect"
	"strings"
	"testing"
)

const orgPolicy = `
policies:
  - name: daily
    retain: {max_age: 7d}
`

func TestParseOrganization(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader(`
accounts:
  organization:
    role_name: snapfleet-member
    external_id: ext-1
    exclude: ["222222222222"]
    include_ous: [ou-ab12-cdef3456, r-ab12]
` + orgPolicy))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Organization{RoleName: "snapfleet-member", ExternalID: "ext-1",
		Exclude: []string{"222222222222"}, IncludeOUs: []string{"ou-ab12-cdef3456", "r-ab12"}}
	if !reflect.DeepEqual(c.Organization, want) || len(c.Accounts) != 0 {
		t.Fatalf("organization %+v, accounts %v", c.Organization, c.Accounts)
	}
	if got := want.RoleARN("111111111111"); got != "arn:aws:iam::111111111111:role/snapfleet-member" {
		t.Errorf("RoleARN = %s", got)
	}
	if !want.Excludes("222222222222") || want.Excludes("111111111111") {
		t.Error("Excludes is wrong")
	}

	// The list form still fills Accounts and leaves Organization nil.
	c, err = Parse(strings.NewReader(`
accounts:
  - id: "111111111111"
    role_arn: arn:aws:iam::111111111111:role/x
` + orgPolicy))
	if err != nil || c.Organization != nil || len(c.Accounts) != 1 || c.Accounts[0].RoleARN != "arn:aws:iam::111111111111:role/x" {
		t.Fatalf("list form: %+v, %v", c, err)
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader(`
limits:
  create_snapshot: {burst: 10, per_second: 0.5}
  describe_snapshot_attribute: {burst: 50, per_second: 10}
` + orgPolicy))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := DefaultLimits()
	want["CreateSnapshot"] = Bucket{Burst: 10, PerSecond: 0.5}
	want["DescribeSnapshotAttribute"] = Bucket{Burst: 50, PerSecond: 10}
	if got := c.Limits.Buckets(); !reflect.DeepEqual(got, want) {
		t.Errorf("Buckets = %v, want %v", got, want)
	}
	if got := Default().Limits.Buckets(); !reflect.DeepEqual(got, DefaultLimits()) {
		t.Errorf("default Buckets = %v", got)
	}
	// Every key of limits is an EC2 action with a default bucket of its own.
	for _, f := range (Limits{}).fields() {
		if _, ok := DefaultLimits()[f.action]; !ok {
			t.Errorf("limits.%s: action %s has no default bucket", f.key, f.action)
		}
	}
	if n, m := len((Limits{}).fields()), len(DefaultLimits()); n != m {
		t.Errorf("%d keys of limits, %d default buckets", n, m)
	}
}

// TestParseLimitsOldDescribeKey: a config written for the shared Describe bucket is
// refused with one line that names the key and the keys that replace it.
func TestParseLimitsOldDescribeKey(t *testing.T) {
	t.Parallel()
	_, err := Parse(strings.NewReader("limits:\n  describe: {burst: 100, per_second: 20}\n" + orgPolicy))
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("old describe key: %v, want one line", err)
	}
	for _, want := range []string{"limits.describe", "describe_snapshots", "describe_volumes", "describe_instances",
		"describe_images", "describe_snapshot_attribute", "describe_locked_snapshots"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestParseAccountsLimitsInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ doc, want string }{
		{"accounts: {organization: {role_name: r, rolename: x}}", "accounts.organization.rolename: unknown key"},
		{"accounts: {org: {role_name: r}}", "accounts.org: unknown key"},
		{"accounts: {}", "must hold organization"},
		{"accounts: {organization: {external_id: x}}", "role_name: required"},
		{"accounts: {organization: {role_name: \"arn:aws:iam::111111111111:role/x\"}}", "not a role name"},
		{"accounts: {organization: {role_name: r, exclude: [\"12\"]}}", "exclude[0]"},
		{"accounts: {organization: {role_name: r, include_ous: [ou-1]}}", "include_ous[0]"},
		{"accounts: [{id: \"111111111111\", rolearn: x}]", "accounts[0].rolearn: unknown key"},
		{"limits: {create_snapshot: {burst: 0, per_second: 1}}", "limits.create_snapshot.burst"},
		{"limits: {describe_volumes: {burst: 1, per_second: 0}}", "limits.describe_volumes.per_second"},
		{"limits: {create_tags: {burst: 1, per_second: .nan}}", "limits.create_tags.per_second"},
		{"limits: {delete_snapshots: {burst: 1, per_second: 1}}", "limits.delete_snapshots: unknown key"},
		{"limits: {describe_images: {burst: 1, per_second: 1, refill: 2}}", "limits.describe_images.refill: unknown key"},
		{"limits: [describe_snapshots]", "limits: cannot unmarshal"},
	} {
		_, err := Parse(strings.NewReader(tc.doc + orgPolicy))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", tc.doc, err, tc.want)
		}
	}
	both := &Config{Accounts: []Account{{ID: "111111111111"}}, Organization: &Organization{RoleName: "r"},
		Policies: []Policy{DefaultPolicy()}}
	if err := both.Validate(); err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Errorf("list and organization: %v", err)
	}
}
