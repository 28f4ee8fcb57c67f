package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration that also accepts whole days ("30d") and "0".
type Duration time.Duration

// ParseDuration parses a Go duration or a whole number of days followed by "d".
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 32)
		if err != nil || days < 0 || days > 100*366 {
			return 0, fmt.Errorf("bad duration %q: want a Go duration (36h) or whole days (30d)", s)
		}
		return Duration(time.Duration(days) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a Go duration (36h) or whole days (30d)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("bad duration %q: negative", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &nodeError{line: n.Line, column: n.Column, msg: "want a duration, got a " + kindName(n.Kind)}
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &nodeError{line: n.Line, column: n.Column, msg: err.Error()}
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration back in the form ParseDuration reads.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String prints whole days as "Nd" and everything else as a Go duration.
func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", td/(24*time.Hour))
	}
	return td.String()
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "non-scalar"
	}
}
