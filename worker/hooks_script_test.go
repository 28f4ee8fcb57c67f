package worker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// frozenFS loop-mounts a fresh ext4 filesystem for t and returns its mount point. The
// default hooks are tested for real: the machine must allow it (root, loop devices, the
// tools of e2fsprogs and util-linux, which scripts/ensure-tools.sh installs), else the
// test fails with the reason.
func frozenFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the default hook scripts are tested on a loop-mounted filesystem, which needs root (CI runs as root)")
	}
	for _, tool := range []string{"mkfs.ext4", "losetup", "mount", "umount", "fsfreeze", "setsid", "lsblk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: run scripts/ensure-tools.sh (e2fsprogs, util-linux)", tool)
		}
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(16 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run("mkfs.ext4", "-q", "-F", img)
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("this machine does not allow loop devices (mount -o loop: %v: %s); the default hooks cannot be tested here", err, out)
	}
	t.Cleanup(func() {
		// Thawed, a blocked write returns; the unmount waits for it (a lazy one at last),
		// and the loop device goes with it.
		_ = exec.Command("fsfreeze", "-u", mnt).Run()
		for i := 0; exec.Command("umount", mnt).Run() != nil; i++ {
			if i == 50 {
				_ = exec.Command("umount", "-l", mnt).Run()
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return mnt
}

// script writes one of the embedded scripts to a file and returns a command running it
// with env.
func script(t *testing.T, body string, env ...string) *exec.Cmd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", path)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// write starts a write to dir and returns a channel closed when it has returned.
func write(t *testing.T, dir string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		done <- os.WriteFile(filepath.Join(dir, "w"+strconv.FormatInt(time.Now().UnixNano(), 10)), []byte("x"), 0o644)
	}()
	return done
}

// blocked checks that the write has not returned after a while: the filesystem is frozen.
func blocked(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("a write returned (%v) while the filesystem should be frozen", err)
	case <-time.After(300 * time.Millisecond):
	}
}

// returns waits for the write to return, within limit.
func returns(t *testing.T, done <-chan error, limit time.Duration, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	case <-time.After(limit):
		t.Fatalf("the write still blocks %s after %s", what, limit)
	}
}

// alive reports whether process pid runs (a zombie that init has not reaped does not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// TestDefaultHooksWatchdog: freeze.sh freezes the data filesystem — a write blocks —
// and its watchdog thaws it after max_freeze without the post script.
func TestDefaultHooksWatchdog(t *testing.T) {
	t.Parallel()
	mnt := frozenFS(t)
	state := t.TempDir()
	env := []string{"SNAPFLEET_MOUNTS=" + mnt, "SNAPFLEET_MAX_FREEZE=1", "SNAPFLEET_STATE=" + state}
	if out, err := script(t, freezeScript, env...).CombinedOutput(); err != nil {
		t.Fatalf("freeze.sh: %v: %s", err, out)
	}
	done := write(t, mnt)
	blocked(t, done)
	returns(t, done, 30*time.Second, "without the post script: the watchdog did not thaw it")
}

// TestDefaultHooksThaw: thaw.sh thaws at once and disarms the watchdog; the root
// filesystem is never frozen.
func TestDefaultHooksThaw(t *testing.T) {
	t.Parallel()
	mnt := frozenFS(t)
	state := t.TempDir()
	env := []string{"SNAPFLEET_MOUNTS=" + mnt, "SNAPFLEET_MAX_FREEZE=600", "SNAPFLEET_STATE=" + state}
	if out, err := script(t, freezeScript, env...).CombinedOutput(); err != nil {
		t.Fatalf("freeze.sh: %v: %s", err, out)
	}
	pid, err := os.ReadFile(filepath.Join(state, "watchdog"))
	if err != nil {
		t.Fatalf("no watchdog armed: %v", err)
	}
	done := write(t, mnt)
	blocked(t, done)
	if out, err := script(t, thawScript, env...).CombinedOutput(); err != nil {
		t.Fatalf("thaw.sh: %v: %s", err, out)
	}
	returns(t, done, 10*time.Second, "after thaw.sh")
	n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for alive(n) {
		if ctx.Err() != nil {
			t.Fatalf("the watchdog %d still runs after thaw.sh", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// thaw.sh again (a retried post) is fine.
	if out, err := script(t, thawScript, env...).CombinedOutput(); err != nil {
		t.Fatalf("thaw.sh again: %v: %s", err, out)
	}

	// The root filesystem is never frozen, even when asked.
	out, err := script(t, freezeScript, "SNAPFLEET_MOUNTS=/", "SNAPFLEET_MAX_FREEZE=1", "SNAPFLEET_STATE="+t.TempDir()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no data filesystem") {
		t.Fatalf("freeze.sh of /: %v: %s", err, out)
	}
}
