// Package testenv lets a test say what it needs from the machine, so that a
// laptop without it skips the test and CI, which must run everything, fails
// it instead of passing over it in silence.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI: CI is set (CI=true there), and
// not to "false" or "0".
func InCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "", "false", "0":
		return false
	}
	return true
}

// Require lets t go on when err is nil. Otherwise this machine lacks what t
// needs: capability names it, err says why. t is skipped, or fails when run
// in CI. make test lists every skip at its end.
func Require(t testing.TB, capability string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("needs %s, which CI must provide: %v", capability, err)
		return
	}
	t.Skipf("needs %s: %v", capability, err)
}

// Command is nil when name is on PATH; else it says how to install it.
func Command(name, install string) error {
	if _, err := exec.LookPath(name); err != nil {
		return fmt.Errorf("%s is not on PATH (%s)", name, install)
	}
	return nil
}

// Busybox is Command for busybox, which the Tekton examples' sh and ash
// stand for locally.
func Busybox() error { return Command("busybox", "make deps installs busybox-static") }

// Env is nil when the variable is set; else it says who sets it.
func Env(name, setBy string) error {
	if os.Getenv(name) == "" {
		return fmt.Errorf("%s is not set (%s sets it)", name, setBy)
	}
	return nil
}

// Root is nil when the test runs as root (uid 0 of its user namespace).
func Root(why string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root (uid %d): %s", os.Geteuid(), why)
	}
	return nil
}
