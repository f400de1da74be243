package process

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/e7763abc/pod-runner/internal/hermetic"
	"github.com/e7763abc/pod-runner/internal/hermetic/hermetictest"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// deniedHelper makes the test binary (TestMain) run a hermetic step in a
// user namespace that forbids namespaces below it, and print StepExit.Err.
const deniedHelper = "PROCESS_TEST_HERMETIC_DENIED"

func runDeniedHelper() int {
	hermetictest.DenyNested()
	dir, err := os.MkdirTemp("", "hermetic-denied-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	defer os.RemoveAll(dir)
	l := New(Options{Dir: dir, StateDir: dir, Log: os.Stdout})
	ctx := context.Background()
	if err := l.Prepare(ctx, &planpb.Plan{Name: "run"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	defer l.Close()
	att, err := l.StartAttempt(ctx, &planpb.Task{Name: "t", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s"}}}}, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	defer att.Finish()
	e := att.RunStep(ctx, &supervisor.Step{Task: "t", Name: "s", Hermetic: true, Script: "#!/bin/sh\necho ran with network\n"})
	fmt.Printf("exit %d, err: %v\n", e.ExitCode, e.Err)
	return 0
}

// A hermetic step reaches no TCP listener of the host and sees only lo,
// down, while an open step of the same run reaches them. As root its
// workspaces are mounted too, by the mount wrapper inside its user
// namespace: also from a nosuid,nodev,noexec file system, whose flags a
// user namespace may not clear.
func TestHermeticStep(t *testing.T) {
	testenv.Require(t, "busybox", testenv.Busybox())
	testenv.Require(t, "user namespaces for hermetic steps", hermetic.Check())
	addrs := hermetictest.Listener(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, fs := range []string{"", "tmpfs"} {
		t.Run("volumes on "+fs, func(t *testing.T) {
			dir := t.TempDir()
			if fs == "tmpfs" {
				testenv.Require(t, "root", testenv.Root("mounting a tmpfs needs root"))
				if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
					testenv.Require(t, "mounting a tmpfs", err)
				}
				t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
			}
			hermeticStep(t, Options{Self: self, Dir: dir}, addrs, fs == "tmpfs")
		})
	}
}

func hermeticStep(t *testing.T, opts Options, addrs []string, nosuid bool) {
	l := newPrepared(t, opts, &planpb.Volume{Name: "data", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}})
	task := &planpb.Task{
		Name: "t",
		Spec: &planpb.TaskSpec{
			Steps:      []*planpb.Step{{Name: "s"}},
			Workspaces: []*planpb.WorkspaceDeclaration{{Name: "ro", ReadOnly: true}, {Name: "rw"}},
		},
		Workspaces: []*planpb.WorkspaceBinding{{Name: "ro", Volume: "data"}, {Name: "rw", Volume: "data", SubPath: "sub"}},
	}
	att, err := l.StartAttempt(context.Background(), task, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(att.Finish)
	ro, _ := att.Workspace("ro")
	rw, _ := att.Workspace("rw")

	type check struct {
		name, script string
		// ok: the script succeeds in an open step; in a hermetic one it
		// succeeds when okHermetic.
		ok, okHermetic bool
	}
	var checks []check
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		checks = append(checks, check{"connect to " + a, "busybox nc -w 2 " + host + " " + port + " </dev/null", true, false})
	}
	checks = append(checks,
		check{"only lo, down", `[ "$(busybox ip -o link | cut -d' ' -f2,3)" = "lo: <LOOPBACK>" ]`, false, true},
		check{"ids kept", `[ "$(id -u):$(id -g)" = "` + fmt.Sprintf("%d:%d", os.Geteuid(), os.Getegid()) + `" ]`, true, true},
		check{"writes its rw workspace", "echo x > " + rw + "/file", true, true},
		check{"reads it through ro", "cat " + ro + "/sub/file", true, true},
	)
	if os.Geteuid() == 0 {
		checks = append(checks, check{"cannot write ro", "echo x > " + ro + "/other", false, false})
	}
	if nosuid {
		checks = append(checks, check{"ro keeps nosuid", `grep " ` + ro + ` " /proc/self/mountinfo | grep -q "ro,nosuid,nodev,noexec"`, true, true})
	}
	for _, hermeticStep := range []bool{false, true} {
		for i, c := range checks {
			name := fmt.Sprintf("h%v-%d", hermeticStep, i)
			e := runStep(t, att, &supervisor.Step{Task: "t", Name: name, Hermetic: hermeticStep, Script: "#!/bin/sh\n" + c.script})
			want := c.ok
			if hermeticStep {
				want = c.okHermetic
			}
			if e.Err != nil || (e.ExitCode == 0) != want {
				t.Errorf("hermetic %v, %s: exit %d, %v; want success %v", hermeticStep, c.name, e.ExitCode, e.Err, want)
			}
		}
	}
}

// Where the namespaces are refused, the step is not run and its error says
// what is missing. The refusal is real: the helper is root of a user
// namespace that forbids namespaces below it.
func TestHermeticStepRefused(t *testing.T) {
	out := hermetictest.RunDenied(t, deniedHelper+"=1")
	for _, want := range []string{"err: hermetic task: cannot create the step's user and network namespaces", "user.max_user_namespaces is 0", "the step was not run"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q\nlacks %q", out, want)
		}
	}
	if strings.Contains(out, "ran with network") {
		t.Errorf("the step ran: %s", out)
	}
}
