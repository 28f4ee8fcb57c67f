package config

import (
	"strings"
	"testing"
	"time"
)

// copyDoc is a config with two accounts and a policy whose extra lines are lines.
func copyDoc(lines string) string {
	return "accounts:\n  - id: \"111111111111\"\n  - id: \"222222222222\"\n" +
		"policies:\n  - name: p\n    retain: {max_age: 7d}\n" + lines
}

func TestParseCopy(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader(copyDoc(`    copy:
      - region: us-west-2
        account: "222222222222"
        kms_key: arn:aws:kms:us-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab
        retain: {keep_daily: 7, keep_monthly: 12, min_keep: 2}
      - region: eu-west-1
        retain: {max_age: 30d}
    archive: {after: 90d}
`)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	p := c.Policies[0]
	if len(p.Copy) != 2 || p.Copy[0].Account != "222222222222" || p.Copy[0].Retain.KeepMonthly != 12 || p.Copy[0].Retain.Floor() != 2 ||
		p.Copy[1].Retain.MaxAge != Duration(30*24*time.Hour) || p.Copy[1].Retain.Floor() != 1 {
		t.Fatalf("copy = %+v", p.Copy)
	}
	if p.Archive == nil || p.Archive.After != Duration(90*24*time.Hour) {
		t.Fatalf("archive = %+v", p.Archive)
	}
	if d, ok := p.CopyTo("111111111111", "us-east-1", "222222222222", "us-west-2"); !ok || d.KMSKey == "" {
		t.Errorf("CopyTo vault = %+v, %v", d, ok)
	}
	if _, ok := p.CopyTo("111111111111", "us-east-1", "111111111111", "eu-west-1"); !ok {
		t.Error("CopyTo own account's eu-west-1: not found")
	}
	if _, ok := p.CopyTo("111111111111", "eu-west-1", "111111111111", "eu-west-1"); ok {
		t.Error("a snapshot copies onto its own account-region")
	}
	if got := c.Limits.Buckets()["CopySnapshot"]; got != (Bucket{Burst: 50, PerSecond: 5}) {
		t.Errorf("CopySnapshot bucket = %+v", got)
	}
	if got := c.Limits.Buckets()["ModifySnapshotTier"]; got != (Bucket{Burst: 50, PerSecond: 5}) {
		t.Errorf("ModifySnapshotTier bucket = %+v", got)
	}
}

func TestParseCopyInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, lines string
		want        []string
	}{
		{"bad region", "    copy: [{region: mars, retain: {max_age: 1d}}]\n", []string{"policies[p].copy[0].region", `"mars"`}},
		{"unknown account", "    copy: [{region: us-west-2, account: \"333333333333\", retain: {max_age: 1d}}]\n", []string{"policies[p].copy[0].account", "333333333333", "not in accounts"}},
		{"bad account", "    copy: [{region: us-west-2, account: \"12\", retain: {max_age: 1d}}]\n", []string{"policies[p].copy[0].account", `"12"`}},
		{"no retain rule", "    copy: [{region: us-west-2}]\n", []string{"policies[p].copy[0].retain", "no keep rule"}},
		{"negative min_keep", "    copy: [{region: us-west-2, retain: {max_age: 1d, min_keep: -1}}]\n", []string{"policies[p].copy[0].retain.min_keep", "-1"}},
		{"unknown retain key", "    copy: [{region: us-west-2, retain: {keep_forever: 1}}]\n", []string{"policies[0].copy[0].retain.keep_forever: unknown key"}},
		{"unknown copy key", "    copy: [{region: us-west-2, vault: x, retain: {max_age: 1d}}]\n", []string{"policies[0].copy[0].vault: unknown key"}},
		{"kms key not an ARN", "    copy: [{region: us-west-2, kms_key: mykey, retain: {max_age: 1d}}]\n", []string{"policies[p].copy[0].kms_key", `"mykey"`}},
		{"kms key in another region", "    copy: [{region: us-west-2, kms_key: \"arn:aws:kms:us-east-1:111111111111:key/abcd\", retain: {max_age: 1d}}]\n",
			[]string{"policies[p].copy[0].kms_key", "us-east-1", "not us-west-2"}},
		{"destination twice", "    copy: [{region: us-west-2, retain: {max_age: 1d}}, {region: us-west-2, retain: {max_age: 2d}}]\n", []string{"policies[p].copy[1]", "twice"}},
		{"archive too soon", "    archive: {after: 1h}\n", []string{"policies[p].archive.after", "1h0m0s"}},
		{"archive bad duration", "    archive: {after: soon}\n", []string{"policies[0].archive.after", "soon"}},
		{"unknown archive key", "    archive: {after: 90d, tier: deep}\n", []string{"policies[0].archive.tier: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(strings.NewReader(copyDoc(tt.lines)))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
