package stepper

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/e7763abc/pod-runner/internal/hermetic"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

// deniedHelper makes the test binary try a hermetic step in a user
// namespace that forbids namespaces below it, and print the error.
const deniedHelper = "STEPPER_TEST_HERMETIC_DENIED"

// cannotLimit is the exit code of a helper that cannot lower its user
// namespace's limits (a read-only /proc/sys): the test skips.
const cannotLimit = 4

func TestMain(m *testing.M) {
	if os.Getenv(deniedHelper) == "1" {
		os.Exit(startDenied())
	}
	os.Exit(m.Run())
}

func startDenied() int {
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0o644); err != nil {
		// A container mounts /proc/sys read-only.
		fmt.Fprintln(os.Stderr, err)
		return cannotLimit
	}
	s := &server{opts: Options{Env: []string{"PATH=/usr/bin:/bin"}, ScriptDir: os.TempDir()}}
	defer s.cleanup()
	p, err := s.start(&steppb.Run{Seq: 1, Hermetic: true, Script: "#!/bin/sh\necho ran with network\n"})
	if err == nil {
		<-p.done
		fmt.Println("started")
		return 0
	}
	fmt.Print(err)
	return 0
}

// tcpListener accepts TCP connections on every address of this host; addrs are
// its loopback address and, when the host has one, another of its own.
func tcpListener(t *testing.T) (addrs []string) {
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
	port := ln.Addr().(*net.TCPAddr).Port
	addrs = []string{"127.0.0.1:" + strconv.Itoa(port)}
	ifAddrs, _ := net.InterfaceAddrs()
	for _, a := range ifAddrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return append(addrs, n.IP.String()+":"+strconv.Itoa(port))
		}
	}
	return addrs
}

// A hermetic Run reaches no TCP listener of the host and sees only lo,
// down; the same step without it reaches them all.
func TestHermeticRunHasNoNetwork(t *testing.T) {
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox is not installed (make deps installs busybox-static)")
	}
	if err := hermetic.Check(); err != nil {
		t.Skipf("this machine cannot run hermetic steps: %v", err)
	}
	addrs := tcpListener(t)
	var script strings.Builder
	script.WriteString("#!/bin/sh\nid -u\n")
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		fmt.Fprintf(&script, "if busybox nc -w 2 %s %s </dev/null; then echo %s reached; else echo %s unreachable; fi\n", host, port, a, a)
	}
	// Interfaces of the step's network namespace (not /sys/class/net, which
	// shows the namespace sysfs was mounted in); "<LOOPBACK>" without UP is
	// a loopback that is down.
	script.WriteString("busybox ip -o link | cut -d: -f2,3 | tr -d ' '\n")
	for _, tc := range []struct {
		name     string
		hermetic bool
	}{{"open", false}, {"hermetic", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := start(t, true)
			f.accept()
			ex := f.run(&steppb.Run{Seq: 1, Script: script.String(), Hermetic: tc.hermetic})
			out := s.stdout.String()
			if ex.GetExitCode() != 0 || ex.GetError() != "" {
				t.Fatalf("exited = %v\nstdout: %s\nstderr: %s", ex, out, s.stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if lines[0] != strconv.Itoa(os.Geteuid()) {
				t.Errorf("id -u = %s, want %d (ids are kept)", lines[0], os.Geteuid())
			}
			for _, a := range addrs {
				want := a + " reached"
				if tc.hermetic {
					want = a + " unreachable"
				}
				if !strings.Contains(out, want+"\n") {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			links := lines[1+len(addrs):]
			if tc.hermetic {
				if len(links) != 1 || !strings.HasPrefix(links[0], "lo:<LOOPBACK>") {
					t.Errorf("links = %q, want only lo, down", links)
				}
			} else if len(addrs) > 1 && len(links) < 2 {
				t.Errorf("links = %q: the open step lost the host's interfaces", links)
			}
		})
	}
}

// Where the namespaces are refused, the step is not run and Exited.error
// says what is missing. The refusal is real: the helper is root of a user
// namespace that forbids namespaces below it.
func TestHermeticRunRefused(t *testing.T) {
	if err := hermetic.Check(); err != nil {
		t.Skipf("this machine cannot make user namespaces at all: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("the helper must be root of its namespace to lower its limits")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), deniedHelper+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	hermetic.Isolate(cmd.SysProcAttr)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == cannotLimit {
		t.Skipf("cannot lower user.max_user_namespaces here: %s", out)
	}
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"hermetic task: cannot create the step's user and network namespaces", "user.max_user_namespaces is 0", "the step was not run"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error %q\nlacks %q", out, want)
		}
	}
	if strings.Contains(string(out), "ran with network") || strings.Contains(string(out), "started") {
		t.Errorf("the step ran: %s", out)
	}
}
