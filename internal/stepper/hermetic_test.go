package stepper

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/hermetic"
	"github.com/e7763abc/pod-runner/internal/hermetic/hermetictest"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

// deniedHelper makes the test binary try a hermetic step in a user
// namespace that forbids namespaces below it, and print the error.
const deniedHelper = "STEPPER_TEST_HERMETIC_DENIED"

func TestMain(m *testing.M) {
	if os.Getenv(deniedHelper) == "1" {
		os.Exit(startDenied())
	}
	os.Exit(m.Run())
}

func startDenied() int {
	hermetictest.DenyNested()
	s := &server{opts: Options{Env: []string{"PATH=/usr/bin:/bin"}}}
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

// A hermetic Run reaches no TCP listener of the host and sees only lo,
// down; the same step without it reaches them all.
func TestHermeticRunHasNoNetwork(t *testing.T) {
	testenv.Require(t, "busybox", testenv.Busybox())
	testenv.Require(t, "user namespaces for hermetic steps", hermetic.Check())
	addrs := hermetictest.Listener(t)
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
	out := hermetictest.RunDenied(t, deniedHelper+"=1")
	for _, want := range []string{"hermetic task: cannot create the step's user and network namespaces", "user.max_user_namespaces is 0", "the step was not run"} {
		if !strings.Contains(out, want) {
			t.Errorf("error %q\nlacks %q", out, want)
		}
	}
	if strings.Contains(out, "ran with network") || strings.Contains(out, "started") {
		t.Errorf("the step ran: %s", out)
	}
}
