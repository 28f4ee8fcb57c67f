package config

import (
	"maps"
	"strings"
	"testing"
)

func TestEvents(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader("policies:\n  - {name: daily, retain: {max_age: 7d}}\n  - {name: release, retain: {max_age: 90d}}\nevents: {opt_in_tag: {Snap: \"yes\"}, policy: release, bus: ops-bus}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Events.OptIn(); !maps.Equal(got, map[string]string{"Snap": "yes"}) {
		t.Errorf("OptIn() = %v", got)
	}
	if got := c.EventPolicy().Name; got != "release" {
		t.Errorf("EventPolicy() = %s, want release", got)
	}
	if c.Events.Bus != "ops-bus" {
		t.Errorf("bus = %q", c.Events.Bus)
	}
	d, err := Parse(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Events.OptIn(); !maps.Equal(got, map[string]string{"AutoSnapshot": "true"}) {
		t.Errorf("default OptIn() = %v", got)
	}
	if got := d.EventPolicy().Name; got != d.Policies[0].Name {
		t.Errorf("default EventPolicy() = %s", got)
	}
}

func TestEventsInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ doc, want string }{
		{"events: {policy: weekly}", "events.policy"},
		{"events: {bus: \"bad bus!\"}", "events.bus"},
		{"events: {opt_in_tag: {\"\": x}}", "events.opt_in_tag"},
		{"events: {topic: x}", "topic"},
	} {
		if _, err := Parse(strings.NewReader(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.doc, err, tc.want)
		}
	}
}
