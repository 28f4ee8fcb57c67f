package planner

import (
	"maps"
	"strings"
	"testing"

	"github.com/snapfleet/snapfleet/internal/job"
)

// TestInstanceTagsInJobs: the creates of a policy with tags_from_instance carry the
// instance's values of those keys (and no other tag) into their job — per volume, per
// instance, and planned for an event —, and a policy without it carries none.
func TestInstanceTagsInJobs(t *testing.T) {
	t.Parallel()
	cfg := mustConfig(t, `policies:
  - name: vols
    select: {instance_tags: {Kind: vols}}
    retain: {max_age: 7d}
    tags_from_instance: [Role, Cluster, Missing]
  - name: insts
    select: {instance_tags: {Kind: insts}}
    retain: {max_age: 7d}
    consistency: instance
    tags_from_instance: [Role]
  - name: plain
    select: {instance_tags: {Kind: plain}}
    retain: {max_age: 7d}
`)
	inv := Inventory{Account: acct, Region: region, SnapshotsComplete: true, Instances: []Instance{
		running("i-00000001", map[string]string{"Kind": "vols", "Role": "solr", "Cluster": "b", "Other": "x"}, "vol-00000001"),
		running("i-00000002", map[string]string{"Kind": "insts", "Role": "db", "Cluster": "c"}, "vol-00000002"),
		running("i-00000003", map[string]string{"Kind": "plain", "Role": "web"}, "vol-00000003"),
	}}
	want := map[string]map[string]string{
		"vols":  {"Role": "solr", "Cluster": "b"},
		"insts": {"Role": "db"},
		"plain": nil,
	}
	check := func(what string, ds []Decision) {
		t.Helper()
		n := 0
		for _, d := range ds {
			if d.Action != ActionCreate {
				continue
			}
			n++
			out, err := d.message("r1", now)
			if err != nil {
				t.Fatalf("%s: message of %+v: %v", what, d, err)
			}
			j, err := job.Decode(out.Body)
			if err != nil || !maps.Equal(j.InstanceTags, want[d.Policy]) {
				t.Errorf("%s: job of policy %s carries %v (%v), want %v", what, d.Policy, j.InstanceTags, err, want[d.Policy])
			}
		}
		if n != 3 {
			t.Errorf("%s: %d creates, want 3", what, n)
		}
	}
	check("schedule", Decide(inv, cfg, now).Decisions)
	var ds []Decision
	for i := range cfg.Policies {
		res := &eventScope{Scope: Scope{Account: acct, Region: region}}
		ds = append(ds, decideEvent(inv.Instances, nil, &cfg.Policies[i], eventTarget{want: map[string]string{"Kind": cfg.Policies[i].Name}}, "e1", res)...)
	}
	check("event", ds)
	// A 250-character value is within the bounds and the message.
	long := inv
	long.Instances = []Instance{running("i-00000001", map[string]string{"Kind": "vols", "Role": strings.Repeat("r", 250)}, "vol-00000001")}
	for _, d := range Decide(long, cfg, now).Decisions {
		if d.Action == ActionCreate && (len(d.InstanceTags) != 1 || d.InstanceTags["Role"] == "") {
			t.Errorf("a 250-character Role within the bounds: %v", d.InstanceTags)
		}
	}
}
