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
		{"default policy", config.DefaultPolicy(), Rules{MaxAge: 30 * day, MinKeep: 1, OrphanMinKeep: 1}},
		{"min_keep unset is 1", config.Policy{Retain: config.Retain{KeepLast: 7}}, Rules{KeepLast: 7, MinKeep: 1, OrphanMinKeep: 1}},
		{"min_keep 0 keeps the newest of a gone volume", config.Policy{Retain: config.Retain{KeepLast: 7, MinKeep: &zero}}, Rules{KeepLast: 7, OrphanMinKeep: 1}},
		{"min_keep 0 with orphans.min_keep 0", config.Policy{Retain: config.Retain{KeepLast: 7, MinKeep: &zero}, Orphans: config.Orphans{MinKeep: &zero}}, Rules{KeepLast: 7}},
		{"all set", config.Policy{Retain: config.Retain{MaxAge: config.Duration(36 * time.Hour), KeepLast: 5, KeepHourly: 24,
			KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 3, MinKeep: &three}, Orphans: config.Orphans{MinKeep: &zero}},
			Rules{MaxAge: 36 * time.Hour, KeepLast: 5, KeepHourly: 24, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 3, MinKeep: 3}},
	}
	for _, tt := range tests {
		if got := FromPolicy(tt.p); got != tt.want {
			t.Errorf("%s: FromPolicy = %+v, want %+v", tt.name, got, tt.want)
		}
	}
	// A parsed config gives the same rules as the struct.
	c, err := config.Parse(strings.NewReader("policies:\n  - name: p\n    retain: {max_age: 30d, keep_last: 2, keep_daily: 7, keep_weekly: 4, keep_monthly: 6, keep_yearly: 2, keep_hourly: 1, min_keep: 3}\n    orphans: {min_keep: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Rules{MaxAge: 30 * day, KeepLast: 2, KeepHourly: 1, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 6, KeepYearly: 2, MinKeep: 3, OrphanMinKeep: 1}
	if got := FromPolicy(c.Policies[0]); got != want {
		t.Errorf("FromPolicy(parsed) = %+v, want %+v", got, want)
	}
	if got := FromPolicy(c.Policies[0]).Orphaned(); got.MinKeep != 1 || !got.Orphan || got.KeepDaily != 7 {
		t.Errorf("Orphaned = %+v, want the same rules with the orphans' floor 1", got)
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	r := Rules{MaxAge: 30 * day, KeepLast: 3, MinKeep: 2}
	gfs := Rules{KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 2, KeepHourly: 6, MinKeep: 1}
	tests := []struct {
		rules Rules
		d     Decision
		want  string
	}{
		{r, Decision{Reason: KeptNewest}, "newest of its volume"},
		{r, Decision{Reason: KeptNewest, Rules: []string{KeptKeepLast, KeptMaxAge}}, "newest of its volume; within keep_last 3; younger than max_age 30d"},
		{r, Decision{Reason: KeptMinKeep}, "within min_keep 2"},
		{r, Decision{Reason: KeptKeepLast}, "within keep_last 3"},
		{r, Decision{Reason: KeptMaxAge}, "younger than max_age 30d"},
		{gfs, Decision{Reason: KeptDaily, Rules: []string{KeptDaily, KeptWeekly, KeptMonthly, KeptYearly, KeptHourly}},
			"newest of its UTC day, within keep_daily 7; newest of its ISO week, within keep_weekly 4; newest of its UTC month, within keep_monthly 12; newest of its UTC year, within keep_yearly 2; newest of its UTC hour, within keep_hourly 6"},
		{r, Decision{Reason: KeptUnknownTime}, "start time unknown: never counted, never deleted"},
		{r, Decision{Reason: KeptFuture}, "start time in the future: never counted, never deleted"},
		{r, Decision{Reason: Expired}, "older than max_age 30d and beyond keep_last 3, min_keep 2"},
		{Rules{KeepLast: 3, MinKeep: 1}, Decision{Reason: Expired}, "beyond keep_last 3, min_keep 1"},
		{Rules{MaxAge: 36 * time.Hour, MinKeep: 1}, Decision{Reason: Expired}, "older than max_age 36h0m0s and beyond min_keep 1"},
		{Rules{MaxAge: day}, Decision{Reason: Expired}, "older than max_age 1d and beyond min_keep 1"}, // the newest is always kept
		{gfs, Decision{Reason: Expired}, "beyond keep_hourly 6, keep_daily 7, keep_weekly 4, keep_monthly 12, keep_yearly 2, min_keep 1"},
		{Rules{MaxAge: day, MinKeep: 3}.Orphaned(), Decision{Reason: Expired}, "older than max_age 1d and beyond orphans.min_keep 0 (volume gone)"},
		{Rules{MaxAge: day, MinKeep: 3, OrphanMinKeep: 2}.Orphaned(), Decision{Reason: KeptMinKeep}, "within orphans.min_keep 2"},
	}
	for _, tt := range tests {
		tt.d.ID = "x"
		if got := tt.rules.Explain(tt.d); got != tt.want {
			t.Errorf("Explain(%+v) under %+v = %q, want %q", tt.d, tt.rules, got, tt.want)
		}
	}
}

// utc parses a UTC time in the layout 2006-01-02T15:04.
func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// at makes a snapshot started at a UTC time written 2006-01-02T15:04.
func at(id, s string) Snapshot { return Snapshot{ID: id, Start: utc(s)} }

func TestDecideGFS(t *testing.T) {
	t.Parallel()
	// Forty daily snapshots at 03:00 UTC, d00 the newest (2026-11-22) back to d39 (2026-10-14).
	var forty []Snapshot
	for i := 0; i < 40; i++ {
		forty = append(forty, Snapshot{ID: fmt.Sprintf("d%02d", i), Start: utc("2026-11-22T03:00").Add(-time.Duration(i) * day)})
	}
	onlyKept := func(ids ...string) map[string]string {
		m := map[string]string{}
		for _, s := range forty {
			m[s.ID] = "delete"
		}
		for _, id := range ids {
			m[id] = "keep"
		}
		return m
	}
	tests := []struct {
		name  string
		snaps []Snapshot
		rules Rules
		now   time.Time
		want  map[string]string // id → keep:reason, or keep / delete when only the verdict matters
	}{
		{"keep_daily alone: newest of each of the last 3 days with snapshots", []Snapshot{
			at("a", "2026-11-22T10:00"), at("b", "2026-11-22T02:00"), at("c", "2026-11-21T23:59"), at("d", "2026-11-21T00:00"),
			at("e", "2026-11-18T12:00"), at("f", "2026-11-17T12:00")}, Rules{KeepDaily: 3}, now,
			map[string]string{"a": "keep:newest", "b": "delete:expired", "c": "keep:keep_daily", "d": "delete:expired", "e": "keep:keep_daily", "f": "delete:expired"}},
		{"keep_daily counts days that have snapshots, not calendar days", []Snapshot{
			at("a", "2026-11-22T10:00"), at("b", "2025-01-01T10:00"), at("c", "2020-06-01T10:00")}, Rules{KeepDaily: 3}, now,
			map[string]string{"a": "keep:newest", "b": "keep:keep_daily", "c": "keep:keep_daily"}},
		{"keep_hourly alone", []Snapshot{
			at("a", "2026-11-22T11:59"), at("b", "2026-11-22T11:00"), at("c", "2026-11-22T10:59"), at("d", "2026-11-22T09:30"), at("e", "2026-11-22T08:30")},
			Rules{KeepHourly: 3}, now,
			map[string]string{"a": "keep:newest", "b": "delete:expired", "c": "keep:keep_hourly", "d": "keep:keep_hourly", "e": "delete:expired"}},
		{"keep_weekly uses ISO weeks: Sunday and the next Monday differ", []Snapshot{
			at("mon", "2026-11-16T00:00"), at("sun", "2026-11-15T23:59"), at("sat", "2026-11-14T12:00"), at("prev", "2026-11-08T12:00")},
			Rules{KeepWeekly: 2}, now,
			map[string]string{"mon": "keep:newest", "sun": "keep:keep_weekly", "sat": "delete:expired", "prev": "delete:expired"}},
		{"keep_weekly across a year boundary: 2026-12-31 and 2027-01-01 share ISO week 2026-W53", []Snapshot{
			at("jan1", "2027-01-01T12:00"), at("dec31", "2026-12-31T12:00"), at("dec27", "2026-12-27T12:00")},
			Rules{KeepWeekly: 5}, utc("2027-01-02T00:00"),
			map[string]string{"jan1": "keep:newest", "dec31": "delete:expired", "dec27": "keep:keep_weekly"}},
		{"keep_monthly at month boundaries", []Snapshot{
			at("dec1", "2026-12-01T00:00"), at("nov30", "2026-11-30T23:59"), at("nov1", "2026-11-01T00:00"), at("oct31", "2026-10-31T23:59"), at("sep", "2026-09-15T00:00")},
			Rules{KeepMonthly: 3}, utc("2026-12-02T00:00"),
			map[string]string{"dec1": "keep:newest", "nov30": "keep:keep_monthly", "nov1": "delete:expired", "oct31": "keep:keep_monthly", "sep": "delete:expired"}},
		{"keep_yearly at the year boundary", []Snapshot{
			at("y27", "2027-01-01T00:00"), at("y26b", "2026-12-31T23:59"), at("y26a", "2026-01-01T00:00"), at("y25", "2025-12-31T23:59"), at("y24", "2024-06-01T00:00")},
			Rules{KeepYearly: 3}, utc("2027-01-01T01:00"),
			map[string]string{"y27": "keep:newest", "y26b": "keep:keep_yearly", "y26a": "delete:expired", "y25": "keep:keep_yearly", "y24": "delete:expired"}},
		{"leap day is a day and in February", []Snapshot{
			at("mar1", "2028-03-01T00:30"), at("feb29", "2028-02-29T23:00"), at("feb29early", "2028-02-29T01:00"), at("feb28", "2028-02-28T12:00")},
			Rules{KeepDaily: 2, KeepMonthly: 2}, utc("2028-03-01T12:00"),
			map[string]string{"mar1": "keep:newest", "feb29": "keep:keep_daily", "feb29early": "delete:expired", "feb28": "delete:expired"}},
		{"UTC only: a snapshot written in +14:00 falls in its UTC day", []Snapshot{
			{ID: "a", Start: utc("2026-11-22T01:00").In(time.FixedZone("LINT", 14*3600))},
			{ID: "b", Start: utc("2026-11-21T23:00").In(time.FixedZone("LINT", 14*3600))}, // local date Nov 22 too
			{ID: "c", Start: utc("2026-11-21T22:00").In(time.FixedZone("HST", -10*3600))}},
			Rules{KeepDaily: 2}, now,
			map[string]string{"a": "keep:newest", "b": "keep:keep_daily", "c": "delete:expired"}},
		{"DST is irrelevant: the day a zone changes clocks is 24 UTC hours", []Snapshot{
			{ID: "a", Start: utc("2026-11-02T06:30").In(mustZone("America/New_York"))},
			{ID: "b", Start: utc("2026-11-01T05:30").In(mustZone("America/New_York"))}, // 01:30 EDT, then clocks go back
			{ID: "c", Start: utc("2026-11-01T04:30").In(mustZone("America/New_York"))}},
			Rules{KeepDaily: 3}, now,
			map[string]string{"a": "keep:newest", "b": "keep:keep_daily", "c": "delete:expired"}},
		{"ties in start time: one per day, the greater id", []Snapshot{
			at("snap-1", "2026-11-20T10:00"), at("snap-3", "2026-11-20T10:00"), at("snap-2", "2026-11-19T10:00"), at("snap-4", "2026-11-19T10:00")},
			Rules{KeepDaily: 5}, now,
			map[string]string{"snap-3": "keep:newest", "snap-1": "delete:expired", "snap-4": "keep:keep_daily", "snap-2": "delete:expired"}},
		{"future and unknown times are kept and fill no period", []Snapshot{
			at("future", "2026-11-23T10:00"), {ID: "unknown"}, at("a", "2026-11-22T10:00"), at("b", "2026-11-21T10:00"), at("c", "2026-11-20T10:00")},
			Rules{KeepDaily: 2}, now,
			map[string]string{"future": "keep:future_time", "unknown": "keep:unknown_time", "a": "keep:newest", "b": "keep:keep_daily", "c": "delete:expired"}},
		{"GFS over forty days: 7 daily, 4 weekly, 3 monthly", forty,
			Rules{KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 3}, now,
			// daily d00–d06 (Nov 22–16); weekly: newest of W47 (d00), W46 (d07 Nov 15),
			// W45 (d14 Nov 8), W44 (d21 Nov 1); monthly: Nov (d00), Oct (d22 Oct 31), and
			// the oldest month with snapshots is October, so only two months exist.
			onlyKept("d00", "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d14", "d21", "d22")},
		{"GFS with keep_last, max_age and min_keep combined", forty,
			Rules{KeepLast: 2, KeepWeekly: 2, KeepYearly: 1, MaxAge: 3*day + 9*time.Hour + 1, MinKeep: 5}, now,
			// min_keep d00–d04; max_age (from 12:00 Nov 22) d00–d03; weekly d00, d07.
			onlyKept("d00", "d01", "d02", "d03", "d04", "d07")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Decide(tt.snaps, tt.rules, tt.now)
			v := verdicts(got)
			for id, want := range tt.want {
				if !strings.Contains(want, ":") {
					v[id] = strings.SplitN(v[id], ":", 2)[0]
				}
			}
			if !reflect.DeepEqual(v, tt.want) {
				t.Fatalf("Decide =\n%v\nwant\n%v", v, tt.want)
			}
		})
	}
}

func mustZone(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		// No tz database: a fixed -4h zone shows the same instants.
		return time.FixedZone(name, -4*3600)
	}
	return l
}

func TestDecideReasonsNameEveryRule(t *testing.T) {
	t.Parallel()
	snaps := []Snapshot{at("a", "2026-11-22T10:00"), at("b", "2026-11-21T10:00"), at("c", "2026-10-31T10:00")}
	r := Rules{KeepLast: 1, KeepDaily: 3, KeepMonthly: 2, MaxAge: 2 * day, MinKeep: 2}
	got := map[string]Decision{}
	for _, d := range Decide(snaps, r, now) {
		got[d.ID] = d
	}
	want := map[string][]string{
		"a": {KeptKeepLast, KeptDaily, KeptMonthly, KeptMaxAge},
		"b": {KeptDaily, KeptMaxAge},
		"c": {KeptDaily, KeptMonthly},
	}
	for id, rules := range want {
		if !reflect.DeepEqual(got[id].Rules, rules) {
			t.Errorf("%s kept by %v, want %v", id, got[id].Rules, rules)
		}
	}
	if got["a"].Reason != KeptNewest || got["b"].Reason != KeptMinKeep || got["c"].Reason != KeptDaily {
		t.Errorf("reasons %v", got)
	}
}

func TestDecideOrphans(t *testing.T) {
	t.Parallel()
	daily := []Snapshot{ago("a", 40*day), ago("b", 41*day), ago("c", 42*day)}
	tests := []struct {
		name  string
		rules Rules
		want  map[string]string
	}{
		{"gone volume under the default floor keeps its newest", Rules{MaxAge: 30 * day, MinKeep: 1, OrphanMinKeep: 1}.Orphaned(),
			map[string]string{"a": "keep:newest", "b": "delete:expired", "c": "delete:expired"}},
		{"orphans.min_keep 2", Rules{MaxAge: 30 * day, MinKeep: 3, OrphanMinKeep: 2}.Orphaned(),
			map[string]string{"a": "keep:newest", "b": "keep:min_keep", "c": "delete:expired"}},
		{"orphans.min_keep 0 lets everything expire, the newest too", Rules{MaxAge: 30 * day, MinKeep: 1}.Orphaned(),
			map[string]string{"a": "delete:expired", "b": "delete:expired", "c": "delete:expired"}},
		{"orphans.min_keep 0 still honours the keep rules", Rules{MaxAge: 41*day + time.Hour, MinKeep: 1}.Orphaned(),
			map[string]string{"a": "keep:max_age", "b": "keep:max_age", "c": "delete:expired"}},
		{"min_keep 0 on a live volume still keeps the newest", Rules{MaxAge: 30 * day},
			map[string]string{"a": "keep:newest", "b": "delete:expired", "c": "delete:expired"}},
	}
	for _, tt := range tests {
		if v := verdicts(Decide(daily, tt.rules, now)); !reflect.DeepEqual(v, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, v, tt.want)
		}
	}
}

// TestGoneVolumeNewestNeedsOptIn is issue 12.1: under retain.min_keep 0 and no orphans key,
// the only snapshot of a gone volume is kept (the newest is never deleted without the
// orphans opt-in); an explicit orphans.min_keep 0 lets it expire.
func TestGoneVolumeNewestNeedsOptIn(t *testing.T) {
	t.Parallel()
	only := []Snapshot{ago("a", 40*day)}
	for _, tt := range []struct {
		doc  string
		want map[string]string
	}{
		{"policies:\n  - {name: p, every: 24h, retain: {max_age: 30d, min_keep: 0}}\n", map[string]string{"a": "keep:newest"}},
		{"policies:\n  - {name: p, every: 24h, retain: {max_age: 30d, min_keep: 0}, orphans: {min_keep: 1}}\n", map[string]string{"a": "keep:newest"}},
		{"policies:\n  - {name: p, every: 24h, retain: {max_age: 30d, min_keep: 0}, orphans: {min_keep: 0}}\n", map[string]string{"a": "delete:expired"}},
	} {
		c, err := config.Parse(strings.NewReader(tt.doc))
		if err != nil {
			t.Fatal(err)
		}
		rules := FromPolicy(c.Policies[0])
		if v := verdicts(Decide(only, rules, now)); !reflect.DeepEqual(v, map[string]string{"a": "keep:newest"}) {
			t.Errorf("%s live volume: %v, want the newest kept", tt.doc, v)
		}
		if v := verdicts(Decide(only, rules.Orphaned(), now)); !reflect.DeepEqual(v, tt.want) {
			t.Errorf("%s gone volume: %v, want %v", tt.doc, v, tt.want)
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
	f.Add([]byte{0, 1, 0, 0, 48, 1, 0, 96, 2}, int64(30*24), int8(0), int8(1), uint16(0), uint32(0), uint16(0))
	f.Add([]byte{0, 1, 0, 0, 1, 1, 0, 1, 2, 0xff, 0xff, 0, 0xff, 0xfe, 0}, int64(0), int8(2), int8(1), uint16(5), uint32(0x12345), uint16(3))
	f.Add([]byte{1, 0, 9, 2, 0, 8, 3, 0, 7, 4, 0, 6}, int64(1), int8(0), int8(3), uint16(300), uint32(0x77777), uint16(0x8000))
	f.Add([]byte{}, int64(24), int8(1), int8(1), uint16(0), uint32(0), uint16(0))
	f.Add([]byte{0, 5, 1, 0, 5, 2, 0, 5, 3}, int64(-5), int8(-1), int8(-1), uint16(1), uint32(0xfffff), uint16(0x8001))
	f.Add([]byte{0, 24, 1, 0, 48, 2, 0, 200, 3, 1, 100, 4, 10, 0, 5, 40, 0, 6}, int64(0), int8(0), int8(0), uint16(48), uint32(0x01230), uint16(0x8000))
	f.Fuzz(func(t *testing.T, data []byte, maxAgeHours int64, keepLast, minKeep int8, laterHours uint16, gfs uint32, newer uint16) {
		snaps := fuzzSnaps(data)
		// gfs packs keep_hourly, keep_daily, keep_weekly, keep_monthly and keep_yearly in
		// 4 bits each; newer's top bit makes the volume an orphan with orphans.min_keep
		// (minKeep/2), its low bits the age in hours of a snapshot added for monotonicity.
		r := Rules{MaxAge: time.Duration(maxAgeHours % (1 << 20) * int64(time.Hour)), KeepLast: int(keepLast), MinKeep: int(minKeep),
			KeepHourly: int(gfs & 15), KeepDaily: int(gfs >> 4 & 15), KeepWeekly: int(gfs >> 8 & 15),
			KeepMonthly: int(gfs >> 12 & 15), KeepYearly: int(gfs >> 16 & 15), OrphanMinKeep: int(minKeep) / 2}
		if newer&0x8000 != 0 {
			r = r.Orphaned()
		}
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

		// Never the newest dated snapshot (unless an orphan whose policy opted in).
		floor := max(1, r.MinKeep)
		if r.Orphan {
			floor = max(0, r.MinKeep)
		}
		if len(dated) > 0 && floor > 0 {
			if d := byID[dated[0].ID]; !d.Keep || d.Reason != KeptNewest {
				t.Fatalf("newest %v: %+v", dated[0], d)
			}
		}
		// Never below the floor.
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
			if d.Reason != Expired || len(d.Rules) != 0 {
				t.Fatalf("deleted with reason %q, rules %v", d.Reason, d.Rules)
			}
			// No count rule wanted it: its period has a newer kept snapshot, or the rule
			// has run out of periods before reaching it.
			for _, b := range []struct {
				n      int
				period func(time.Time) int64
			}{{r.KeepHourly, hourOf}, {r.KeepDaily, dayOf}, {r.KeepWeekly, weekOf}, {r.KeepMonthly, monthOf}, {r.KeepYearly, yearOf}} {
				if b.n <= 0 {
					continue
				}
				periods := map[int64]bool{}
				for _, newer := range dated[:rank] {
					periods[b.period(newer.Start.UTC())] = true
				}
				if !periods[b.period(s.Start.UTC())] && len(periods) < b.n {
					t.Fatalf("deleted %v, the newest of its period within %d periods, under %+v", s, b.n, r)
				}
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

		// Monotone: a newer snapshot never brings back one that was deleted.
		added := Snapshot{ID: "snap-added", Start: now.Add(-time.Duration(newer&0x7fff) * time.Minute)}
		if len(dated) == 0 || !added.Start.Before(dated[0].Start) {
			again := verdicts(Decide(append(append([]Snapshot(nil), snaps...), added), r, now))
			for _, d := range out {
				if !d.Keep && !strings.HasPrefix(again[d.ID], "delete") {
					t.Fatalf("%s was deleted, but adding newer %v keeps it (%s) under %+v", d.ID, added.Start, again[d.ID], r)
				}
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
	// snap-0000000d true start time unknown: never counted, never deleted
	// snap-0000000c true newest of its volume; younger than max_age 30d
	// snap-0000000b true within min_keep 2
	// snap-0000000a false older than max_age 30d and beyond min_keep 2
}
