package process

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/internal/syncbuf"
	"github.com/e7763abc/pod-runner/internal/testenv"
)

func TestExitCodes(t *testing.T) {
	l := newPrepared(t, Options{})
	att := startTask(t, l, "t", nil)
	cases := []struct {
		name     string
		step     *supervisor.Step
		code     int
		reason   string
		errMatch string // non-empty: StepExit.Err must contain it
	}{
		{name: "zero", step: script("t", "zero", "exit 0"), code: 0},
		{name: "three", step: script("t", "three", "exit 3"), code: 3},
		{name: "command", step: &supervisor.Step{Task: "t", Name: "command", Command: []string{"sh", "-c", "exit 7"}}, code: 7},
		{name: "false", step: &supervisor.Step{Task: "t", Name: "false", Command: []string{"false"}}, code: 1},
		{name: "killed", step: script("t", "killed", "kill -9 $$"), code: 137, reason: "SIGKILL"},
		{name: "terminated", step: script("t", "terminated", "kill -TERM $$"), code: 143, reason: "SIGTERM"},
		{name: "not-found", step: &supervisor.Step{Task: "t", Name: "not-found", Command: []string{"no-such-command-here"}}, errMatch: `"no-such-command-here" not found`},
		{name: "no-command", step: &supervisor.Step{Task: "t", Name: "no-command", Image: "alpine", Args: []string{"x"}}, errMatch: "only known in pod mode"},
		{name: "windows", step: &supervisor.Step{Task: "t", Name: "windows", Script: "#!win pwsh.exe\nls"}, errMatch: "#!win"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := runStep(t, att, c.step)
			if c.errMatch != "" {
				if e.Err == nil || !strings.Contains(e.Err.Error(), c.errMatch) {
					t.Fatalf("Err = %v, want it to mention %q", e.Err, c.errMatch)
				}
				return
			}
			if e.Err != nil {
				t.Fatalf("Err = %v", e.Err)
			}
			if e.ExitCode != c.code || e.Reason != c.reason {
				t.Errorf("exit = %d %q, want %d %q", e.ExitCode, e.Reason, c.code, c.reason)
			}
			if e.Started.IsZero() || e.Finished.Before(e.Started) {
				t.Errorf("times: started %v finished %v", e.Started, e.Finished)
			}
			// Tekton's entrypoint writes the exit code for $(steps.step-X.exitCode.path).
			if got := readString(t, filepath.Join(att.StepDir(c.step.Name), "exitCode")); got != fmt.Sprint(c.code) {
				t.Errorf("exitCode file = %q, want %d", got, c.code)
			}
		})
	}
}

func TestScripts(t *testing.T) {
	l := newPrepared(t, Options{})
	att := startTask(t, l, "t", nil)
	cases := []struct {
		name   string
		script string
		args   []string
		needs  string // a command the script needs in PATH
		code   int
		output string
	}{
		{name: "shebang", script: "#!/bin/sh\necho hello", code: 0, output: "hello\n"},
		// Tekton's default for a script without "#!": sh with set -e.
		{name: "no-shebang-set-e", script: "echo before\nfalse\necho after", code: 1, output: "before\n"},
		{name: "args-after-script", script: "#!/bin/sh\necho \"$#:$1:$2\"", args: []string{"a b", "c"}, output: "2:a b:c\n"},
		{name: "python", script: "#!/usr/bin/env python3\nimport sys\nprint('py', sys.argv[1])", args: []string{"arg"}, needs: "python3", output: "py arg\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needs != "" {
				testenv.Require(t, c.needs, testenv.Command(c.needs, "a Debian package"))
			}
			out := filepath.Join(t.TempDir(), "out")
			e := runStep(t, att, &supervisor.Step{Task: "t", Name: c.name, Script: c.script, Args: c.args, StdoutPath: out})
			if e.Err != nil || e.ExitCode != c.code {
				t.Fatalf("exit = %d, %v; want %d", e.ExitCode, e.Err, c.code)
			}
			if got := readString(t, out); got != c.output {
				t.Errorf("output = %q, want %q", got, c.output)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("POD_RUNNER_TEST_HOST_ONLY", "leak")
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "only-in-step-path"), []byte("#!/bin/sh\necho found-it\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	hostPath := os.Getenv("PATH")
	cases := []struct {
		name    string
		base    []string
		step    *supervisor.Step
		want    []string // lines of output
		wantErr string
	}{
		{
			name: "step wins over base",
			base: []string{"PATH=" + hostPath, "A=base", "B=base"},
			step: &supervisor.Step{Command: []string{"sh", "-c", `echo "$A $B"`}, Env: []string{"B=step"}},
			want: []string{"base step"},
		},
		{
			name: "host env not inherited",
			step: &supervisor.Step{Command: []string{"sh", "-c", `echo "[${POD_RUNNER_TEST_HOST_ONLY:-unset}]"`}},
			want: []string{"[unset]"},
		},
		{
			name: "HOME is the run's",
			step: &supervisor.Step{Command: []string{"sh", "-c", `echo "$HOME"`}},
			want: []string{"RUNDIR/home"},
		},
		{
			name: "base HOME kept",
			base: []string{"PATH=" + hostPath, "HOME=/nowhere"},
			step: &supervisor.Step{Command: []string{"sh", "-c", `echo "$HOME"`}},
			want: []string{"/nowhere"},
		},
		{
			name: "command found in step PATH",
			step: &supervisor.Step{Command: []string{"only-in-step-path"}, Env: []string{"PATH=" + bin + ":" + hostPath}},
			want: []string{"found-it"},
		},
		{
			name:    "command not in base PATH",
			step:    &supervisor.Step{Command: []string{"only-in-step-path"}},
			wantErr: "not found in PATH",
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newPrepared(t, Options{Env: c.base})
			att := startTask(t, l, "t", nil)
			out := filepath.Join(t.TempDir(), "out")
			c.step.Task, c.step.Name, c.step.StdoutPath = "t", fmt.Sprint("s", i), out
			e := runStep(t, att, c.step)
			if c.wantErr != "" {
				if e.Err == nil || !strings.Contains(e.Err.Error(), c.wantErr) {
					t.Fatalf("Err = %v, want %q", e.Err, c.wantErr)
				}
				return
			}
			if e.Err != nil || e.ExitCode != 0 {
				t.Fatalf("exit = %d, %v", e.ExitCode, e.Err)
			}
			want := strings.ReplaceAll(strings.Join(c.want, "\n"), "RUNDIR", l.RunDir())
			if got := strings.TrimSuffix(readString(t, out), "\n"); got != want {
				t.Errorf("output = %q, want %q", got, want)
			}
		})
	}
}

func TestWorkingDir(t *testing.T) {
	l := newPrepared(t, Options{})
	att := startTask(t, l, "t", nil)
	ws := filepath.Join(l.RunDir(), "tasks", "t", "0", "workspace")
	abs := filepath.Join(t.TempDir(), "made", "by", "runtime")
	cases := []struct {
		name, workingDir, want string
	}{
		{name: "default", workingDir: "", want: ws},
		{name: "relative", workingDir: "src/app", want: filepath.Join(ws, "src", "app")},
		{name: "absolute missing", workingDir: abs, want: abs},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			e := runStep(t, att, &supervisor.Step{Task: "t", Name: fmt.Sprint("s", i), Command: []string{"pwd", "-P"}, WorkingDir: c.workingDir, StdoutPath: out})
			if e.Err != nil || e.ExitCode != 0 {
				t.Fatalf("exit = %d, %v", e.ExitCode, e.Err)
			}
			if got, want := strings.TrimSpace(readString(t, out)), realPath(t, c.want); got != want {
				t.Errorf("working dir = %q, want %q", got, want)
			}
		})
	}
}

func TestResults(t *testing.T) {
	l := newPrepared(t, Options{})
	att := startTask(t, l, "t", []string{"make"})
	s := script("t", "make", `printf 'v1' > "$R/one"; printf 'a\nb\n' > "$R/two"; printf 'sv' > "$S/results/out"`)
	s.Env = []string{"R=" + att.ResultsDir(), "S=" + att.StepDir("make")}
	if e := runStep(t, att, s); e.Err != nil || e.ExitCode != 0 {
		t.Fatalf("exit = %d, %v", e.ExitCode, e.Err)
	}
	cases := []struct {
		step, name, want string
		ok               bool
	}{
		{name: "one", want: "v1", ok: true},
		{name: "two", want: "a\nb\n", ok: true},
		{name: "missing"},
		{step: "make", name: "out", want: "sv", ok: true},
		{step: "make", name: "missing"},
		{step: "other", name: "out"},
	}
	for _, c := range cases {
		var got string
		var ok bool
		var err error
		if c.step == "" {
			got, ok, err = att.ReadResult(c.name)
		} else {
			got, ok, err = att.ReadStepResult(c.step, c.name)
		}
		if err != nil || ok != c.ok || got != c.want {
			t.Errorf("read %s/%s = %q, %v, %v; want %q, %v", c.step, c.name, got, ok, err, c.want, c.ok)
		}
	}
	if _, _, err := att.ReadResult("../escape"); err == nil {
		t.Error("ReadResult(../escape) succeeded")
	}
}

func TestOutputConfigAndLog(t *testing.T) {
	log := &syncbuf.Buffer{}
	l := newPrepared(t, Options{Log: log})
	att := startTask(t, l, "t", nil)
	errFile := filepath.Join(t.TempDir(), "deep", "err.txt")
	if err := os.MkdirAll(filepath.Dir(errFile), 0o755); err != nil {
		t.Fatal(err)
	}
	// Tekton appends to an existing stdoutConfig/stderrConfig file.
	if err := os.WriteFile(errFile, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := script("t", "s", "echo out1; echo err1 >&2; printf 'partial'")
	s.StdoutPath = "logs/out.txt" // relative to the working dir
	s.StderrPath = errFile
	if e := runStep(t, att, s); e.Err != nil || e.ExitCode != 0 {
		t.Fatalf("exit = %d, %v", e.ExitCode, e.Err)
	}
	if got := readString(t, filepath.Join(att.(*attempt).workspaceDir(), "logs", "out.txt")); got != "out1\npartial" {
		t.Errorf("stdout copy = %q", got)
	}
	if got := readString(t, errFile); got != "old\nerr1\n" {
		t.Errorf("stderr copy = %q", got)
	}
	lines := logLines(log.String())
	slices.Sort(lines)
	if want := []string{"[t/s] err1", "[t/s] out1", "[t/s] partial"}; !slices.Equal(lines, want) {
		t.Errorf("log lines = %q, want %q", lines, want)
	}
}

// Two steps of parallel tasks write lines in pieces; the log must hold only
// whole, correctly prefixed lines.
func TestConcurrentOutputDoesNotInterleave(t *testing.T) {
	log := &syncbuf.Buffer{}
	l := newPrepared(t, Options{Log: log})
	const n = 400
	body := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do printf 'first-half-'; printf 'second-half\n'; i=$((i+1)); done; printf 'tail'`, n)
	done := make(chan supervisor.StepExit, 2)
	for _, task := range []string{"a", "b"} {
		att := startTask(t, l, task, nil)
		go func() { done <- runStep(t, att, script(task, "s", body)) }()
	}
	for range 2 {
		if e := <-done; e.Err != nil || e.ExitCode != 0 {
			t.Fatalf("exit = %d, %v", e.ExitCode, e.Err)
		}
	}
	count := map[string]int{}
	for _, line := range logLines(log.String()) {
		count[line]++
	}
	want := map[string]int{
		"[a/s] first-half-second-half": n, "[b/s] first-half-second-half": n,
		"[a/s] tail": 1, "[b/s] tail": 1,
	}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("log lines = %v, want %v", count, want)
	}
}

func TestLineWriterSplitsLongLines(t *testing.T) {
	var buf syncbuf.Buffer
	w := &lineWriter{out: &lockedWriter{w: &buf}, prefix: "> "}
	long := strings.Repeat("x", maxLine+10)
	if _, err := w.Write([]byte("a\nb")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("c\n" + long)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(buf.String(), long+"\n") {
		t.Error("a line longer than maxLine was held back")
	}
	w.Flush()
	want := "> a\n> bc\n> " + long + "\n"
	if got := buf.String(); got != want {
		t.Errorf("got %d bytes %q..., want %d bytes", len(got), got[:min(len(got), 20)], len(want))
	}
}

// Scripts written and started from many goroutines at once: a script file
// can be briefly held open by a process another goroutine forks, and exec
// then fails with "text file busy" unless RunStep retries.
func TestManyConcurrentScripts(t *testing.T) {
	l := newPrepared(t, Options{})
	const tasks, steps = 8, 15
	errs := make(chan error, tasks*steps)
	for i := range tasks {
		att := startTask(t, l, fmt.Sprint("t", i), nil)
		go func() {
			for j := range steps {
				e := att.RunStep(context.Background(), script(fmt.Sprint("t", i), fmt.Sprint("s", j), "exit 0"))
				if e.Err == nil && e.ExitCode != 0 {
					e.Err = fmt.Errorf("exit code %d", e.ExitCode)
				}
				errs <- e.Err
			}
		}()
	}
	for range tasks * steps {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestShell: with Options.Shell, sh and ash in shebangs, commands and PATH
// run that shell; busybox's ash accepts what alpine-based steps write.
func TestShell(t *testing.T) {
	testenv.Require(t, "busybox", testenv.Busybox())
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	l := newPrepared(t, Options{Shell: busybox})
	att := startTask(t, l, "t", nil)
	steps := []*supervisor.Step{
		{Task: "t", Name: "shebang", Script: "#!/bin/sh -e\n[ a == a ]"},
		{Task: "t", Name: "ash", Script: "#!/usr/bin/env ash\n[ a == a ]"},
		{Task: "t", Name: "command", Command: []string{"/bin/sh", "-c"}, Args: []string{"[ a == a ]"}},
		{Task: "t", Name: "path", Command: []string{"sh", "-c", "[ a == a ]"}},
	}
	for _, s := range steps {
		if e := runStep(t, att, s); e.Err != nil || e.ExitCode != 0 {
			t.Errorf("%s: exit %d, %v", s.Name, e.ExitCode, e.Err)
		}
	}
}
