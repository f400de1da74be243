package stepper

import (
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
	"github.com/e7763abc/pod-runner/internal/stepexec"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

// waitDelay bounds how long the end of a step waits for its output copies
// once its process is gone: a child that left the process group may hold
// the pipe open for ever.
const waitDelay = 500 * time.Millisecond

// process is one running step.
type process struct {
	seq  uint64
	pgid int
	done chan *steppb.Exited // receives once, then is never read again

	mu    sync.Mutex
	timer *time.Timer // SIGKILL after the grace period of a Stop
}

// start starts the process of a Run; its end arrives on p.done.
func (s *server) start(run *steppb.Run) (*process, error) {
	env := stepexec.MergeEnv(s.opts.Env, run.GetEnv())
	dir, err := s.workingDir(run.GetWorkingDir())
	if err != nil {
		return nil, err
	}
	var argv []string
	var script string
	switch {
	case run.GetScript() != "":
		if script, err = s.writeScript(run); err != nil {
			return nil, err
		}
		argv = append([]string{script}, run.GetArgs()...)
	case len(run.GetCommand()) > 0:
		path, _ := stepexec.LookupEnv(env, "PATH")
		bin, err := stepexec.LookPath(run.GetCommand()[0], path, dir)
		if err != nil {
			return nil, err
		}
		argv = append(append([]string{bin}, run.GetCommand()[1:]...), run.GetArgs()...)
	default:
		return nil, errors.New("the step has no command and no script")
	}
	stdout, outFile, err := tee(s.opts.Stdout, run.GetStdoutPath(), dir)
	if err != nil {
		return nil, fmt.Errorf("stdoutConfig: %w", err)
	}
	stderr, errFile, err := tee(s.opts.Stderr, run.GetStderrPath(), dir)
	if err != nil {
		closeFile(outFile)
		return nil, fmt.Errorf("stderrConfig: %w", err)
	}
	newCmd := func() *exec.Cmd {
		cmd := &exec.Cmd{
			Path: argv[0], Args: argv, Env: env, Dir: dir, Stdout: stdout, Stderr: stderr,
			// Its own process group, so that a Stop reaches the step's children.
			SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
			WaitDelay:   waitDelay,
		}
		if run.GetHermetic() {
			hermetic.Isolate(cmd.SysProcAttr)
		}
		return cmd
	}
	oomBefore := oomKills(s.opts.Cgroup)
	cmd, err := stepexec.Start(newCmd)
	if err != nil {
		closeFile(outFile)
		closeFile(errFile)
		if script != "" {
			os.Remove(script)
		}
		if run.GetHermetic() {
			// Never run it with the network instead: say what is missing.
			err = hermetic.StartError(err)
			var he *hermetic.Error
			if errors.As(err, &he) {
				return nil, err
			}
		}
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &process{seq: run.GetSeq(), pgid: cmd.Process.Pid, done: make(chan *steppb.Exited, 1)}
	started := time.Now()
	go func() {
		waitErr := cmd.Wait()
		finished := time.Now()
		// A container's processes all end with its main process; so do
		// the step's background children here.
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		p.mu.Lock()
		if p.timer != nil {
			p.timer.Stop()
		}
		p.mu.Unlock()
		closeFile(outFile)
		closeFile(errFile)
		if script != "" {
			os.Remove(script)
		}
		ex := &steppb.Exited{Seq: p.seq, StartedUnixNano: started.UnixNano(), FinishedUnixNano: finished.UnixNano()}
		var ee *exec.ExitError
		if waitErr != nil && !errors.As(waitErr, &ee) && !errors.Is(waitErr, exec.ErrWaitDelay) {
			ex.ExitCode, ex.Error = 1, fmt.Sprintf("wait for the step: %v", waitErr)
		} else {
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if ws.Signaled() {
				ex.ExitCode, ex.Reason = 128+int32(ws.Signal()), stepexec.SignalName(ws.Signal())
			} else {
				ex.ExitCode = int32(ws.ExitStatus())
			}
			if ex.ExitCode != 0 && oomKills(s.opts.Cgroup) > oomBefore {
				ex.Reason = "OOMKilled"
			}
		}
		if path := run.GetExitCodePath(); path != "" {
			if err := writeExitCode(path, ex.ExitCode); err != nil && ex.Error == "" {
				ex.Error = err.Error()
			}
		}
		p.done <- ex
	}()
	return p, nil
}

// stop sends SIGTERM to the step's group, and SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	_ = syscall.Kill(-p.pgid, syscall.SIGTERM)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer == nil {
		p.timer = time.AfterFunc(grace, p.kill)
	}
}

func (p *process) kill() { _ = syscall.Kill(-p.pgid, syscall.SIGKILL) }

// workingDir resolves and creates the step's working directory: relative
// ones are under /workspace, as Tekton's working-dir initializer makes them;
// a missing absolute one is created, as the container runtime does.
func (s *server) workingDir(wd string) (string, error) {
	if wd == "" {
		return "", nil
	}
	if !filepath.IsAbs(wd) {
		wd = filepath.Join(s.opts.WorkspaceDir, wd)
	}
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return "", fmt.Errorf("working dir: %w", err)
	}
	return wd, nil
}

// writeScript writes the script to an executable file in a directory only
// this container sees; its #! line picks the interpreter when it runs.
func (s *server) writeScript(run *steppb.Run) (string, error) {
	if s.scriptDir == "" {
		d, err := os.MkdirTemp(s.opts.ScriptDir, "pod-runner-scripts-")
		if err != nil {
			return "", fmt.Errorf("script dir: %w", err)
		}
		s.scriptDir = d
	}
	name := fmt.Sprintf("script-%d", run.GetSeq())
	if n := safeName(run.GetName()); n != "" {
		name += "-" + n
	}
	path := filepath.Join(s.scriptDir, name)
	if err := os.WriteFile(path, []byte(run.GetScript()), 0o755); err != nil {
		return "", fmt.Errorf("write script: %w", err)
	}
	return path, nil
}

// tee is out, plus a copy to path (stdoutConfig) when set: appended, its
// parents created, relative to the working directory, as Tekton's
// entrypoint does.
func tee(out io.Writer, path, dir string) (io.Writer, *os.File, error) {
	f, err := stepexec.OpenOutput(path, dir)
	if err != nil || f == nil {
		return out, nil, err
	}
	return io.MultiWriter(out, f), f, nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

func writeExitCode(path string, code int32) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("record exit code: %w", err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(int(code))), 0o644); err != nil {
		return fmt.Errorf("record exit code: %w", err)
	}
	return nil
}

// ownEnv is this container's environment without pod-runner's own variables.
func ownEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POD_RUNNER_") {
			env = append(env, kv)
		}
	}
	return env
}

// safeName keeps the characters of name that are safe in a file name.
func safeName(name string) string {
	b := make([]byte, 0, len(name))
	for _, c := range []byte(name) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b = append(b, c)
		}
	}
	return string(b[:min(len(b), 64)])
}
