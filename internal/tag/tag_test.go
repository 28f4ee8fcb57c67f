package tag

import (
	"fmt"
	"strings"
	"testing"
)

// TestKeys pins the tag keys of DESIGN.md §4: they are a contract with every snapshot
// already in the field, and renaming one would orphan them.
func TestKeys(t *testing.T) {
	t.Parallel()
	tests := []struct{ got, want string }{
		{Policy, "snapfleet:policy"},
		{Job, "snapfleet:job"},
		{Volume, "snapfleet:volume"},
		{Instance, "snapfleet:instance"},
		{Device, "snapfleet:device"},
		{Expires, "snapfleet:expires"},
		{AutoBackup, "AutoBackup"},
		{Name, "Name"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("tag key %q, want %q", tt.got, tt.want)
		}
		if seen[tt.got] {
			t.Errorf("tag key %q defined twice", tt.got)
		}
		seen[tt.got] = true
		if Protected(tt.got) {
			t.Errorf("snapfleet's own key %q is protected", tt.got)
		}
	}
}

func TestProtected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key  string
		want bool
	}{
		{"aws:backup:source-resource", true},
		{"aws:backup:source-resource-arn", true},
		{"aws:dlm:lifecycle-policy-id", true},
		{"aws:dlm:lifecycle-schedule-name", true},
		{"aws:dlm:", true},
		{"aws:backup", false},
		{"aws:cloudformation:stack-name", false},
		{"aws:ec2launchtemplate:id", false},
		{"dlm:lifecycle-policy-id", false},
		{"backup:x", false},
		{"xaws:backup:x", false},
		{"snapfleet:policy", false},
		{"Name", false},
		{"", false},
		// AWS reserves the aws: prefix in lower case only; other cases are user tags.
		{"AWS:backup:x", false},
	}
	for _, tt := range tests {
		if got := Protected(tt.key); got != tt.want {
			t.Errorf("Protected(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func FuzzProtected(f *testing.F) {
	for _, s := range []string{"aws:backup:x", "aws:dlm:y", "aws:", "", "snapfleet:policy"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		want := strings.HasPrefix(key, "aws:backup:") || strings.HasPrefix(key, "aws:dlm:")
		if Protected(key) != want {
			t.Fatalf("Protected(%q) = %v", key, !want)
		}
		if strings.HasPrefix(key, "snapfleet:") && Protected(key) {
			t.Fatalf("snapfleet key %q protected", key)
		}
	})
}

func ExampleProtected() {
	for _, k := range []string{"aws:backup:source-resource", "aws:dlm:lifecycle-policy-id", Policy} {
		fmt.Println(k, Protected(k))
	}
	// Output:
	// aws:backup:source-resource true
	// aws:dlm:lifecycle-policy-id true
	// snapfleet:policy false
}
