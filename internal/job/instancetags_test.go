package job

import (
	"errors"
	"strings"
	"testing"
)

// TestInstanceTags: a create job carries the instance tags of tags_from_instance, bounded;
// a delete job, a reserved key, too many tags or too many bytes are invalid; the planner's
// pick keeps what fits, in key order, and the longest message with them stays < MaxSize.
func TestInstanceTags(t *testing.T) {
	t.Parallel()
	msg := strings.Replace(createMsg, `"run":`, `"instance_tags":{"Cluster":"b","Role":"solr"},"run":`, 1)
	j, err := Decode([]byte(msg))
	if err != nil || j.InstanceTags["Role"] != "solr" || j.InstanceTags["Cluster"] != "b" {
		t.Fatalf("Decode: %+v, %v", j.InstanceTags, err)
	}
	inst := strings.Replace(instanceMsg, `"run":`, `"instance_tags":{"Role":"solr"},"run":`, 1)
	if _, err := Decode([]byte(inst)); err != nil {
		t.Fatalf("Decode of an instance job with instance_tags: %v", err)
	}
	many := map[string]string{}
	for i := range MaxInstanceTags + 1 {
		many[string(rune('A'+i))] = "v"
	}
	for name, tags := range map[string]map[string]string{
		"reserved":   {"snapfleet:policy": "x"},
		"aws":        {"aws:cloudformation:stack-name": "x"},
		"empty key":  {"": "x"},
		"too many":   many,
		"too long":   {"K": strings.Repeat("v", MaxInstanceTagBytes)},
		"control":    {"K": "a\tb"},
		"long value": {"K": strings.Repeat("v", 257)},
	} {
		j := validCreate()
		j.InstanceTags = tags
		if _, err := Encode(j); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Encode: %v, want invalid", name, err)
		}
	}
	d := validDelete()
	d.InstanceTags = map[string]string{"Role": "solr"}
	if err := d.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("delete with instance_tags: %v, want invalid", err)
	}

	got, ok := InstanceTags(map[string]string{"Role": "solr", "Other": "x", "Big": strings.Repeat("v", MaxInstanceTagBytes)}, []string{"Role", "Big", "Missing"})
	if ok || len(got) != 1 || got["Role"] != "solr" {
		t.Fatalf("InstanceTags: %v %v, want Role only and not ok (Big does not fit)", got, ok)
	}
	// The longest create but its name, with the most instance tags the bounds allow.
	long := validCreate()
	long.Policy = strings.Repeat("p", 64)
	long.Run = strings.Repeat("r", 64)
	long.Device = "/dev/" + strings.Repeat("x", 32)
	long.Volume, long.Instance = "vol-0123456789abcdef0", "i-0123456789abcdef0"
	long.Key = EventKey(long.Account, long.Region, long.Volume, long.Policy, strings.Repeat("e", 64))
	long.InstanceTags = map[string]string{}
	for i := range MaxInstanceTags {
		long.InstanceTags[string(rune('A'+i))] = strings.Repeat("v", MaxInstanceTagBytes/MaxInstanceTags-1)
	}
	if b, err := Encode(long); err != nil || len(b) >= MaxSize {
		t.Fatalf("longest create with instance tags: %d bytes, %v; want under %d", len(b), err, MaxSize)
	}
}
