package stepexec

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProcessLifecycle: how a step ends is told the same way for both
// launchers: exit code, signal, OOM kill (the cgroup's counter grew),
// Stop's SIGTERM then SIGKILL after the grace, the exit code file, and no
// child left behind.
func TestProcessLifecycle(t *testing.T) {
	for _, c := range []struct {
		name   string
		script string
		stop   time.Duration // Stop with this grace once started; 0: no stop
		code   int
		reason string
		out    string
	}{
		{name: "exit code", script: "echo out; exit 3", code: 3, out: "out\n"},
		{name: "signal", script: "kill -TERM $$; sleep 5", code: 143, reason: "SIGTERM"},
		{name: "oom", script: `echo "oom_kill 1" > "$CG/memory.events"; kill -KILL $$`, code: 137, reason: OOMKilled},
		{name: "stopped", script: "sleep 30", stop: time.Second, code: 143, reason: "SIGTERM"},
		{name: "stop ignored", script: "trap '' TERM; echo ready; while :; do sleep 0.05; done", stop: 300 * time.Millisecond, code: 137, reason: "SIGKILL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cg := filepath.Join(dir, "cgroup")
			if err := os.MkdirAll(cg, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cg, "memory.events"), []byte("oom 0\noom_kill 0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			code := filepath.Join(dir, "steps", "exitCode")
			p, err := Launch(Spec{Argv: []string{"/bin/sh", "-c", c.script}, Env: []string{"CG=" + cg, "PATH=" + os.Getenv("PATH")},
				Dir: dir, Stdout: &out, Stderr: &out, ExitCodePath: code, Cgroup: cg})
			if err != nil {
				t.Fatal(err)
			}
			if c.stop > 0 {
				time.Sleep(200 * time.Millisecond)
				p.Stop(c.stop)
			}
			ex := p.Wait()
			if ex.Err != nil || ex.Code != c.code || ex.Reason != c.reason {
				t.Errorf("exit %d %q %v, want %d %q", ex.Code, ex.Reason, ex.Err, c.code, c.reason)
			}
			if c.out != "" && out.String() != c.out {
				t.Errorf("output %q, want %q", out.String(), c.out)
			}
			if b, err := os.ReadFile(code); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(c.code) {
				t.Errorf("exit code file %q, %v", b, err)
			}
			if !ex.Finished.After(ex.Started) {
				t.Errorf("started %v, finished %v", ex.Started, ex.Finished)
			}
		})
	}
}

// TestProcessGroupEnds: a background child of the step ends with it, as a
// container's processes end with its main one.
func TestProcessGroupEnds(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p, err := Launch(Spec{Argv: []string{"/bin/sh", "-c", `sleep 60 & echo $! > "$0"`, pidFile}})
	if err != nil {
		t.Fatal(err)
	}
	if ex := p.Wait(); ex.Code != 0 || ex.Err != nil {
		t.Fatalf("exit %d, %v", ex.Code, ex.Err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	proc := "/proc/" + strings.TrimSpace(string(b))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := os.ReadFile(proc + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			return // gone, or a zombie waiting for its parent
		}
		if time.Now().After(deadline) {
			t.Fatalf("the step's background child %s still runs", proc)
		}
	}
}
