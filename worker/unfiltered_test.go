package worker

import (
	"fmt"
	"os"
	"sync"

	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
)

// unfilteredCalls are the worker's calls, in any test, that would take EC2's bucket of
// unfiltered and unpaginated listings (50, refilled at 10 per second: DESIGN.md §8):
// faults.apply records them, on every worker client of the tests, and TestMain fails the
// run when there is one. The worker lists only by id, by filter or by page.
var unfilteredCalls struct {
	sync.Mutex
	seen []string
}

// checkUnfiltered records the call op with params when it is an unfiltered listing.
func checkUnfiltered(op string, params any) {
	if _, unfiltered := awslimits.UnfilteredInput(params); unfiltered {
		unfilteredCalls.Lock()
		defer unfilteredCalls.Unlock()
		unfilteredCalls.seen = append(unfilteredCalls.seen, fmt.Sprintf("%s %+v", op, params))
	}
}

// failOnUnfiltered is TestMain's exit code: code, or 1 with a report when the worker made
// an unfiltered listing.
func failOnUnfiltered(code int) int {
	unfilteredCalls.Lock()
	defer unfilteredCalls.Unlock()
	if len(unfilteredCalls.seen) == 0 {
		return code
	}
	fmt.Fprintf(os.Stderr, "FAIL: the worker made %d unfiltered, unpaginated listings (EC2's 50/10 bucket), e.g. %s\n",
		len(unfilteredCalls.seen), unfilteredCalls.seen[0])
	return 1
}
