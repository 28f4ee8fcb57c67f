package sim

import "testing"

// TestWildcard: filter values match as EC2's do: * any run, ? one character.
func TestWildcard(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"snap-*0", "snap-0000000000000ab10", true},
		{"snap-*0", "snap-0000000000000ab11", false},
		{"snap-0*", "snap-0abc", true},
		{"*", "", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	} {
		if got := wildcard(c.pattern, c.s); got != c.want {
			t.Errorf("wildcard(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}
