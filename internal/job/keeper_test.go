package job

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestKeeper: the keeper of a job key's creations is the smallest usable set, whatever
// part of them an observer saw and in whatever order: the rule never looks at StartTime,
// so two creations in the same second (moto's StartTime is whole seconds) are told apart
// as well as any others, and a set with a failed snapshot is never kept.
func TestKeeper(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		made []Made
		want string // "" with ok false when no set is usable
		ok   bool
	}{
		{"none", nil, "", false},
		{"one", []Made{{ID: "snap-b", Set: "snap-b"}}, "snap-b", true},
		// The race of issue 12: equal StartTimes, the later creation has the smaller id.
		{"two of a volume, equal start times", []Made{{ID: "snap-b", Set: "snap-b"}, {ID: "snap-a", Set: "snap-a"}}, "snap-a", true},
		{"the smallest failed", []Made{{ID: "snap-a", Set: "snap-a", Failed: true}, {ID: "snap-b", Set: "snap-b"}}, "snap-b", true},
		{"all failed", []Made{{ID: "snap-a", Set: "snap-a", Failed: true}}, "", false},
		{"instance sets: the set, not the smallest id", []Made{
			{ID: "snap-1", Set: "f0"}, {ID: "snap-9", Set: "f0"},
			{ID: "snap-5", Set: "0a"}, {ID: "snap-6", Set: "0a"},
		}, "0a", true},
		{"instance sets: one failed member fails its set", []Made{
			{ID: "snap-5", Set: "0a"}, {ID: "snap-6", Set: "0a", Failed: true},
			{ID: "snap-1", Set: "f0"}, {ID: "snap-9", Set: "f0"},
		}, "f0", true},
		{"instance sets: an unnamed (older) set first", []Made{{ID: "snap-1", Set: "0a"}, {ID: "snap-2", Set: ""}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Any order.
			for range 20 {
				made := append([]Made(nil), tt.made...)
				rand.Shuffle(len(made), func(i, j int) { made[i], made[j] = made[j], made[i] })
				got, ok := Keeper(made)
				if got != tt.want || ok != tt.ok {
					t.Fatalf("Keeper(%v) = %q, %v; want %q, %v", made, got, ok, tt.want, tt.ok)
				}
			}
		})
	}
}

// TestSetOf: which creation of a key a snapshot belongs to, and which snapshots carrying
// the key no create call of it made.
func TestSetOf(t *testing.T) {
	t.Parallel()
	period := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	vk := CreateKey("111111111111", "us-east-1", "vol-0abc1234", "daily", period)
	ik := CreateKey("111111111111", "us-east-1", "i-0abc1234", "daily", period)
	tests := []struct {
		name, key, id, volume, desc string
		set                         string
		ok                          bool
	}{
		{"volume", vk, "snap-1", "vol-0abc1234", CreateDescription("daily", vk, ""), "snap-1", true},
		{"volume, other description", vk, "snap-1", "vol-0abc1234", "my own", "", false},
		{"volume, a copy", vk, "snap-1", "vol-ffffffff", CreateDescription("daily", vk, ""), "", false},
		{"volume, other volume", vk, "snap-1", "vol-0def1234", CreateDescription("daily", vk, ""), "", false},
		{"instance set", ik, "snap-1", "vol-0abc1234", CreateDescription("daily", ik, "5f3a"), "5f3a", true},
		{"instance, unnamed set", ik, "snap-1", "vol-0abc1234", CreateDescription("daily", ik, ""), "", true},
		{"instance, empty set name", ik, "snap-1", "vol-0abc1234", CreateDescription("daily", ik, "") + " set ", "", false},
		{"instance, a copy", ik, "snap-1", "vol-ffffffff", CreateDescription("daily", ik, "5f3a"), "", false},
		{"instance, other key's description", ik, "snap-1", "vol-0abc1234", CreateDescription("daily", vk, "5f3a"), "", false},
		{"not a create key", DeleteKey("111111111111", "us-east-1", "snap-1"), "snap-1", "vol-0abc1234", "snapfleet", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set, ok := SetOf(tt.key, tt.id, tt.volume, tt.desc)
			if set != tt.set || ok != tt.ok {
				t.Errorf("SetOf = %q, %v; want %q, %v", set, ok, tt.set, tt.ok)
			}
		})
	}
}

// TestKeeperAnyView: observers that each see a different part of a key's creations — some
// sets not yet made, some snapshots of a set not yet listed — and each remove the
// duplicates they see, never remove the smallest set, nor any part of it, and the last
// observer, which sees all, leaves only that set, whole.
func TestKeeperAnyView(t *testing.T) {
	t.Parallel()
	for trial := range 500 {
		r := rand.New(rand.NewPCG(uint64(trial), 1))
		var all []Made
		for s := range 1 + r.IntN(4) {
			set := string(rune('a' + r.IntN(26)))
			if s == 0 && r.IntN(2) == 0 {
				set = "" // an unnamed set sorts first
			}
			for v := range 1 + r.IntN(3) {
				all = append(all, Made{ID: set + string(rune('0'+v)) + string(rune('a'+s)), Set: set})
			}
		}
		r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		want, _ := Keeper(all)
		gone := map[string]bool{}
		for n := 1; n <= len(all); n++ {
			// An observer sees the first n made, less some it does not list yet.
			var seen []Made
			for _, m := range all[:n] {
				if !gone[m.ID] && (n == len(all) || r.IntN(3) > 0) {
					seen = append(seen, m)
				}
			}
			keep, ok := Keeper(seen)
			for _, m := range seen {
				if ok && m.Set != keep {
					if m.Set == want {
						t.Fatalf("trial %d: an observer of %v removed %s of the keeper set %q", trial, seen, m.ID, want)
					}
					gone[m.ID] = true
				}
			}
		}
		for _, m := range all {
			if gone[m.ID] == (m.Set == want) {
				t.Fatalf("trial %d: %s of set %q gone=%v, want only set %q left, whole", trial, m.ID, m.Set, gone[m.ID], want)
			}
		}
	}
}
