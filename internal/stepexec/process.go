package stepexec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/e7763abc/pod-runner/internal/hermetic"
)

// Spec is one step's process, everything substituted: the one lifecycle
// both launchers run it with (a host process locally, `pod-runner step` in
// a step container), so that the two never drift.
type Spec struct {
	Argv []string
	Env  []string
	Dir  string
	// Stdout and Stderr receive the step's output. An *os.File is handed to
	// the process as it is; any other writer gets a copy, which the end of
	// the step waits for at most WaitDelay.
	Stdout, Stderr io.Writer
	// Hermetic runs the step in new user and network namespaces; when they
	// cannot be made the step does not run (never with the network instead).
	Hermetic bool
	// ExitCodePath, when set, receives the exit code (Tekton's
	// $(steps.step-NAME.exitCode.path)).
	ExitCodePath string
	// Cgroup is the container's cgroup directory, whose OOM-kill counter
	// tells an OOM kill from another SIGKILL; empty: not known (a host
	// process).
	Cgroup string
}

// WaitDelay bounds how long the end of a step waits for the copies of its
// output once its process is gone: a child that left the process group may
// hold the pipe open for ever.
const WaitDelay = 500 * time.Millisecond

// OOMKilled is the reason of a step the kernel's OOM killer ended, as the
// kubelet names it.
const OOMKilled = "OOMKilled"

// Exit is how a step's process ended.
type Exit struct {
	Started, Finished time.Time
	// Code is the exit code; 128+N for signal N.
	Code int
	// Reason is the signal's name or OOMKilled; empty for a normal exit.
	Reason string
	// Err is set when the step's end could not be learned or recorded.
	Err error
}

// Process is a started step: its own process group, so that a stop reaches
// the step's children too, as Tekton's entrypoint does.
type Process struct {
	cmd       *exec.Cmd
	pgid      int
	started   time.Time
	oomBefore int64
	spec      Spec

	mu    sync.Mutex
	timer *time.Timer // SIGKILL after the grace of a Stop
}

// Launch starts the step. A hermetic step whose namespaces cannot be made
// fails with a *hermetic.Error saying what is missing.
func Launch(spec Spec) (*Process, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("the step has no command")
	}
	oomBefore := oomKills(spec.Cgroup)
	cmd, err := Start(func() *exec.Cmd {
		cmd := &exec.Cmd{
			Path: spec.Argv[0], Args: spec.Argv, Env: spec.Env, Dir: spec.Dir,
			Stdout: spec.Stdout, Stderr: spec.Stderr,
			SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
			WaitDelay:   WaitDelay,
		}
		if spec.Hermetic {
			hermetic.Isolate(cmd.SysProcAttr)
		}
		return cmd
	})
	if err != nil {
		if spec.Hermetic {
			err = hermetic.StartError(err)
			var he *hermetic.Error
			if errors.As(err, &he) {
				return nil, err
			}
		}
		return nil, fmt.Errorf("start %s: %w", spec.Argv[0], err)
	}
	return &Process{cmd: cmd, pgid: cmd.Process.Pid, started: time.Now(), oomBefore: oomBefore, spec: spec}, nil
}

// Stop sends SIGTERM to the step's group, and SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) {
	_ = syscall.Kill(-p.pgid, syscall.SIGTERM)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer == nil {
		p.timer = time.AfterFunc(grace, p.Kill)
	}
}

// Started is when the step's process started.
func (p *Process) Started() time.Time { return p.started }

// Kill sends SIGKILL to the step's group.
func (p *Process) Kill() { _ = syscall.Kill(-p.pgid, syscall.SIGKILL) }

// Wait waits for the step to end, ends what is left of its group (a
// container's processes all end with its main process), and tells how it
// ended: exit code, signal, OOM kill; the exit code is recorded at
// Spec.ExitCodePath.
func (p *Process) Wait() Exit {
	waitErr := p.cmd.Wait()
	ex := Exit{Started: p.started, Finished: time.Now()}
	p.Kill()
	p.mu.Lock()
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) && !errors.Is(waitErr, exec.ErrWaitDelay) {
		ex.Code, ex.Err = 1, fmt.Errorf("wait for the step: %w", waitErr)
		return ex
	}
	ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		ex.Code, ex.Reason = 128+int(ws.Signal()), SignalName(ws.Signal())
	} else {
		ex.Code = ws.ExitStatus()
	}
	if ex.Code != 0 && p.spec.Cgroup != "" && oomKills(p.spec.Cgroup) > p.oomBefore {
		ex.Reason = OOMKilled
	}
	if path := p.spec.ExitCodePath; path != "" {
		if err := writeExitCode(path, ex.Code); err != nil {
			ex.Err = err
		}
	}
	return ex
}

func writeExitCode(path string, code int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("record exit code: %w", err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(code)), 0o644); err != nil {
		return fmt.Errorf("record exit code: %w", err)
	}
	return nil
}

// oomKills is the cgroup's count of OOM kills (cgroup v2 memory.events,
// v1 memory.oom_control), or -1 when it cannot be read.
func oomKills(cgroup string) int64 {
	if cgroup == "" {
		return -1
	}
	for _, f := range []string{"memory.events", "memory/memory.oom_control"} {
		if n, ok := readCounter(filepath.Join(cgroup, f), "oom_kill"); ok {
			return n
		}
	}
	return -1
}

func readCounter(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
