package planner

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
)

// benchInventory is a fleet of instances×2 volumes with perVolume daily snapshots each,
// every fifth instance tagged for exclusion, a foreign and an unknown-policy snapshot
// now and then.
func benchInventory(instances, perVolume int) Inventory {
	inv := Inventory{Account: acct, Region: region, SnapshotsComplete: true,
		Instances: make([]Instance, 0, instances),
		Snapshots: make([]Snapshot, 0, instances*2*perVolume)}
	skip := map[string]string{"snapfleet:skip": "true"}
	n := 0
	for i := range instances {
		in := Instance{ID: fmt.Sprintf("i-%017x", i), State: "running"}
		if i%5 == 0 {
			in.Tags = skip
		}
		for d := range 2 {
			vol := fmt.Sprintf("vol-%017x", i*2+d)
			in.Volumes = append(in.Volumes, Attachment{Volume: vol, Device: fmt.Sprintf("/dev/xvd%c", 'a'+d)})
			for k := range perVolume {
				s := Snapshot{ID: fmt.Sprintf("snap-%017x", n), Owner: acct, Policy: "daily", Volume: vol,
					Start: now.Add(-time.Duration(k*6+1) * 24 * time.Hour), State: "completed"}
				switch n % 1000 {
				case 7:
					s.Owner = other
				case 11:
					s.Policy = "renamed"
				}
				inv.Snapshots = append(inv.Snapshots, s)
				n++
			}
		}
		inv.Instances = append(inv.Instances, in)
	}
	return inv
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecide plans 100,000 volumes and 1,000,000 snapshots in memory, with every
// keep decision (dry-run: what a dry run shows) and without (plan: what a plan that does
// not log each decision holds). MiB-heap is the peak live heap during an op, the
// inventory (built once, outside the timer) included.
func BenchmarkDecide(b *testing.B) {
	for _, c := range []struct {
		name  string
		keeps bool
	}{{"dry-run", true}, {"plan", false}} {
		b.Run(c.name, func(b *testing.B) { benchDecide(b, c.keeps) })
	}
}

func benchDecide(b *testing.B, keeps bool) {
	inv := benchInventory(50_000, 10)
	cfg, err := config.Parse(strings.NewReader(`
policies:
  - name: daily
    select:
      exclude_tags: {"snapfleet:skip": "true"}
    retain: {max_age: 30d, min_keep: 2}
`))
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	var res Result
	for b.Loop() {
		res = decide(inv, cfg, now, keeps)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	close(stop)
	<-done
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if m.HeapAlloc > peak.Load() {
		peak.Store(m.HeapAlloc)
	}
	b.ReportMetric(float64(peak.Load())/(1<<20), "MiB-heap")
	b.ReportMetric(float64(base.HeapAlloc)/(1<<20), "MiB-inventory")
	// CPU time of the process (GC workers included) per op: steadier than ns/op on a
	// shared machine.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	if res.Creates != 80_000 || res.Deletes == 0 || res.SnapshotsSeen != 999_000 {
		b.Fatalf("implausible result: %d creates, %d deletes, %d seen", res.Creates, res.Deletes, res.SnapshotsSeen)
	}
}
