package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profiles for measuring snapfleet itself (BENCHMARKS.md): SNAPFLEET_CPUPROFILE names a
// file for a CPU profile of the whole command, SNAPFLEET_MEMPROFILE one for a heap
// profile (allocations and what is live) written as it exits. Read them with
// `go tool pprof`. Neither is set in normal use.
const (
	envCPUProfile = "SNAPFLEET_CPUPROFILE"
	envMemProfile = "SNAPFLEET_MEMPROFILE"
)

// startProfiles starts what the environment asks for; stop writes and closes them.
func startProfiles(stderr io.Writer) (stop func()) {
	var stops []func()
	if path := os.Getenv(envCPUProfile); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "snapfleet: %s=%s: %v\n", envCPUProfile, path, err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := os.Getenv(envMemProfile); path != "" {
		stops = append(stops, func() {
			f, err := os.Create(path)
			if err == nil {
				runtime.GC()
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(stderr, "snapfleet: %s=%s: %v\n", envMemProfile, path, err)
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
