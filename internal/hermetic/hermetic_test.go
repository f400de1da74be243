package hermetic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/testenv"
)

// helperEnv makes the test binary a helper process: what it does is the
// variable's value.
const helperEnv = "HERMETIC_TEST_HELPER"

// cannotLimit is the exit code of a helper that cannot lower its user
// namespace's limits (a read-only /proc/sys): the test skips.
const cannotLimit = 4

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "probe":
		probe(os.Args[1:])
	case "deny-nested":
		denyNested()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(3)
	}
	os.Exit(0)
}

// probed is what a helper process saw of its network and ids.
type probed struct {
	UID, GID   int
	Interfaces []string        // "NAME" or "NAME(up)"
	Reached    map[string]bool // address → connected
}

// probe prints what this process sees: its ids, its interfaces and
// whether each address in addrs accepts a TCP connection.
func probe(addrs []string) {
	p := probed{UID: os.Getuid(), GID: os.Getgid(), Reached: map[string]bool{}}
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for _, i := range ifs {
		name := i.Name
		if i.Flags&net.FlagUp != 0 {
			name += "(up)"
		}
		p.Interfaces = append(p.Interfaces, name)
	}
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err == nil {
			c.Close()
		}
		p.Reached[a] = err == nil
	}
	_ = json.NewEncoder(os.Stdout).Encode(p)
}

// denyNested forbids user namespaces below this one (it runs as root of
// its own), then says what Check makes of it.
func denyNested() {
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0o644); err != nil {
		// A container mounts /proc/sys read-only.
		fmt.Fprintln(os.Stderr, err)
		os.Exit(cannotLimit)
	}
	err := Check()
	var he *Error
	if !errors.As(err, &he) {
		fmt.Fprintf(os.Stderr, "Check = %v, want an *Error\n", err)
		os.Exit(3)
	}
	fmt.Print(err.Error())
}

// helper runs the test binary (or bin) as a helper; hermetic puts it in
// Isolate's namespaces, cred runs it as another user.
func helper(t *testing.T, bin, what string, hermetic bool, cred *syscall.Credential, args ...string) (string, error) {
	t.Helper()
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+what)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if hermetic {
		Isolate(cmd.SysProcAttr)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", StartError(err), stderr.String())
	}
	return string(out), nil
}

// listener accepts TCP connections on every address of this host; addrs
// are its loopback address and, when the host has one, another.
func listener(t *testing.T) (addrs []string) {
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
	addrs = []string{fmt.Sprintf("127.0.0.1:%d", port)}
	ifAddrs, _ := net.InterfaceAddrs()
	for _, a := range ifAddrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return append(addrs, fmt.Sprintf("%s:%d", n.IP, port))
		}
	}
	return addrs
}

func TestHermeticProcessHasNoNetwork(t *testing.T) {
	testenv.Require(t, "user namespaces for hermetic steps", Check())
	addrs := listener(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	var bin string
	if os.Geteuid() == 0 {
		bin = copyExecutable(t)
	}
	tests := []struct {
		name     string
		hermetic bool
		cred     *syscall.Credential
	}{
		{name: "open", hermetic: false},
		{name: "hermetic", hermetic: true},
		// Without CAP_SETUID only the process's own ids can be mapped.
		{name: "hermetic unprivileged", hermetic: true, cred: nobody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cred != nil && bin == "" {
				testenv.Require(t, "root", testenv.Root("to run a helper as another user"))
			}
			b := ""
			if tt.cred != nil {
				b = bin
			}
			out, err := helper(t, b, "probe", tt.hermetic, tt.cred, addrs...)
			if err != nil {
				t.Fatal(err)
			}
			var p probed
			if err := json.Unmarshal([]byte(out), &p); err != nil {
				t.Fatalf("%v: %q", err, out)
			}
			wantUID, wantGID := os.Getuid(), os.Getgid()
			if tt.cred != nil {
				wantUID, wantGID = int(tt.cred.Uid), int(tt.cred.Gid)
			}
			if p.UID != wantUID || p.GID != wantGID {
				t.Errorf("ids inside = %d:%d, want %d:%d (kept)", p.UID, p.GID, wantUID, wantGID)
			}
			for _, a := range addrs {
				if p.Reached[a] == tt.hermetic {
					t.Errorf("connect to %s: reached = %v, want %v", a, p.Reached[a], !tt.hermetic)
				}
			}
			if tt.hermetic && !slices.Equal(p.Interfaces, []string{"lo"}) {
				t.Errorf("interfaces = %v, want only lo, down", p.Interfaces)
			}
			if !tt.hermetic && len(p.Interfaces) < 2 && len(addrs) > 1 {
				t.Errorf("interfaces = %v: the open process lost the host's", p.Interfaces)
			}
		})
	}
}

// copyExecutable copies the test binary where any user may run it.
func copyExecutable(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hermetic-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	bin := filepath.Join(dir, "hermetic.test")
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// Where user namespaces are refused, Check and StartError say so, naming
// what stands in the way. The refusal is made real: root of a user
// namespace may forbid namespaces below it (user.max_user_namespaces=0).
func TestRefusedNamespacesAreExplained(t *testing.T) {
	testenv.Require(t, "user namespaces for hermetic steps", Check())
	testenv.Require(t, "root", testenv.Root("the helper must be root of its namespace to lower its limits"))
	out, err := helper(t, "", "deny-nested", true, nil)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == cannotLimit {
		testenv.Require(t, "a writable user.max_user_namespaces", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"hermetic task: cannot create the step's user and network namespaces: no space left on device",
		"user.max_user_namespaces is 0",
		"unprivileged user namespaces",
		"seccomp profile that allows clone/unshare with CLONE_NEWUSER",
		"the step was not run",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("message %q\nlacks %q", out, want)
		}
	}
}

func TestStartErrorKeepsTheStepsOwnErrors(t *testing.T) {
	testenv.Require(t, "user namespaces for hermetic steps", Check())
	// Path, not exec.Command: the exec fails in the child, after the
	// namespaces are made.
	cmd := &exec.Cmd{Path: "/nonexistent/step-program"}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	Isolate(cmd.SysProcAttr)
	err := StartError(cmd.Start())
	var he *Error
	if err == nil || errors.As(err, &he) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("StartError = %v, want the program's not-found error", err)
	}
	if got := StartError(nil); got != nil {
		t.Errorf("StartError(nil) = %v", got)
	}
}
