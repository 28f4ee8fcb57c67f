package sim

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// scan pages through items, which are sorted by id (ids are made in order, and every
// slice of a scope keeps creation order), as DescribeSnapshots, DescribeVolumes and
// DescribeInstances page: from after NextToken — the id of the last item of the previous
// page — it keeps the items conv accepts, up to MaxResults, and says the next token when
// another item would be accepted. Only what a page returns is converted (and one item
// more), so a listing of a million snapshots in pages costs about one pass over them,
// not one per page.
func scan[T, X any](form url.Values, items []T, id func(T) string, conv func(T) (X, bool, error)) ([]X, string, error) {
	start := 0
	if t := form.Get("NextToken"); t != "" {
		if !validID(t) {
			return nil, "", badRequest("InvalidNextToken", "The token '%s' is invalid", t)
		}
		start, _ = slices.BinarySearchFunc(items, t, func(it T, t string) int { return strings.Compare(id(it), t) })
		if start < len(items) && id(items[start]) == t {
			start++
		}
	}
	size := -1
	if v := form.Get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, "", badRequest("InvalidParameterValue", "MaxResults %q is invalid", v)
		}
		size = n
	}
	var out []X
	last := ""
	for _, it := range items[start:] {
		x, ok, err := conv(it)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			continue
		}
		if len(out) == size {
			return out, last, nil
		}
		out = append(out, x)
		last = id(it)
	}
	return out, "", nil
}

// validID reports whether s has the form of a resource id the simulator makes.
func validID(s string) bool {
	prefix, hex, ok := strings.Cut(s, "-")
	if !ok || prefix == "" || len(hex) != 17 {
		return false
	}
	_, err := strconv.ParseUint(hex, 16, 64)
	return err == nil
}

// byID finds the item with id in items, sorted by id; -1 when there is none.
func byID[T any](items []T, want string, id func(T) string) int {
	i, found := slices.BinarySearchFunc(items, want, func(it T, t string) int { return strings.Compare(id(it), t) })
	if !found {
		return -1
	}
	return i
}
