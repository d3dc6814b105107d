// Package testfs gives tests a real file system that fills up: a tmpfs of
// a chosen size, so that ENOSPC comes from the kernel as it would on a full
// disk, never from a stand-in.
package testfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// MountTmpfs mounts a tmpfs of size (mount(8)'s notation: "256k", "2m") at
// a new folder and returns its path; it is unmounted when the test ends.
// It needs root and mount(8): without them the test is skipped, with the
// reason, or fails when the CI environment variable is "true", where
// .ci/run runs the tests as root and a skip would hide a missing check.
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		unavailable(t, "filling a real file system needs root to mount a tmpfs")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		unavailable(t, "cannot mount a tmpfs here: "+err.Error()+" "+string(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why + " (CI=true: this check must run)")
	}
	t.Skip(why)
}
