package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// TestAccountWithoutRoleRefused: a config listing an account without a role that is not
// the caller's is refused when the function starts, in both modes, naming the account and
// the caller's; the queue is not even opened.
func TestAccountWithoutRoleRefused(t *testing.T) {
	t.Parallel()
	s := mototest.Start(t)
	cfg, err := config.Parse(strings.NewReader("accounts: [{id: \"801119661308\"}]\n" + lambdaTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jobs.db")
	for _, mode := range []string{lambdaModePlan, lambdaModeWork} {
		f, err := newLambdaFunction(context.Background(), lambdaSettings{Mode: mode, Config: cfg, Queue: "file:" + path, AWS: s.AWSConfig(t)})
		var foreign *cloud.ForeignAccountError
		if !errors.As(err, &foreign) || !strings.Contains(err.Error(), "801119661308") || !strings.Contains(err.Error(), mototest.Account) {
			t.Errorf("%s: New error %v; want a ForeignAccountError naming 801119661308 and %s", mode, err, mototest.Account)
		}
		if f != nil {
			f.Close()
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("queue file opened (%v)", err)
	}
}
