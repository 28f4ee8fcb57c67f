package testbed

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/snapfleet/snapfleet/"

// imports maps each folder of the module (relative, slash-separated) to the imports of its
// non-test Go files.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			out[rel] = append(out[rel], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("found only %d packages under %s: wrong root?", len(out), root)
	}
	return out
}

// TestLayout holds the dependency rules of DESIGN.md §1: cmd wires everything and only
// cmd builds the planner and the worker; planner and worker never import each other; queue
// knows nothing of EC2; the job message imports only the standard library and the reason
// codes nothing; the rigs under
// internal/testbed are imported by tests and bench/ only.
func TestLayout(t *testing.T) {
	t.Parallel()
	for dir, ims := range imports(t) {
		inTestbed := strings.HasPrefix(dir, "internal/testbed")
		for _, im := range ims {
			local, ok := strings.CutPrefix(im, module)
			var broken string
			switch {
			case dir == "internal/job" && strings.Contains(strings.SplitN(im, "/", 2)[0], "."):
				broken = "the job message imports only the standard library"
			case dir == "internal/reason":
				broken = "the reason codes import nothing"
			case strings.HasPrefix(dir, "queue") && strings.Contains(im, "service/ec2"):
				broken = "queue knows nothing of EC2"
			case !ok:
			case dir == "internal/report" && local == "planner":
				// The coverage report reads the fleet with the planner's listings and
				// selection (it builds no planner).
			case strings.HasPrefix(dir, "internal/") && !inTestbed && (local == "planner" || local == "worker" || strings.HasPrefix(local, "cmd")):
				broken = "internal packages never import planner, worker or cmd: cmd wires them"
			case dir == "planner" && local == "worker", dir == "worker" && local == "planner":
				broken = "planner and worker never import each other"
			case strings.HasPrefix(local, "internal/testbed") && !inTestbed && dir != "bench":
				broken = "only tests and bench/ import the test rigs"
			}
			if broken != "" {
				t.Errorf("%s imports %s: %s", dir, im, broken)
			}
		}
	}
}

// TestOneConstructorEach: outside tests, the planner and the worker are built in exactly
// one place each (cmd/snapfleet/wire.go).
func TestOneConstructorEach(t *testing.T) {
	t.Parallel()
	for _, lit := range []string{"planner.Planner{", "worker.Worker{"} {
		var at []string
		err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for range strings.Count(string(b), "&"+lit) {
				at = append(at, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(at) != 1 || filepath.Base(at[0]) != "wire.go" {
			t.Errorf("&%s} is built in %v, want once, in cmd/snapfleet/wire.go", lit, at)
		}
	}
}
