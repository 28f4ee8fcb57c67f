// Package config loads and validates snapfleet's YAML configuration (DESIGN.md §3):
// regions, accounts and snapshot policies. Decoding is strict — an unknown key is an
// error — and every error is one line naming the file and the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. The planner and the workers read the same file: the
// workers take policies (for their retention re-checks) and accounts (for roles) from it.
type Config struct {
	// Regions to plan; empty means the SDK's default region.
	Regions []string `yaml:"regions"`
	// Accounts to plan, from the list form of accounts:; empty (and no Organization)
	// means the caller's own account without a role.
	Accounts []Account `yaml:"-"`
	// Organization, from the form accounts: {organization: {...}}, discovers the accounts
	// with Organizations ListAccounts instead of listing them.
	Organization *Organization `yaml:"-"`
	// Limits are the worker's token buckets per account, region and API action
	// (DESIGN.md §8); nil fields take DefaultLimits.
	Limits Limits `yaml:"limits"`
	// Policies, at least one; a missing list means the built-in default policy.
	Policies []Policy `yaml:"policies"`
	// MaxDeleteFraction is the circuit breaker: a plan that would delete more than this
	// fraction of an account-region's managed snapshots enqueues no deletes there. Nil
	// means DefaultMaxDeleteFraction; see DeleteFraction.
	MaxDeleteFraction *float64 `yaml:"max_delete_fraction"`
	// Events configures event-driven snapshots and outcome events (events.go).
	Events Events `yaml:"events"`
	// Report configures the coverage report and its gauges (report.go).
	Report Report `yaml:"report"`
}

// DefaultMaxDeleteFraction is the circuit breaker's threshold when the config sets none.
const DefaultMaxDeleteFraction = 0.5

// DeleteFraction is the effective max_delete_fraction.
func (c *Config) DeleteFraction() float64 {
	if c.MaxDeleteFraction == nil {
		return DefaultMaxDeleteFraction
	}
	return *c.MaxDeleteFraction
}

// Adopter returns the policy that adopts a legacy snapshot with these tags — one without
// the snapfleet:policy marker, which the caller checks —: the one policy whose adopt.tags
// are all on it. Validate allows at most one adopting policy.
func (c *Config) Adopter(tags map[string]string) (Policy, bool) {
	if _, managed := tags[ReservedTagPrefix+"policy"]; managed {
		return Policy{}, false
	}
	for _, p := range c.Policies {
		if p.Adopts(tags) {
			return p, true
		}
	}
	return Policy{}, false
}

// Organization discovers the member accounts of an AWS Organization: every ACTIVE account
// (or those under IncludeOUs), less Exclude, each reached through the role RoleName.
type Organization struct {
	// RoleName is the role assumed in every member account: arn:aws:iam::ID:role/RoleName.
	RoleName   string   `yaml:"role_name"`
	ExternalID string   `yaml:"external_id"`
	Exclude    []string `yaml:"exclude"`
	// IncludeOUs, when set, limits discovery to the accounts directly or indirectly under
	// these organizational units.
	IncludeOUs []string `yaml:"include_ous"`
}

// RoleARN is the role to assume in account.
func (o Organization) RoleARN(account string) string {
	return "arn:aws:iam::" + account + ":role/" + o.RoleName
}

// Excludes reports whether account is on the exclusion list.
func (o Organization) Excludes(account string) bool {
	for _, id := range o.Exclude {
		if id == account {
			return true
		}
	}
	return false
}

// Bucket is one token bucket: Burst tokens, refilled at PerSecond.
type Bucket struct {
	Burst     int     `yaml:"burst"`
	PerSecond float64 `yaml:"per_second"`
}

// Limits are the token buckets per account and region, one per EC2 action snapfleet
// calls, as EC2 has them (DESIGN.md §8): each field is named after its action, its key is
// the action in snake_case. A nil field takes its default from DefaultLimits.
type Limits struct {
	CreateSnapshot            *Bucket `yaml:"create_snapshot"`
	CreateSnapshots           *Bucket `yaml:"create_snapshots"`
	CreateTags                *Bucket `yaml:"create_tags"`
	DeleteSnapshot            *Bucket `yaml:"delete_snapshot"`
	DescribeSnapshots         *Bucket `yaml:"describe_snapshots"`
	DescribeVolumes           *Bucket `yaml:"describe_volumes"`
	DescribeInstances         *Bucket `yaml:"describe_instances"`
	DescribeImages            *Bucket `yaml:"describe_images"`
	DescribeSnapshotAttribute *Bucket `yaml:"describe_snapshot_attribute"`
	DescribeLockedSnapshots   *Bucket `yaml:"describe_locked_snapshots"`
	CreateVolume              *Bucket `yaml:"create_volume"`
	DeleteVolume              *Bucket `yaml:"delete_volume"`
	AttachVolume              *Bucket `yaml:"attach_volume"`
	CopySnapshot              *Bucket `yaml:"copy_snapshot"`
	ModifySnapshotTier        *Bucket `yaml:"modify_snapshot_tier"`
	ModifySnapshotAttribute   *Bucket `yaml:"modify_snapshot_attribute"`
	// SSM's, for consistency: application (hooks.go).
	SendCommand          *Bucket `yaml:"send_command"`
	GetCommandInvocation *Bucket `yaml:"get_command_invocation"`
}

// DefaultLimits are EC2's buckets per account and region, by action (DESIGN.md §8).
func DefaultLimits() map[string]Bucket {
	mutating, describe := Bucket{Burst: 100, PerSecond: 5}, Bucket{Burst: 100, PerSecond: 20}
	return map[string]Bucket{
		"CreateSnapshot":            mutating,
		"CreateSnapshots":           mutating,
		"DeleteSnapshot":            mutating,
		"CreateTags":                {Burst: 100, PerSecond: 10},
		"DescribeSnapshots":         describe,
		"DescribeVolumes":           describe,
		"DescribeInstances":         describe,
		"DescribeImages":            describe,
		"DescribeSnapshotAttribute": describe,
		"DescribeLockedSnapshots":   describe,
		"CreateVolume":              mutating,
		"DeleteVolume":              mutating,
		"AttachVolume":              mutating,
		"CopySnapshot":              {Burst: 50, PerSecond: 5},
		"ModifySnapshotTier":        {Burst: 50, PerSecond: 5},
		"ModifySnapshotAttribute":   mutating,
		// SSM Run Command, per account-region too. AWS does not publish SSM's rates per
		// action: these let CreateSnapshots (two SendCommand and two
		// GetCommandInvocation per job) be the bucket that binds; a throttle halves them.
		"SendCommand":          {Burst: 200, PerSecond: 20},
		"GetCommandInvocation": {Burst: 200, PerSecond: 40},
	}
}

// limitField is one key of limits: its action and the field that holds it.
type limitField struct {
	key, action string
	bucket      *Bucket
}

// fields lists the keys of limits in their order, with what is set.
func (l Limits) fields() []limitField {
	v := reflect.ValueOf(l)
	out := make([]limitField, 0, v.NumField())
	for i := range v.NumField() {
		f := v.Type().Field(i)
		out = append(out, limitField{key: f.Tag.Get("yaml"), action: f.Name, bucket: v.Field(i).Interface().(*Bucket)})
	}
	return out
}

// Buckets returns the effective buckets by action (CreateSnapshot, DescribeSnapshots,
// ...), defaults filled in.
func (l Limits) Buckets() map[string]Bucket {
	m := DefaultLimits()
	for _, f := range l.fields() {
		if f.bucket != nil {
			m[f.action] = *f.bucket
		}
	}
	return m
}

// UnmarshalYAML decodes limits, refusing the key describe of the model where every
// Describe* call shared one bucket: EC2 gives each action its own.
func (l *Limits) UnmarshalYAML(unmarshal func(any) error) error {
	var probe map[string]any
	if err := unmarshal(&probe); err == nil {
		if _, old := probe["describe"]; old {
			var keys []string
			for _, f := range (Limits{}).fields() {
				if strings.HasPrefix(f.key, "describe_") {
					keys = append(keys, f.key)
				}
			}
			return fmt.Errorf("limits.describe: no longer a key: EC2 gives each action its own bucket; set %s instead",
				strings.Join(keys, ", "))
		}
	}
	type plain Limits
	return unmarshal((*plain)(l))
}

// UnmarshalYAML decodes the config with the accounts key in either form: a list of
// accounts, or {organization: {...}}. It uses the decoder's own unmarshal function so that
// unknown keys stay errors.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Config
	raw := struct {
		*plain   `yaml:",inline"`
		Accounts accountsYAML `yaml:"accounts"`
	}{plain: (*plain)(c)}
	if err := unmarshal(&raw); err != nil {
		return err
	}
	c.Accounts, c.Organization = raw.Accounts.list, raw.Accounts.org
	return nil
}

// accountsYAML is the accounts key: a list, or a mapping with organization.
type accountsYAML struct {
	list []Account
	org  *Organization
}

func (a *accountsYAML) UnmarshalYAML(unmarshal func(any) error) error {
	var probe any
	if err := unmarshal(&probe); err != nil {
		return err
	}
	switch probe.(type) {
	case nil:
		return nil
	case map[string]any:
		var m struct {
			Organization *Organization `yaml:"organization"`
		}
		if err := unmarshal(&m); err != nil {
			return err
		}
		if m.Organization == nil {
			return errors.New("accounts: a mapping must hold organization: {role_name: ...}; or list the accounts")
		}
		a.org = m.Organization
		return nil
	default:
		return unmarshal(&a.list)
	}
}

// Account is one member account and the role to reach it.
type Account struct {
	ID         string `yaml:"id"`
	RoleARN    string `yaml:"role_arn"`
	ExternalID string `yaml:"external_id"`
}

// Policy says which volumes are snapshotted, how often, what is kept and how snapshots
// are tagged.
type Policy struct {
	Name   string            `yaml:"name"`
	Select Select            `yaml:"select"`
	Every  Duration          `yaml:"every"`
	Retain Retain            `yaml:"retain"`
	Tags   map[string]string `yaml:"tags"`
	// Orphans: the rules for snapshots whose volume no longer exists.
	Orphans Orphans `yaml:"orphans"`
	// Adopt, when set, lets the policy manage legacy snapshots (owned by the account,
	// carrying every one of Adopt.Tags and no snapfleet:policy tag). Off by default.
	Adopt *Adopt `yaml:"adopt"`
	// Consistency is ConsistencyVolume (the default, also when empty: one CreateSnapshot
	// per volume) or ConsistencyInstance (one CreateSnapshots per instance: all its
	// volumes at one point in time, crash-consistent).
	Consistency string `yaml:"consistency"`
	// ExcludeBoot leaves the root volume out of an instance's snapshots (consistency:
	// instance only).
	ExcludeBoot bool `yaml:"exclude_boot"`
	// TagsFromInstance names instance tags copied onto the policy's snapshots (restore.go).
	TagsFromInstance []string `yaml:"tags_from_instance"`
	// Copy lists the disaster-recovery destinations (copy.go).
	Copy []Copy `yaml:"copy"`
	// Archive, when set, moves kept snapshots to the archive tier (copy.go).
	Archive *Archive `yaml:"archive"`
	// Hooks: how consistency: application makes its snapshots consistent (hooks.go);
	// nil with consistency: application means the default Linux freeze and thaw.
	Hooks *Hooks `yaml:"hooks"`
}

// Consistency values of a policy.
const (
	ConsistencyVolume   = "volume"
	ConsistencyInstance = "instance"
)

// PerInstance reports whether the policy snapshots whole instances with CreateSnapshots.
// Application policies do too, between their hooks.
func (p Policy) PerInstance() bool {
	return p.Consistency == ConsistencyInstance || p.Consistency == ConsistencyApplication
}

// Orphans holds the floor for the snapshots of a volume that is gone.
type Orphans struct {
	// MinKeep replaces retain.min_keep for a gone volume; it can only lower the live
	// floor (retain.min_keep, and never below the newest: at least 1). 0 lets every
	// snapshot of a gone volume expire, the newest too: the explicit opt-in. Nil: the
	// live floor, so the newest of a gone volume is kept even under retain.min_keep 0.
	MinKeep *int `yaml:"min_keep"`
}

// Adopt names the tags that mark legacy snapshots a policy takes over.
type Adopt struct {
	Tags map[string]string `yaml:"tags"`
}

// OrphanFloor is the effective orphans.min_keep: unless set, the live floor — retain.min_keep,
// and at least 1, since the newest snapshot of a volume is kept whatever min_keep says.
// Only an explicit orphans.min_keep below that lowers it for gone volumes (DESIGN.md §6.3).
func (p Policy) OrphanFloor() int {
	if p.Orphans.MinKeep == nil {
		return p.Retain.LiveFloor()
	}
	return *p.Orphans.MinKeep
}

// Adopts reports whether the policy adopts a snapshot with these tags: it has adopt.tags
// and every one of them is on the snapshot. The snapfleet:policy marker is not checked here.
func (p Policy) Adopts(tags map[string]string) bool {
	if p.Adopt == nil || len(p.Adopt.Tags) == 0 {
		return false
	}
	for k, v := range p.Adopt.Tags {
		if got, ok := tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Select chooses instances and volumes.
type Select struct {
	// InstanceStates: instances in these states are selected; default [running].
	InstanceStates []string `yaml:"instance_states"`
	// InstanceTags must all match on the instance; empty selects every instance.
	InstanceTags map[string]string `yaml:"instance_tags"`
	// ExcludeTags: any one of them on the instance or the volume excludes the volume.
	ExcludeTags map[string]string `yaml:"exclude_tags"`
}

// Excludes reports whether any one of the exclude tags is on a resource with these tags.
func (s Select) Excludes(tags map[string]string) bool {
	for k, v := range s.ExcludeTags {
		if got, ok := tags[k]; ok && got == v {
			return true
		}
	}
	return false
}

// Retain holds the keep rules: a snapshot is deleted only when no rule keeps it, and never
// below MinKeep snapshots per volume.
type Retain struct {
	// MaxAge keeps what is younger (restic's --keep-within, measured from now).
	MaxAge Duration `yaml:"max_age"`
	// KeepLast keeps the newest N snapshots per volume.
	KeepLast int `yaml:"keep_last"`
	// KeepHourly … KeepYearly keep the newest snapshot of each of the last N UTC hours,
	// days, ISO weeks, months and years that have snapshots (restic's forget).
	KeepHourly  int `yaml:"keep_hourly"`
	KeepDaily   int `yaml:"keep_daily"`
	KeepWeekly  int `yaml:"keep_weekly"`
	KeepMonthly int `yaml:"keep_monthly"`
	KeepYearly  int `yaml:"keep_yearly"`
	// MinKeep is the floor (default 1).
	MinKeep *int `yaml:"min_keep"`
}

// Floor is the effective min_keep: 1 unless configured.
func (r Retain) Floor() int {
	if r.MinKeep == nil {
		return 1
	}
	return *r.MinKeep
}

// LiveFloor is how many snapshots of a live volume are never deleted: min_keep, and at
// least the newest one (retain.min_keep 0 never lets the newest go).
func (r Retain) LiveFloor() int { return max(1, r.Floor()) }

// DefaultPolicyName names the policy used when the config has none.
const DefaultPolicyName = "default"

// DefaultPolicy is the source script's behaviour made safe: every volume attached to a
// running instance, daily, kept 30 days, never fewer than one per volume.
func DefaultPolicy() Policy {
	one := 1
	return Policy{
		Name:   DefaultPolicyName,
		Select: Select{InstanceStates: []string{"running"}},
		Every:  Duration(24 * time.Hour),
		Retain: Retain{MaxAge: Duration(30 * 24 * time.Hour), MinKeep: &one},
	}
}

// Default is the configuration used when no file is given.
func Default() *Config {
	return &Config{Policies: []Policy{DefaultPolicy()}}
}

// Policy returns the policy called name.
func (c *Config) Policy(name string) (Policy, bool) {
	for _, p := range c.Policies {
		if p.Name == name {
			return p, true
		}
	}
	return Policy{}, false
}

// Account returns the configured account with this id.
func (c *Config) Account(id string) (Account, bool) {
	for _, a := range c.Accounts {
		if a.ID == id {
			return a, true
		}
	}
	return Account{}, false
}

// PeriodStart returns the start of the policy period containing t: periods are aligned to
// the Unix epoch (a UTC midnight) plus whole multiples of Every. It holds for every t, not
// only the years time.UnixNano can represent.
func (p Policy) PeriodStart(t time.Time) time.Time {
	every := time.Duration(p.Every)
	if every <= 0 {
		return t.UTC()
	}
	// time.Truncate aligns to the zero time (year 1), which lies zeroToEpoch before the
	// epoch; shift by that distance modulo every, computed in 128 bits.
	hi, lo := bits.Mul64(zeroToEpochSeconds, uint64(time.Second))
	off := time.Duration(bits.Rem64(hi, lo, uint64(every)))
	return t.UTC().Add(-off).Truncate(every).Add(off)
}

// zeroToEpochSeconds is the time from 0001-01-01 to 1970-01-01 UTC, in seconds.
const zeroToEpochSeconds = 719162 * 24 * 60 * 60

// Load reads and validates the file at path; an empty path gives Default().
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a config document.
func Parse(r io.Reader) (*Config, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	// The document's nodes name the key of a decoding error; a document that does not
	// parse fails the decoding below with yaml's own error.
	var doc yaml.Node
	_ = yaml.Unmarshal(b, &doc)
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, keyed(err, &doc)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if err := checkQuotedIDs(&doc); err != nil {
		return nil, err
	}
	if len(c.Policies) == 0 {
		if len(doc.Content) > 0 && mapValue(doc.Content[0], "policies") != nil {
			return nil, errors.New("policies: no policies (omit the key for the built-in default)")
		}
		c.Policies = []Policy{DefaultPolicy()}
	}
	if err := c.fill(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkQuotedIDs rejects an account id written as a bare number: yaml.v3 happens to keep
// its digits, but YAML 1.1 readers (and people) take 012345678901 for an octal or a
// float, and the same file is read by other tools. b has already decoded cleanly.
func checkQuotedIDs(doc *yaml.Node) error {
	if len(doc.Content) == 0 {
		return nil
	}
	accounts := mapValue(doc.Content[0], "accounts")
	if accounts == nil || accounts.Kind != yaml.SequenceNode {
		return nil
	}
	for i, a := range accounts.Content {
		id := mapValue(a, "id")
		if id == nil || id.Kind != yaml.ScalarNode || id.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			continue
		}
		if tag := id.ShortTag(); tag == "!!int" || tag == "!!float" {
			return fmt.Errorf("accounts[%d].id: %s is an unquoted number; quote it in YAML (id: \"%s\")", i, id.Value, id.Value)
		}
	}
	return nil
}

// mapValue returns the value of key in the mapping n, following aliases, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := n.Content[i+1]
			for v != nil && v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

func (c *Config) fill() error {
	for i := range c.Policies {
		p := &c.Policies[i]
		if len(p.Select.InstanceStates) == 0 {
			p.Select.InstanceStates = []string{"running"}
		}
		if p.Every == 0 {
			p.Every = Duration(24 * time.Hour)
		}
	}
	return nil
}

// ReservedTagPrefix marks the tags snapfleet writes itself; policies cannot set them.
const ReservedTagPrefix = "snapfleet:"
