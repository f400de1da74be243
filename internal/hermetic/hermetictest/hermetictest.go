// Package hermetictest is what the tests of hermetic steps share: a TCP
// listener on every address of the host, and a real refusal of user
// namespaces to check the message a refused step gets.
package hermetictest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/e7763abc/pod-runner/internal/hermetic"
	"github.com/e7763abc/pod-runner/internal/testenv"
)

// Listener accepts TCP connections on every address of this host; addrs
// are "ip:port" of its loopback address and, when the host has one, another
// of its own.
func Listener(t *testing.T) (addrs []string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	addrs = []string{net.JoinHostPort("127.0.0.1", port)}
	ifAddrs, _ := net.InterfaceAddrs()
	for _, a := range ifAddrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return append(addrs, net.JoinHostPort(n.IP.String(), port))
		}
	}
	return addrs
}

// CannotLimit is the exit code of a helper that cannot lower its user
// namespace's limits (a container mounts /proc/sys read-only): the test
// skips.
const CannotLimit = 4

// DenyNested, in a helper that is root of its own user namespace, forbids
// user namespaces below it (user.max_user_namespaces=0), so that a hermetic
// step it then starts is refused for real. It exits CannotLimit when it
// cannot.
func DenyNested() {
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(CannotLimit)
	}
}

// RunDenied runs the test binary in hermetic's namespaces, as root of its
// own user namespace, with env (the test's TestMain turns it into the
// helper, which calls DenyNested first), and returns its combined output. It
// skips where user namespaces cannot be made or limited at all.
func RunDenied(t *testing.T, env string) string {
	t.Helper()
	testenv.Require(t, "user namespaces for hermetic steps", hermetic.Check())
	testenv.Require(t, "root", testenv.Root("the helper must be root of its namespace to lower its limits"))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	hermetic.Isolate(cmd.SysProcAttr)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == CannotLimit {
		testenv.Require(t, "a writable user.max_user_namespaces", fmt.Errorf("%s", out))
	}
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return string(out)
}
