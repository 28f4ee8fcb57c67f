package retention

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// ago makes a snapshot id started d before now.
func ago(id string, d time.Duration) Snapshot { return Snapshot{ID: id, Start: now.Add(-d)} }

// verdicts maps id to "keep:reason" or "delete:reason" for readable comparisons.
func verdicts(ds []Decision) map[string]string {
	m := map[string]string{}
	for _, d := range ds {
		v := "delete"
		if d.Keep {
			v = "keep"
		}
		m[d.ID] = v + ":" + d.Reason
	}
	return m
}

func TestDecide(t *testing.T) {
	t.Parallel()
	// Five daily snapshots, newest first: a is 1 day old, e is 5 days old.
	daily := []Snapshot{ago("a", 1*day), ago("b", 2*day), ago("c", 3*day), ago("d", 4*day), ago("e", 5*day)}
	tests := []struct {
		name  string
		snaps []Snapshot
		rules Rules
		want  map[string]string
	}{
		{"empty input", nil, Rules{MaxAge: day, MinKeep: 1}, map[string]string{}},
		{"one snapshot, very old, is the newest", []Snapshot{ago("a", 1000*day)}, Rules{MaxAge: day, MinKeep: 1},
			map[string]string{"a": "keep:newest"}},
		{"max_age alone", daily, Rules{MaxAge: 3*day + time.Hour},
			map[string]string{"a": "keep:newest", "b": "keep:max_age", "c": "keep:max_age", "d": "delete:expired", "e": "delete:expired"}},
		{"max_age boundary: exactly max_age old expires", daily, Rules{MaxAge: 3 * day},
			map[string]string{"a": "keep:newest", "b": "keep:max_age", "c": "delete:expired", "d": "delete:expired", "e": "delete:expired"}},
		{"max_age boundary: a nanosecond younger is kept", []Snapshot{ago("a", 0), ago("b", 3*day-1)}, Rules{MaxAge: 3 * day},
			map[string]string{"a": "keep:newest", "b": "keep:max_age"}},
		{"keep_last alone", daily, Rules{KeepLast: 3},
			map[string]string{"a": "keep:newest", "b": "keep:keep_last", "c": "keep:keep_last", "d": "delete:expired", "e": "delete:expired"}},
		{"keep_last larger than the set", daily, Rules{KeepLast: 10},
			map[string]string{"a": "keep:newest", "b": "keep:keep_last", "c": "keep:keep_last", "d": "keep:keep_last", "e": "keep:keep_last"}},
		{"min_keep alone keeps only the floor", daily, Rules{MinKeep: 2},
			map[string]string{"a": "keep:newest", "b": "keep:min_keep", "c": "delete:expired", "d": "delete:expired", "e": "delete:expired"}},
		{"no rules still keeps the newest", daily, Rules{},
			map[string]string{"a": "keep:newest", "b": "delete:expired", "c": "delete:expired", "d": "delete:expired", "e": "delete:expired"}},
		{"min_keep floor over an expired max_age", daily, Rules{MaxAge: time.Hour, MinKeep: 3},
			map[string]string{"a": "keep:newest", "b": "keep:min_keep", "c": "keep:min_keep", "d": "delete:expired", "e": "delete:expired"}},
		{"max_age keeps beyond keep_last", daily, Rules{MaxAge: 4*day + time.Hour, KeepLast: 2},
			map[string]string{"a": "keep:newest", "b": "keep:keep_last", "c": "keep:max_age", "d": "keep:max_age", "e": "delete:expired"}},
		{"keep_last keeps beyond max_age", daily, Rules{MaxAge: 36 * time.Hour, KeepLast: 4},
			map[string]string{"a": "keep:newest", "b": "keep:keep_last", "c": "keep:keep_last", "d": "keep:keep_last", "e": "delete:expired"}},
		{"all three combined, min_keep first", daily, Rules{MaxAge: 4*day + time.Hour, KeepLast: 3, MinKeep: 2},
			map[string]string{"a": "keep:newest", "b": "keep:min_keep", "c": "keep:keep_last", "d": "keep:max_age", "e": "delete:expired"}},
		{"min_keep 0 and negative rules keep the newest", daily, Rules{MaxAge: -day, KeepLast: -1, MinKeep: -1},
			map[string]string{"a": "keep:newest", "b": "delete:expired", "c": "delete:expired", "d": "delete:expired", "e": "delete:expired"}},
		{"input order does not matter", []Snapshot{daily[3], daily[0], daily[4], daily[2], daily[1]}, Rules{KeepLast: 2},
			map[string]string{"a": "keep:newest", "b": "keep:keep_last", "c": "delete:expired", "d": "delete:expired", "e": "delete:expired"}},
		{"ties in start time: the greater id is newer", []Snapshot{ago("snap-1", day), ago("snap-3", day), ago("snap-2", day)}, Rules{KeepLast: 2},
			map[string]string{"snap-3": "keep:newest", "snap-2": "keep:keep_last", "snap-1": "delete:expired"}},
		{"zero start time is kept and not counted", []Snapshot{{ID: "z"}, ago("a", 10*day), ago("b", 20*day)}, Rules{MaxAge: day},
			map[string]string{"z": "keep:unknown_time", "a": "keep:newest", "b": "delete:expired"}},
		{"future start time is kept and not counted", []Snapshot{ago("f", -time.Hour), ago("a", 10*day), ago("b", 20*day)}, Rules{MaxAge: day, MinKeep: 1},
			map[string]string{"f": "keep:future_time", "a": "keep:newest", "b": "delete:expired"}},
		{"start time equal to now is dated", []Snapshot{ago("n", 0), ago("a", 10*day)}, Rules{MaxAge: day},
			map[string]string{"n": "keep:newest", "a": "delete:expired"}},
		{"only undated snapshots", []Snapshot{{ID: "z"}, ago("f", -day)}, Rules{},
			map[string]string{"z": "keep:unknown_time", "f": "keep:future_time"}},
		{"zero and future do not fill min_keep", []Snapshot{{ID: "z"}, ago("f", -day), ago("a", 5*day), ago("b", 6*day), ago("c", 7*day)}, Rules{MaxAge: day, MinKeep: 2},
			map[string]string{"z": "keep:unknown_time", "f": "keep:future_time", "a": "keep:newest", "b": "keep:min_keep", "c": "delete:expired"}},
		{"start in another zone compares as an instant", []Snapshot{
			{ID: "a", Start: now.Add(-2 * day).In(time.FixedZone("X", 14*3600))},
			{ID: "b", Start: now.Add(-1 * day).In(time.FixedZone("Y", -12*3600))},
		}, Rules{MaxAge: time.Hour},
			map[string]string{"b": "keep:newest", "a": "delete:expired"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Decide(tt.snaps, tt.rules, now)
			if len(got) != len(tt.snaps) {
				t.Fatalf("%d decisions for %d snapshots", len(got), len(tt.snaps))
			}
			if v := verdicts(got); !reflect.DeepEqual(v, tt.want) {
				t.Fatalf("Decide =\n%v\nwant\n%v", v, tt.want)
			}
		})
	}
}

func TestDecideOrder(t *testing.T) {
	t.Parallel()
	snaps := []Snapshot{ago("old", 3*day), {ID: "zero"}, ago("new", day), ago("mid", 2*day)}
	var ids []string
	for _, d := range Decide(snaps, Rules{KeepLast: 10}, now) {
		ids = append(ids, d.ID)
	}
	// Undated snapshots first, in input order, then dated ones newest first.
	if want := []string{"zero", "new", "mid", "old"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("order %v, want %v", ids, want)
	}
	if snaps[0].ID != "old" || snaps[2].ID != "new" {
		t.Fatalf("Decide reordered its input: %v", snaps)
	}
}

func TestFromPolicy(t *testing.T) {
	t.Parallel()
	three := 3
	zero := 0
	tests := []struct {
		name string
		p    config.Policy
		want Rules
	}{
		{"default policy", config.DefaultPolicy(), Rules{MaxAge: 30 * day, MinKeep: 1}},
		{"min_keep unset is 1", config.Policy{Retain: config.Retain{KeepLast: 7}}, Rules{KeepLast: 7, MinKeep: 1}},
		{"min_keep 0", config.Policy{Retain: config.Retain{KeepLast: 7, MinKeep: &zero}}, Rules{KeepLast: 7}},
		{"all set", config.Policy{Retain: config.Retain{MaxAge: config.Duration(36 * time.Hour), KeepLast: 5, MinKeep: &three}},
			Rules{MaxAge: 36 * time.Hour, KeepLast: 5, MinKeep: 3}},
	}
	for _, tt := range tests {
		if got := FromPolicy(tt.p); got != tt.want {
			t.Errorf("%s: FromPolicy = %+v, want %+v", tt.name, got, tt.want)
		}
	}
	// A parsed config gives the same rules as the struct.
	c, err := config.Parse(strings.NewReader("policies:\n  - name: p\n    retain: {max_age: 30d, keep_last: 2, min_keep: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := FromPolicy(c.Policies[0]), (Rules{MaxAge: 30 * day, KeepLast: 2, MinKeep: 3}); got != want {
		t.Errorf("FromPolicy(parsed) = %+v, want %+v", got, want)
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	r := Rules{MaxAge: 30 * day, KeepLast: 3, MinKeep: 2}
	tests := []struct {
		rules  Rules
		reason string
		want   string
	}{
		{r, KeptNewest, "newest"},
		{r, KeptMinKeep, "within min_keep 2"},
		{r, KeptKeepLast, "within keep_last 3"},
		{r, KeptMaxAge, "younger than max_age 720h0m0s"},
		{r, KeptUnknownTime, "unknown_time"},
		{r, KeptFuture, "future_time"},
		{r, Expired, "older than max_age 720h0m0s and beyond keep_last 3 and min_keep 2"},
		{Rules{KeepLast: 3, MinKeep: 1}, Expired, "beyond keep_last 3 and min_keep 1"},
		{Rules{MaxAge: day, MinKeep: 1}, Expired, "older than max_age 24h0m0s and beyond min_keep 1"},
		{Rules{MaxAge: day}, Expired, "older than max_age 24h0m0s and beyond min_keep 1"}, // the newest is always kept
	}
	for _, tt := range tests {
		if got := tt.rules.Explain(Decision{ID: "x", Reason: tt.reason}); got != tt.want {
			t.Errorf("Explain(%s) under %+v = %q, want %q", tt.reason, tt.rules, got, tt.want)
		}
	}
}

// fuzzSnaps turns fuzz bytes into snapshots: each 3 bytes are an age in hours (0xffff is
// an unknown time, 0xfffe an hour in the future) and a tag byte mixed into the id, so
// equal ages (ties) and unsorted input are common.
func fuzzSnaps(data []byte) []Snapshot {
	var snaps []Snapshot
	for i := 0; i+3 <= len(data) && len(snaps) < 200; i += 3 {
		age := binary.BigEndian.Uint16(data[i:])
		s := Snapshot{ID: fmt.Sprintf("snap-%02x%04x", data[i+2], len(snaps))}
		switch age {
		case 0xffff:
		case 0xfffe:
			s.Start = now.Add(time.Hour)
		default:
			s.Start = now.Add(-time.Duration(age) * time.Hour)
		}
		snaps = append(snaps, s)
	}
	return snaps
}

func FuzzDecide(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 48, 1, 0, 96, 2}, int64(30*24), int8(0), int8(1), uint16(0))
	f.Add([]byte{0, 1, 0, 0, 1, 1, 0, 1, 2, 0xff, 0xff, 0, 0xff, 0xfe, 0}, int64(0), int8(2), int8(1), uint16(5))
	f.Add([]byte{1, 0, 9, 2, 0, 8, 3, 0, 7, 4, 0, 6}, int64(1), int8(0), int8(3), uint16(300))
	f.Add([]byte{}, int64(24), int8(1), int8(1), uint16(0))
	f.Add([]byte{0, 5, 1, 0, 5, 2, 0, 5, 3}, int64(-5), int8(-1), int8(-1), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, maxAgeHours int64, keepLast, minKeep int8, laterHours uint16) {
		snaps := fuzzSnaps(data)
		r := Rules{MaxAge: time.Duration(maxAgeHours % (1 << 20) * int64(time.Hour)), KeepLast: int(keepLast), MinKeep: int(minKeep)}
		out := Decide(snaps, r, now)

		// One decision per input, same ids.
		if len(out) != len(snaps) {
			t.Fatalf("%d decisions for %d snapshots", len(out), len(snaps))
		}
		var in, got []string
		for i := range snaps {
			in = append(in, snaps[i].ID)
			got = append(got, out[i].ID)
		}
		sort.Strings(in)
		sort.Strings(got)
		if !reflect.DeepEqual(in, got) {
			t.Fatalf("decision ids %v, input ids %v", got, in)
		}

		byID := map[string]Decision{}
		for _, d := range out {
			byID[d.ID] = d
		}
		var dated []Snapshot
		for _, s := range snaps {
			d := byID[s.ID]
			if s.Start.IsZero() || s.Start.After(now) {
				if !d.Keep {
					t.Fatalf("undated or future snapshot %v deleted", s)
				}
				continue
			}
			dated = append(dated, s)
		}
		sort.Slice(dated, func(i, j int) bool {
			if !dated[i].Start.Equal(dated[j].Start) {
				return dated[i].Start.After(dated[j].Start)
			}
			return dated[i].ID > dated[j].ID
		})

		// Never the newest dated snapshot.
		if len(dated) > 0 {
			if d := byID[dated[0].ID]; !d.Keep || d.Reason != KeptNewest {
				t.Fatalf("newest %v: %+v", dated[0], d)
			}
		}
		// Never below the floor.
		floor := max(1, r.MinKeep)
		kept := 0
		for rank, s := range dated {
			d := byID[s.ID]
			if d.Keep {
				kept++
				continue
			}
			// Whatever is deleted is beyond every rule.
			if rank < floor || rank < r.KeepLast || (r.MaxAge > 0 && now.Sub(s.Start) < r.MaxAge) {
				t.Fatalf("deleted %v at rank %d under %+v", s, rank, r)
			}
			if d.Reason != Expired {
				t.Fatalf("deleted with reason %q", d.Reason)
			}
		}
		if want := min(len(dated), floor); kept < want {
			t.Fatalf("kept %d of %d dated, floor %d", kept, len(dated), want)
		}

		// Idempotent: deciding again over what was kept deletes nothing more.
		var rest []Snapshot
		for _, s := range snaps {
			if byID[s.ID].Keep {
				rest = append(rest, s)
			}
		}
		for _, d := range Decide(rest, r, now) {
			if !d.Keep {
				t.Fatalf("second pass deletes %s (%s) under %+v", d.ID, d.Reason, r)
			}
		}

		// Deterministic: input order does not change any verdict.
		shuffled := append([]Snapshot(nil), snaps...)
		rand.New(rand.NewPCG(uint64(len(data)), uint64(maxAgeHours))).Shuffle(len(shuffled), func(i, j int) {
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		})
		if a, b := verdicts(out), verdicts(Decide(shuffled, r, now)); !reflect.DeepEqual(a, b) {
			t.Fatalf("verdicts depend on input order:\n%v\n%v", a, b)
		}

		// Time only expires more: whatever goes now also goes later.
		later := verdicts(Decide(snaps, r, now.Add(time.Duration(laterHours)*time.Hour)))
		for _, d := range out {
			if !d.Keep && !strings.HasPrefix(later[d.ID], "delete") {
				t.Fatalf("%s expires now but is kept %d hours later (%s)", d.ID, laterHours, later[d.ID])
			}
		}
	})
}

func ExampleDecide() {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	snaps := []Snapshot{
		{ID: "snap-0000000a", Start: now.Add(-40 * 24 * time.Hour)},
		{ID: "snap-0000000b", Start: now.Add(-35 * 24 * time.Hour)},
		{ID: "snap-0000000c", Start: now.Add(-1 * 24 * time.Hour)},
		{ID: "snap-0000000d"}, // StartTime unreadable
	}
	r := Rules{MaxAge: 30 * 24 * time.Hour, MinKeep: 2}
	for _, d := range Decide(snaps, r, now) {
		fmt.Println(d.ID, d.Keep, r.Explain(d))
	}
	// Output:
	// snap-0000000d true unknown_time
	// snap-0000000c true newest
	// snap-0000000b true within min_keep 2
	// snap-0000000a false older than max_age 720h0m0s and beyond min_keep 2
}
