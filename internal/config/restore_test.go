package config

import (
	"slices"
	"strings"
	"testing"
)

// TestTagsFromInstance: tags_from_instance parses, and bad keys are one-line errors naming
// the key path and the value.
func TestTagsFromInstance(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader(policy("    retain: {max_age: 1d}\n    tags_from_instance: [Role, Cluster]\n")))
	if err != nil || !slices.Equal(c.Policies[0].TagsFromInstance, []string{"Role", "Cluster"}) {
		t.Fatalf("Parse: %v, %v", c, err)
	}
	for name, tt := range map[string]struct{ list, want string }{
		"reserved":  {`["snapfleet:policy"]`, `policies[p].tags_from_instance[0]: "snapfleet:policy"`},
		"aws":       {`["aws:cloudformation:stack-id"]`, `tags_from_instance[0]: "aws:cloudformation:stack-id"`},
		"empty":     {`[""]`, `tags_from_instance[0]: ""`},
		"duplicate": {`[Role, Role]`, `tags_from_instance[1]: duplicate key "Role"`},
		"too many":  {`[a, b, c, d, e, f, g, h, i]`, "tags_from_instance: 9 keys, at most 8"},
		"not list":  {`Role`, "tags_from_instance"},
	} {
		_, err := Parse(strings.NewReader(policy("    retain: {max_age: 1d}\n    tags_from_instance: " + tt.list + "\n")))
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", name, err, tt.want)
		}
	}
}
