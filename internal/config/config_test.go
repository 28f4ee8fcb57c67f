package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// designExample is the example of DESIGN.md §3, verbatim but for the comments.
const designExample = `
regions: [us-east-1, eu-west-1]        # default: the SDK's region
accounts:                              # default: the caller's own account, no role
  - id: "111111111111"
    role_arn: arn:aws:iam::111111111111:role/snapfleet-member
    external_id: "..."                 # optional
policies:                              # default: one policy "default" (below)
  - name: daily                        # [a-z0-9-]+, unique
    select:
      instance_states: [running]       # default [running]
      instance_tags: {AutoBackup: "true"}   # all must match; {} = every instance
      exclude_tags: {"snapfleet:skip": "true"}  # on the instance or the volume
    every: 24h                         # Go duration or Nd
    retain:                            # keep rules
      max_age: 30d                     # keep what is younger than this; 0 = rule off
      keep_last: 0                     # keep the newest N per volume; 0 = rule off
      min_keep: 1                      # floor
    tags: {Team: ops}                  # added to every snapshot
`

func TestParseDesignExample(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader(designExample))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	one := 1
	want := &Config{
		Regions: []string{"us-east-1", "eu-west-1"},
		Accounts: []Account{{
			ID:         "111111111111",
			RoleARN:    "arn:aws:iam::111111111111:role/snapfleet-member",
			ExternalID: "...",
		}},
		Policies: []Policy{{
			Name: "daily",
			Select: Select{
				InstanceStates: []string{"running"},
				InstanceTags:   map[string]string{"AutoBackup": "true"},
				ExcludeTags:    map[string]string{"snapfleet:skip": "true"},
			},
			Every:  Duration(24 * time.Hour),
			Retain: Retain{MaxAge: Duration(30 * 24 * time.Hour), KeepLast: 0, MinKeep: &one},
			Tags:   map[string]string{"Team": "ops"},
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Parse =\n%+v\nwant\n%+v", c, want)
	}
	if p, ok := c.Policy("daily"); !ok || p.Retain.Floor() != 1 {
		t.Errorf("Policy(daily) = %+v, %v", p, ok)
	}
	if _, ok := c.Policy("weekly"); ok {
		t.Error("Policy(weekly) found")
	}
	if a, ok := c.Account("111111111111"); !ok || a.ExternalID != "..." {
		t.Errorf("Account = %+v, %v", a, ok)
	}
	if _, ok := c.Account("222222222222"); ok {
		t.Error("Account(222222222222) found")
	}
}

// policy wraps retain and extra policy lines into a one-policy document.
func policy(lines string) string {
	return "policies:\n  - name: p\n" + lines
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	days := func(n int) Duration { return Duration(time.Duration(n) * 24 * time.Hour) }
	tests := []struct {
		name  string
		doc   string
		check func(*Config) error
	}{
		{"empty file", "", isDefault},
		{"only a comment", "# nothing here\n", isDefault},
		{"document marker only", "---\n", isDefault},
		{"max_age in days", policy("    retain: {max_age: 30d}\n"), maxAge(days(30))},
		{"max_age in hours", policy("    retain: {max_age: 36h}\n"), maxAge(Duration(36 * time.Hour))},
		{"max_age mixed Go duration", policy("    retain: {max_age: 1h30m}\n"), maxAge(Duration(90 * time.Minute))},
		{"max_age 0 with keep_last", policy("    retain: {max_age: 0, keep_last: 7}\n"), func(c *Config) error {
			r := c.Policies[0].Retain
			if r.MaxAge != 0 || r.KeepLast != 7 || r.Floor() != 1 {
				return fmt.Errorf("retain = %+v", r)
			}
			return nil
		}},
		{"max_age 0d with keep_last", policy("    retain: {max_age: 0d, keep_last: 1}\n"), maxAge(0)},
		{"GFS rules alone", policy("    retain: {keep_hourly: 24, keep_daily: 7, keep_weekly: 4, keep_monthly: 12, keep_yearly: 3}\n"), func(c *Config) error {
			r := c.Policies[0].Retain
			if r.KeepHourly != 24 || r.KeepDaily != 7 || r.KeepWeekly != 4 || r.KeepMonthly != 12 || r.KeepYearly != 3 || r.Floor() != 1 || r.MaxAge != 0 {
				return fmt.Errorf("retain = %+v", r)
			}
			if c.DeleteFraction() != DefaultMaxDeleteFraction || c.Policies[0].OrphanFloor() != 1 || c.Policies[0].Adopt != nil {
				return fmt.Errorf("defaults: fraction %v, orphan floor %d, adopt %+v", c.DeleteFraction(), c.Policies[0].OrphanFloor(), c.Policies[0].Adopt)
			}
			return nil
		}},
		{"one count rule is enough", policy("    retain: {keep_yearly: 1}\n"), func(c *Config) error {
			if c.Policies[0].Retain.KeepYearly != 1 {
				return fmt.Errorf("retain = %+v", c.Policies[0].Retain)
			}
			return nil
		}},
		{"orphans, adopt and max_delete_fraction", "max_delete_fraction: 0.25\npolicies:\n  - name: p\n    retain: {max_age: 30d, min_keep: 2}\n    orphans: {min_keep: 0}\n    adopt: {tags: {AutoBackup: \"true\"}}\n", func(c *Config) error {
			p := c.Policies[0]
			if c.DeleteFraction() != 0.25 || p.OrphanFloor() != 0 || p.Retain.Floor() != 2 {
				return fmt.Errorf("fraction %v, orphan floor %d, floor %d", c.DeleteFraction(), p.OrphanFloor(), p.Retain.Floor())
			}
			legacy := map[string]string{"AutoBackup": "true", "Name": "x"}
			if got, ok := c.Adopter(legacy); !ok || got.Name != "p" {
				return fmt.Errorf("Adopter(legacy) = %v, %v", got.Name, ok)
			}
			for _, tags := range []map[string]string{{"AutoBackup": "false"}, {}, {"AutoBackup": "true", "snapfleet:policy": "p"}} {
				if _, ok := c.Adopter(tags); ok {
					return fmt.Errorf("Adopter(%v) adopts", tags)
				}
			}
			return nil
		}},
		{"orphans.min_keep defaults to the floor", policy("    retain: {max_age: 30d, min_keep: 3}\n"), func(c *Config) error {
			if c.Policies[0].OrphanFloor() != 3 {
				return fmt.Errorf("orphan floor %d", c.Policies[0].OrphanFloor())
			}
			return nil
		}},
		// Issue 12.1: without an orphans key the newest snapshot of a gone volume is kept
		// even under retain.min_keep 0; only an explicit orphans.min_keep 0 lets it go.
		{"orphans.min_keep defaults to at least 1 under min_keep 0", policy("    retain: {max_age: 30d, min_keep: 0}\n"), func(c *Config) error {
			if f := c.Policies[0].OrphanFloor(); f != 1 {
				return fmt.Errorf("orphan floor %d, want 1", f)
			}
			return nil
		}},
		{"orphans.min_keep 1 under min_keep 0", policy("    retain: {max_age: 30d, min_keep: 0}\n    orphans: {min_keep: 1}\n"), func(c *Config) error {
			if f := c.Policies[0].OrphanFloor(); f != 1 {
				return fmt.Errorf("orphan floor %d, want 1", f)
			}
			return nil
		}},
		{"explicit orphans.min_keep 0 under min_keep 0", policy("    retain: {max_age: 30d, min_keep: 0}\n    orphans: {min_keep: 0}\n"), func(c *Config) error {
			if f := c.Policies[0].OrphanFloor(); f != 0 {
				return fmt.Errorf("orphan floor %d, want 0", f)
			}
			return nil
		}},
		{"max_delete_fraction 1", "max_delete_fraction: 1\n", func(c *Config) error {
			if c.DeleteFraction() != 1 {
				return fmt.Errorf("fraction %v", c.DeleteFraction())
			}
			return nil
		}},
		{"max_age quoted", policy("    retain: {max_age: \"7d\"}\n"), maxAge(days(7))},
		{"every in days", policy("    every: 7d\n    retain: {max_age: 30d}\n"), every(days(7))},
		{"every 12h", policy("    every: 12h\n    retain: {max_age: 30d}\n"), every(Duration(12 * time.Hour))},
		{"every 1m is the least", policy("    every: 1m\n    retain: {max_age: 30d}\n"), every(Duration(time.Minute))},
		{"every defaults to 24h", policy("    retain: {max_age: 30d}\n"), every(days(1))},
		{"min_keep 0 is allowed", policy("    retain: {keep_last: 3, min_keep: 0}\n"), func(c *Config) error {
			if f := c.Policies[0].Retain.Floor(); f != 0 {
				return fmt.Errorf("Floor = %d", f)
			}
			return nil
		}},
		{"min_keep unset is 1", policy("    retain: {keep_last: 3}\n"), func(c *Config) error {
			if f := c.Policies[0].Retain.Floor(); f != 1 {
				return fmt.Errorf("Floor = %d", f)
			}
			return nil
		}},
		{"instance_states default", policy("    retain: {max_age: 1d}\n"), func(c *Config) error {
			if s := c.Policies[0].Select.InstanceStates; !reflect.DeepEqual(s, []string{"running"}) {
				return fmt.Errorf("instance_states = %v", s)
			}
			return nil
		}},
		{"instance_states stopped", policy("    select: {instance_states: [running, stopped]}\n    retain: {max_age: 1d}\n"), func(c *Config) error {
			if s := c.Policies[0].Select.InstanceStates; !reflect.DeepEqual(s, []string{"running", "stopped"}) {
				return fmt.Errorf("instance_states = %v", s)
			}
			return nil
		}},
		{"two policies", "policies:\n  - name: daily\n    retain: {max_age: 7d}\n  - name: weekly-2\n    every: 7d\n    retain: {keep_last: 4}\n", func(c *Config) error {
			if len(c.Policies) != 2 || c.Policies[1].Name != "weekly-2" {
				return fmt.Errorf("policies = %+v", c.Policies)
			}
			return nil
		}},
		{"account without role", "accounts:\n  - id: \"012345678901\"\n", func(c *Config) error {
			if c.Accounts[0].ID != "012345678901" {
				return fmt.Errorf("id = %q", c.Accounts[0].ID)
			}
			return nil
		}},
		{"account single-quoted", "accounts:\n  - id: '111111111111'\n", func(c *Config) error { return nil }},
		{"govcloud role", "accounts:\n  - id: \"111111111111\"\n    role_arn: arn:aws-us-gov:iam::111111111111:role/path/x\n", func(c *Config) error { return nil }},
		{"aws: tags may be selected on", policy("    select: {exclude_tags: {\"aws:backup:source-resource\": x}}\n    retain: {max_age: 1d}\n"), func(c *Config) error { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(strings.NewReader(tt.doc))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.doc, err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate after Parse: %v", err)
			}
			if err := tt.check(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func isDefault(c *Config) error {
	if !reflect.DeepEqual(c, Default()) {
		return fmt.Errorf("got %+v, want Default()", c)
	}
	p := c.Policies[0]
	if p.Name != DefaultPolicyName || p.Every != Duration(24*time.Hour) ||
		p.Retain.MaxAge != Duration(30*24*time.Hour) || p.Retain.Floor() != 1 ||
		!reflect.DeepEqual(p.Select.InstanceStates, []string{"running"}) {
		return fmt.Errorf("default policy is %+v", p)
	}
	return nil
}

func maxAge(want Duration) func(*Config) error {
	return func(c *Config) error {
		if got := c.Policies[0].Retain.MaxAge; got != want {
			return fmt.Errorf("max_age = %s, want %s", got, want)
		}
		return nil
	}
}

func every(want Duration) func(*Config) error {
	return func(c *Config) error {
		if got := c.Policies[0].Every; got != want {
			return fmt.Errorf("every = %s, want %s", got, want)
		}
		return nil
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		// want are substrings the one-line error must contain: the key, the value.
		want []string
	}{
		{"unknown top-level key", "region: [us-east-1]\n", []string{"line 1: region: unknown key"}},
		{"unknown key after a good one", "regions: [us-east-1]\nmax_delete: 1\n", []string{"line 2: max_delete: unknown key"}},
		{"unknown policy key", policy("    retain: {max_age: 1d}\n    schedule: daily\n"), []string{"line 4: policies[0].schedule: unknown key"}},
		{"unknown retain key", policy("    retain: {max_age: 1d, keep_forever: 7}\n"), []string{"line 3: policies[0].retain.keep_forever: unknown key"}},
		{"unknown orphans key", policy("    retain: {max_age: 1d}\n    orphans: {keep: 0}\n"), []string{"policies[0].orphans.keep: unknown key"}},
		{"unknown adopt key", policy("    retain: {max_age: 1d}\n    adopt: {tag: {a: b}}\n"), []string{"policies[0].adopt.tag: unknown key"}},
		{"negative keep_daily", policy("    retain: {keep_daily: -7}\n"), []string{"policies[p].retain.keep_daily", "-7"}},
		{"negative keep_yearly", policy("    retain: {keep_weekly: 2, keep_yearly: -1}\n"), []string{"retain.keep_yearly", "-1"}},
		{"count rules all zero", policy("    retain: {keep_hourly: 0, keep_daily: 0, keep_weekly: 0, keep_monthly: 0, keep_yearly: 0, min_keep: 5}\n"), []string{"no keep rule"}},
		{"keep_daily not a number", policy("    retain: {keep_daily: seven}\n"), []string{"policies[0].retain.keep_daily", "seven", "an integer"}},
		{"negative orphans.min_keep", policy("    retain: {max_age: 1d}\n    orphans: {min_keep: -1}\n"), []string{"policies[p].orphans.min_keep", "-1"}},
		{"orphans.min_keep above the floor", policy("    retain: {max_age: 1d, min_keep: 2}\n    orphans: {min_keep: 3}\n"), []string{"policies[p].orphans.min_keep", "3", "only lower"}},
		{"orphans.min_keep above the live floor under min_keep 0", policy("    retain: {max_age: 1d, min_keep: 0}\n    orphans: {min_keep: 2}\n"), []string{"policies[p].orphans.min_keep", "2", "live floor 1", "only lower"}},
		{"unknown consistency", policy("    retain: {max_age: 1d}\n    consistency: crash\n"), []string{"policies[p].consistency", `"crash"`}},
		{"exclude_boot per volume", policy("    retain: {max_age: 1d}\n    exclude_boot: true\n"), []string{"policies[p].exclude_boot", "consistency: instance"}},
		{"empty adopt", policy("    retain: {max_age: 1d}\n    adopt: {}\n"), []string{"policies[p].adopt.tags", "empty"}},
		{"adopt with empty tags", policy("    retain: {max_age: 1d}\n    adopt: {tags: {}}\n"), []string{"adopt.tags", "empty"}},
		{"adopt by a snapfleet tag", policy("    retain: {max_age: 1d}\n    adopt: {tags: {\"snapfleet:policy\": x}}\n"), []string{"adopt.tags", "snapfleet:"}},
		{"two adopting policies", "policies:\n  - name: a\n    retain: {max_age: 1d}\n    adopt: {tags: {AutoBackup: \"true\"}}\n  - name: b\n    retain: {max_age: 1d}\n    adopt: {tags: {Backup: yes}}\n",
			[]string{"policies[b].adopt", "at most one"}},
		{"max_delete_fraction zero", "max_delete_fraction: 0\n", []string{"max_delete_fraction", "0"}},
		{"max_delete_fraction above one", "max_delete_fraction: 1.5\n", []string{"max_delete_fraction", "1.5"}},
		{"max_delete_fraction negative", "max_delete_fraction: -0.1\n", []string{"max_delete_fraction"}},
		{"max_delete_fraction not a number", "max_delete_fraction: half\n", []string{"max_delete_fraction", "half", "a number"}},
		{"max_delete_fraction NaN", "max_delete_fraction: .nan\n", []string{"max_delete_fraction", "NaN"}},
		{"max_delete_fraction +Inf", "max_delete_fraction: .inf\n", []string{"max_delete_fraction", "+Inf"}},
		{"max_delete_fraction -Inf", "max_delete_fraction: -.inf\n", []string{"max_delete_fraction", "-Inf"}},
		{"empty policies list", "policies: []\n", []string{"policies: no policies", "omit the key"}},
		{"policies key without a value", "regions: [us-east-1]\npolicies:\n", []string{"policies: no policies", "omit the key"}},
		{"policies null", "policies: ~\n", []string{"policies: no policies"}},
		{"max_delete_fraction in a policy", policy("    retain: {max_age: 1d}\n    max_delete_fraction: 0.2\n"), []string{"policies[0].max_delete_fraction: unknown key"}},
		{"unknown select key", policy("    select: {instance_tag: {a: b}}\n    retain: {max_age: 1d}\n"), []string{"policies[0].select.instance_tag: unknown key"}},
		{"unknown account key", "accounts:\n  - id: \"111111111111\"\n    role: x\n", []string{"line 3: accounts[0].role: unknown key"}},
		{"bad duration", policy("    retain: {max_age: 30days}\n"), []string{`line 3: policies[0].retain.max_age: bad duration "30days"`}},
		{"bad duration in a flow mapping, second key", policy("    retain: {keep_last: 2, max_age: 3x}\n"), []string{`line 3: policies[0].retain.max_age: bad duration "3x"`}},
		{"bad duration of the second policy", "policies:\n  - name: a\n    retain: {max_age: 1d}\n  - name: b\n    every: 3x\n    retain: {max_age: 1d}\n",
			[]string{`line 5: policies[1].every: bad duration "3x"`}},
		{"bad every", policy("    every: daily\n    retain: {max_age: 1d}\n"), []string{`line 3: policies[0].every: bad duration "daily"`}},
		{"fractional days", policy("    retain: {max_age: 1.5d}\n"), []string{`policies[0].retain.max_age: bad duration "1.5d"`}},
		{"duration as list", policy("    retain: {max_age: [1d]}\n"), []string{"policies[0].retain.max_age: want a duration, got a list"}},
		{"duration as map", policy("    retain: {max_age: {d: 1}}\n"), []string{"policies[0].retain.max_age: want a duration, got a mapping"}},
		{"negative max_age", policy("    retain: {max_age: -1h}\n"), []string{"policies[0].retain.max_age", "-1h", "negative"}},
		{"negative days", policy("    retain: {max_age: -1d}\n"), []string{"policies[0].retain.max_age", "-1d"}},
		{"negative keep_last", policy("    retain: {max_age: 1d, keep_last: -1}\n"), []string{"keep_last", "-1"}},
		{"negative min_keep", policy("    retain: {max_age: 1d, min_keep: -2}\n"), []string{"min_keep", "-2"}},
		{"keep_last not a number", policy("    retain: {keep_last: seven}\n"), []string{"policies[0].retain.keep_last: cannot unmarshal !!str `seven` into an integer"}},
		{"every too short", policy("    every: 30s\n    retain: {max_age: 1d}\n"), []string{"every", "30s"}},
		{"no keep rule", policy("    retain: {min_keep: 3}\n"), []string{"policies[p].retain", "no keep rule"}},
		{"no retain at all", policy("    every: 1d\n"), []string{"no keep rule"}},
		{"all rules zero", policy("    retain: {max_age: 0, keep_last: 0}\n"), []string{"no keep rule"}},
		{"duplicate policy name", "policies:\n  - name: a\n    retain: {max_age: 1d}\n  - name: a\n    retain: {max_age: 2d}\n", []string{"policies[1].name", "duplicate", `"a"`}},
		{"upper-case policy name", "policies:\n  - name: Daily\n    retain: {max_age: 1d}\n", []string{"policies[0].name", `"Daily"`}},
		{"policy name with space", "policies:\n  - name: my policy\n    retain: {max_age: 1d}\n", []string{"policies[0].name"}},
		{"missing policy name", "policies:\n  - retain: {max_age: 1d}\n", []string{"policies[0].name", `""`}},
		{"policy name too long", "policies:\n  - name: " + strings.Repeat("a", 65) + "\n    retain: {max_age: 1d}\n", []string{"policies[0].name"}},
		{"bad instance state", policy("    select: {instance_states: [Running]}\n    retain: {max_age: 1d}\n"), []string{"instance_states[0]", "Running"}},
		{"unquoted account id", "accounts:\n  - id: 111111111111\n", []string{"accounts[0].id", "111111111111", "quote"}},
		{"unquoted account id with leading zero", "accounts:\n  - id: 012345678901\n", []string{"accounts[0].id", "012345678901", "quote"}},
		{"unquoted short number", "accounts:\n  - id: 1111\n", []string{"accounts[0].id", "1111"}},
		{"unquoted float", "accounts:\n  - id: 1.1e11\n", []string{"accounts[0].id"}},
		{"account id 11 digits", "accounts:\n  - id: \"11111111111\"\n", []string{"accounts[0].id", "12-digit"}},
		{"account id missing", "accounts:\n  - role_arn: arn:aws:iam::111111111111:role/x\n", []string{"accounts[0].id"}},
		{"duplicate account", "accounts:\n  - id: \"111111111111\"\n  - id: \"111111111111\"\n", []string{"accounts[1].id", "twice"}},
		{"role in other account", "accounts:\n  - id: \"111111111111\"\n    role_arn: arn:aws:iam::222222222222:role/x\n", []string{"accounts[0].role_arn", "222222222222", "111111111111"}},
		{"not a role ARN", "accounts:\n  - id: \"111111111111\"\n    role_arn: arn:aws:iam::111111111111:user/x\n", []string{"accounts[0].role_arn", "not an IAM role"}},
		{"external_id without role", "accounts:\n  - id: \"111111111111\"\n    external_id: x\n", []string{"accounts[0].external_id"}},
		{"bad region", "regions: [us-east1]\n", []string{"regions[0]", "us-east1"}},
		{"region twice", "regions: [us-east-1, eu-west-1, us-east-1]\n", []string{"regions[2]", "twice"}},
		{"regions not a list", "regions: us-east-1\n", []string{"line 1: regions: cannot unmarshal !!str `us-east-1` into a list"}},
		{"reserved snapfleet tag", policy("    retain: {max_age: 1d}\n    tags: {\"snapfleet:policy\": other}\n"), []string{"policies[p].tags", "snapfleet:policy", "snapfleet:"}},
		{"reserved aws tag", policy("    retain: {max_age: 1d}\n    tags: {\"aws:backup:x\": y}\n"), []string{"policies[p].tags", "aws:"}},
		{"reserved AWS tag upper case", policy("    retain: {max_age: 1d}\n    tags: {\"AWS:x\": y}\n"), []string{"aws:"}},
		{"empty tag key", policy("    retain: {max_age: 1d}\n    tags: {\"\": y}\n"), []string{"tags", "1 to 128"}},
		{"long tag key", policy("    retain: {max_age: 1d}\n    select: {instance_tags: {" + strings.Repeat("k", 129) + ": v}}\n"), []string{"instance_tags"}},
		{"long tag value", policy("    retain: {max_age: 1d}\n    tags: {k: " + strings.Repeat("v", 257) + "}\n"), []string{`tags["k"]`, "256"}},
		{"tag key with a newline", policy("    retain: {max_age: 1d}\n    tags: {\"snapfleet:a\\nb\": y}\n"), []string{"tags", `a\nb`}},
		{"multi-line scalar in a type error", "0\n\n00", []string{"cannot unmarshal", `0\n00`}},
		{"two documents", "regions: [us-east-1]\n---\nregions: [eu-west-1]\n", []string{"more than one"}},
		{"syntax error", "regions: [us-east-1\n", []string{"line"}},
		{"scalar document", "hello\n", []string{"hello"}},
		{"duplicate key", "regions: [us-east-1]\nregions: [eu-west-1]\n", []string{"line 2: regions: already defined at line 1"}},
		{"several type errors", policy("    retain: {max_age: 1d, keep_last: x, min_keep: y}\n"), []string{"policies[0].retain.keep_last: cannot unmarshal !!str `x`", "; line 3: policies[0].retain.min_keep: cannot unmarshal !!str `y`"}},
		{"same bad value twice", policy("    retain: {keep_last: x, keep_daily: x}\n"), []string{"policies[0].retain.keep_last: cannot", "; line 3: policies[0].retain.keep_daily: cannot"}},
		{"long bad value", policy("    retain: {keep_last: seventy-seven}\n"), []string{"policies[0].retain.keep_last: cannot unmarshal !!str `seventy...`"}},
		{"list for a number", policy("    retain: {keep_last: [1]}\n"), []string{"policies[0].retain.keep_last: cannot unmarshal !!seq into an integer"}},
		{"bool not a bool", policy("    retain: {max_age: 1d}\n    exclude_boot: maybe\n"), []string{"policies[0].exclude_boot", "true or false"}},
		{"policies not a list", "policies: {a: 1}\n", []string{"line 1: policies: cannot unmarshal !!map into a list"}},
		{"tags not a mapping", policy("    retain: {max_age: 1d}\n    tags: [a]\n"), []string{"line 4: policies[0].tags: cannot unmarshal !!seq into a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(strings.NewReader(tt.doc))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tt.doc, c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			// No Go type leaks to the user.
			for _, leak := range []string{"config.", "struct", "in type", "[]string", "int32"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q shows a Go type (%q)", msg, leak)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	missing := filepath.Join(dir, "missing.yaml")
	if err := os.WriteFile(good, []byte(designExample), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("policies:\n  - name: x\n    retain: {max_age: 1d, bogus: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("no path is the default", func(t *testing.T) {
		t.Parallel()
		c, err := Load("")
		if err != nil {
			t.Fatal(err)
		}
		if err := isDefault(c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("good file", func(t *testing.T) {
		t.Parallel()
		c, err := Load(good)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Policies) != 1 || c.Policies[0].Name != "daily" {
			t.Fatalf("policies = %+v", c.Policies)
		}
	})
	t.Run("missing file names the path", func(t *testing.T) {
		t.Parallel()
		_, err := Load(missing)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Fatalf("Load(missing) error %v does not name %s", err, missing)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error %v does not wrap fs.ErrNotExist", err)
		}
	})
	t.Run("bad file names the path and the key", func(t *testing.T) {
		t.Parallel()
		_, err := Load(bad)
		if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "bogus") {
			t.Fatalf("Load(bad) error %v does not name %s and bogus", err, bad)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("error is not one line: %q", err)
		}
	})
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"0", 0, false},
		{"0d", 0, false},
		{"0s", 0, false},
		{"30d", 30 * 24 * time.Hour, false},
		{"1d", 24 * time.Hour, false},
		{"36h", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{" 7d ", 7 * 24 * time.Hour, false},
		{"36600d", 36600 * 24 * time.Hour, false},
		{"36601d", 0, true},
		{"-1d", 0, true},
		{"-1h", 0, true},
		{"1.5d", 0, true},
		{"d", 0, true},
		{"1w", 0, true},
		{"", 0, true},
		{"30", 0, true},
		{"9999999999h", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.wantErr || time.Duration(got) != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tt.in, time.Duration(got), err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", strings.TrimSpace(tt.in))) {
			t.Errorf("ParseDuration(%q) error %q does not name the value", tt.in, err)
		}
	}
}

func TestDurationString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{24 * time.Hour, "1d"},
		{30 * 24 * time.Hour, "30d"},
		{36 * time.Hour, "36h0m0s"},
		{90 * time.Minute, "1h30m0s"},
	}
	for _, tt := range tests {
		if got := Duration(tt.d).String(); got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.d, got, tt.want)
		}
		// What String prints, ParseDuration reads back.
		back, err := ParseDuration(Duration(tt.d).String())
		if err != nil || time.Duration(back) != tt.d {
			t.Errorf("ParseDuration(%q) = %v, %v", Duration(tt.d).String(), back, err)
		}
	}
}

func TestPeriodStart(t *testing.T) {
	t.Parallel()
	utc := func(y int, m time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, m, d, h, mi, s, ns, time.UTC)
	}
	tokyo := time.FixedZone("JST", 9*3600)
	nyc := time.FixedZone("EST", -5*3600)
	day, week := 24*time.Hour, 7*24*time.Hour
	tests := []struct {
		name  string
		every time.Duration
		t     time.Time
		want  time.Time
	}{
		{"24h mid-day", day, utc(2026, 11, 22, 13, 4, 5, 6), utc(2026, 11, 22, 0, 0, 0, 0)},
		{"24h at midnight", day, utc(2026, 11, 22, 0, 0, 0, 0), utc(2026, 11, 22, 0, 0, 0, 0)},
		{"24h just before midnight", day, utc(2026, 11, 21, 23, 59, 59, 999999999), utc(2026, 11, 21, 0, 0, 0, 0)},
		{"24h just after midnight", day, utc(2026, 11, 22, 0, 0, 0, 1), utc(2026, 11, 22, 0, 0, 0, 0)},
		{"24h leap day", day, utc(2028, 2, 29, 12, 0, 0, 0), utc(2028, 2, 29, 0, 0, 0, 0)},
		{"24h Tokyo morning is the previous UTC day", day, time.Date(2026, 11, 22, 8, 0, 0, 0, tokyo), utc(2026, 11, 21, 0, 0, 0, 0)},
		{"24h Tokyo 9:00 is UTC midnight", day, time.Date(2026, 11, 22, 9, 0, 0, 0, tokyo), utc(2026, 11, 22, 0, 0, 0, 0)},
		{"24h New York evening is the next UTC day", day, time.Date(2026, 11, 21, 20, 0, 0, 0, nyc), utc(2026, 11, 22, 0, 0, 0, 0)},
		{"12h morning", 12 * time.Hour, utc(2026, 11, 22, 11, 59, 59, 0), utc(2026, 11, 22, 0, 0, 0, 0)},
		{"12h noon", 12 * time.Hour, utc(2026, 11, 22, 12, 0, 0, 0), utc(2026, 11, 22, 12, 0, 0, 0)},
		{"12h evening", 12 * time.Hour, utc(2026, 11, 22, 23, 0, 0, 0), utc(2026, 11, 22, 12, 0, 0, 0)},
		{"1h", time.Hour, utc(2026, 11, 22, 7, 30, 0, 0), utc(2026, 11, 22, 7, 0, 0, 0)},
		{"7h crosses midnight", 7 * time.Hour, utc(1970, 1, 2, 3, 0, 0, 0), utc(1970, 1, 1, 21, 0, 0, 0)},
		// 1970-01-01 was a Thursday: 7-day periods start on Thursdays.
		{"7d epoch", week, utc(1970, 1, 1, 0, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0)},
		{"7d Thursday start", week, utc(2026, 11, 19, 0, 0, 0, 0), utc(2026, 11, 19, 0, 0, 0, 0)},
		{"7d just before Thursday", week, utc(2026, 11, 18, 23, 59, 59, 999999999), utc(2026, 11, 12, 0, 0, 0, 0)},
		{"7d Sunday", week, utc(2026, 11, 22, 10, 0, 0, 0), utc(2026, 11, 19, 0, 0, 0, 0)},
		{"30d", 30 * day, utc(2026, 11, 22, 0, 0, 0, 0), utc(2026, 11, 3, 0, 0, 0, 0)}, // epoch + 692 * 30d
		{"before the epoch", day, utc(1969, 12, 31, 23, 0, 0, 0), utc(1969, 12, 31, 0, 0, 0, 0)},
		{"before the epoch on a boundary", day, utc(1969, 12, 31, 0, 0, 0, 0), utc(1969, 12, 31, 0, 0, 0, 0)},
		{"before the epoch 7d", week, utc(1969, 12, 31, 0, 0, 0, 0), utc(1969, 12, 25, 0, 0, 0, 0)},
		{"after 2262", day, utc(2300, 5, 6, 7, 8, 9, 0), utc(2300, 5, 6, 0, 0, 0, 0)},
		{"after 2262 7d", week, utc(2300, 5, 6, 7, 8, 9, 0), utc(2300, 5, 3, 0, 0, 0, 0)}, // a Thursday
		{"before 1678", day, utc(1600, 5, 6, 7, 8, 9, 0), utc(1600, 5, 6, 0, 0, 0, 0)},
		{"every 0 leaves t", 0, time.Date(2026, 11, 22, 8, 1, 2, 3, tokyo), utc(2026, 11, 21, 23, 1, 2, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Policy{Every: Duration(tt.every)}.PeriodStart(tt.t)
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Fatalf("PeriodStart(%v) every %v = %v, want %v", tt.t, tt.every, got, tt.want)
			}
			if tt.every > 0 {
				if ref := refPeriodStart(tt.every, tt.t); !got.Equal(ref) {
					t.Fatalf("PeriodStart = %v, reference %v", got, ref)
				}
			}
		})
	}
}

// refPeriodStart is the definition of a period start in exact integers:
// epoch + floor((t - epoch) / every) * every.
func refPeriodStart(every time.Duration, t time.Time) time.Time {
	ns := new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(int64(time.Second)))
	ns.Add(ns, big.NewInt(int64(t.Nanosecond())))
	e := big.NewInt(int64(every))
	k := new(big.Int).Div(ns, e) // Euclidean: floors for positive e
	start := new(big.Int).Mul(k, e)
	sec, rem := new(big.Int).DivMod(start, big.NewInt(int64(time.Second)), new(big.Int))
	return time.Unix(sec.Int64(), rem.Int64()).UTC()
}

func FuzzPeriodStart(f *testing.F) {
	f.Add(int64(1795392000), int64(0), int64(24*time.Hour))
	f.Add(int64(-1), int64(999999999), int64(7*24*time.Hour))
	f.Add(int64(10413792000), int64(5), int64(time.Minute+1))
	f.Fuzz(func(t *testing.T, sec, nsec, every int64) {
		if every <= 0 {
			return
		}
		// Stay within the years time.Time formats and the planner could ever see.
		sec %= 400 * 366 * 24 * 3600
		tm := time.Unix(sec, nsec%int64(time.Second))
		got := Policy{Every: Duration(every)}.PeriodStart(tm)
		if want := refPeriodStart(time.Duration(every), tm); !got.Equal(want) {
			t.Fatalf("PeriodStart(%v) every %v = %v, want %v", tm, time.Duration(every), got, want)
		}
		if got.After(tm) || !tm.Before(got.Add(time.Duration(every))) {
			t.Fatalf("%v is not in the period [%v, +%v)", tm, got, time.Duration(every))
		}
	})
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		designExample, "", "---\n", "policies: []\n", "regions: [us-east-1]\n",
		policy("    retain: {max_age: 30d, keep_last: 3, min_keep: 2}\n"),
		policy("    every: 7d\n    retain: {keep_last: 4}\n    tags: {a: b}\n"),
		"accounts:\n  - id: 111111111111\n",
		"accounts: &a\n  - id: \"111111111111\"\nregions: *a\n",
		"a: &x [*x]\n",
		"policies:\n  - name: a\n    retain: {max_age: 1d}\n  - name: a\n",
		"regions: [us-east-1\n", "\t", "0\n\n00", "policies:\n  - name: p\n    retain: {max_age: 1d}\n    tags: {\"aws:\\n\": x}\n", "{", "- - -", "!!binary aGVsbG8=", "? a\n: b\n",
		policy("    retain: {max_age: 1d}\n    copy: [{region: us-west-2, retain: {keep_daily: 7}}]\n    archive: {after: 90d}\n"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := Parse(strings.NewReader(doc))
		if err != nil {
			if c != nil {
				t.Fatalf("config returned with error %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse succeeded but Validate fails: %v", err)
		}
		if len(c.Policies) == 0 {
			t.Fatal("no policies")
		}
		for _, p := range c.Policies {
			if p.Every < Duration(time.Minute) || len(p.Select.InstanceStates) == 0 {
				t.Fatalf("policy %s not filled: %+v", p.Name, p)
			}
			if p.Retain.MaxAge == 0 && p.Retain.KeepLast == 0 {
				t.Fatalf("policy %s has no keep rule", p.Name)
			}
		}
	})
}

func ExamplePolicy_PeriodStart() {
	p := Policy{Name: "daily", Every: Duration(24 * time.Hour)}
	now := time.Date(2026, 11, 22, 1, 0, 3, 0, time.UTC)
	fmt.Println(p.PeriodStart(now))
	p.Every = Duration(7 * 24 * time.Hour)
	fmt.Println(p.PeriodStart(now))
	// Output:
	// 2026-11-22 00:00:00 +0000 UTC
	// 2026-11-19 00:00:00 +0000 UTC
}

func ExampleParse() {
	c, err := Parse(strings.NewReader(`
policies:
  - name: daily
    retain: {max_age: 30d, min_keep: 2}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	p := c.Policies[0]
	fmt.Println(p.Name, p.Every, p.Retain.MaxAge, p.Retain.Floor(), p.Select.InstanceStates)

	_, err = Parse(strings.NewReader("policies:\n  - name: daily\n    retain: {max_age: 30d, bogus: 1}\n"))
	fmt.Println(err)
	// Output:
	// daily 1d 30d 2 [running]
	// line 3: policies[0].retain.bogus: unknown key
}

// TestParseClock: --now and SNAPFLEET_NOW take an RFC 3339 time within MinClock … MaxClock;
// an empty value and the far ends of RFC 3339 are refused (issue 12.5).
func TestParseClock(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, err string
	}{
		{"2026-11-22T01:00:00Z", ""},
		{"2006-01-01T00:00:00Z", ""},
		{"2199-12-31T23:59:59+00:00", ""},
		{"2026-11-22T01:00:00.5+02:00", ""},
		{"", "empty"},
		{"yesterday", "not an RFC 3339 time"},
		{"9999-12-31T23:59:59Z", "outside 2006-01-01T00:00:00Z … 2200-01-01T00:00:00Z"},
		{"0000-01-01T00:00:00Z", "outside"},
		{"2005-12-31T23:59:59Z", "outside"},
		{"2200-01-01T00:00:00Z", "outside"},
		{"2006-01-01T00:30:00+01:00", "outside"}, // 2005-12-31T23:30Z
	} {
		_, err := ParseClock(tt.in)
		if tt.err == "" && err != nil {
			t.Errorf("ParseClock(%q) = %v, want no error", tt.in, err)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseClock(%q) = %v, want an error with %q", tt.in, err, tt.err)
		}
	}
}
