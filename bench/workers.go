package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// runWorkers runs n `snapfleet work --output json` processes with args at once, waits for
// all of them, and adds up their summaries and CPU time. Any that failed makes the error.
func runWorkers(ctx context.Context, o options, env []string, n int, args ...string) (map[string]int, time.Duration, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	sum := map[string]int{}
	var cpu time.Duration
	var werr error
	for range n {
		wg.Go(func() {
			r := snapfleet(ctx, o, env, append(append([]string{"work"}, args...), "--output", "json")...)
			mu.Lock()
			defer mu.Unlock()
			cpu += r.cpu
			var m map[string]int
			if err := json.Unmarshal(r.stdout, &m); err != nil || r.code != 0 {
				werr = fmt.Errorf("work exit %d: %s", r.code, tail(r.stderr))
				return
			}
			for k, v := range m {
				sum[k] += v
			}
		})
	}
	wg.Wait()
	return sum, cpu, werr
}
