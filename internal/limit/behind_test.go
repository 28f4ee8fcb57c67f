package limit

import (
	"context"
	"testing"
	"time"
)

// TestBehind: a bucket with tokens is not behind; tokens reserved ahead (Admit) put it
// behind by the time its refill takes to reach them, less as time passes; Behind itself
// takes nothing; an action that is not limited is never behind.
func TestBehind(t *testing.T) {
	t.Parallel()
	l, clock := newTest(map[string]Bucket{"CreateTags": {Burst: 2, PerSecond: 1}})
	if d := l.Behind("a", "r", "CreateTags"); d != 0 {
		t.Fatalf("full bucket behind by %s", d)
	}
	if d := l.Behind("a", "r", "CreateTags"); d != 0 {
		t.Fatalf("Behind took a token: behind by %s", d)
	}
	_, _, _, ok := l.Admit(context.Background(), "a", "r", []Need{{Action: "CreateTags", N: 5}}, time.Hour)
	if !ok {
		t.Fatal("not admitted")
	}
	// 2 tokens held, 3 reserved ahead: the next is the 6th, 4 s of refill away.
	if d := l.Behind("a", "r", "CreateTags"); d != 4*time.Second {
		t.Errorf("behind by %s, want 4s", d)
	}
	clock.add(3 * time.Second)
	if d := l.Behind("a", "r", "CreateTags"); d != time.Second {
		t.Errorf("3 s later: behind by %s, want 1s", d)
	}
	if d := l.Behind("a", "r", "DescribeInstances"); d != 0 {
		t.Errorf("an action that is not limited is behind by %s", d)
	}
}
