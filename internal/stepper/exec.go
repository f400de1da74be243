package stepper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/e7763abc/pod-runner/internal/credsinit"
	"github.com/e7763abc/pod-runner/internal/stepexec"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

// process is one running step.
type process struct {
	seq  uint64
	proc *stepexec.Process
	done chan *steppb.Exited // receives once, then is never read again
}

// initCredentials writes the step's credentials (Options.Creds) into its
// HOME, as Tekton's entrypoint does before each step: a failure is logged,
// and the step runs, as there.
func (s *server) initCredentials(env []string) {
	if len(s.opts.Creds) == 0 {
		return
	}
	home, _ := stepexec.LookupEnv(env, "HOME")
	if home == "" {
		// As a container runtime sets HOME: the user's in /etc/passwd.
		if u, err := user.Current(); err == nil {
			home = u.HomeDir
		}
	}
	if err := credsinit.Write(s.opts.Creds, s.opts.CredsDir, home); err != nil {
		fmt.Fprintf(s.opts.Log, "pod-runner step: Error initializing credentials: %v\n", err)
	}
}

// start starts the process of a Run; its end arrives on p.done.
func (s *server) start(run *steppb.Run) (*process, error) {
	env := stepexec.MergeEnv(s.opts.Env, run.GetEnv())
	s.initCredentials(env)
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
	s.lastSeq, s.lastEnv, s.lastDir = run.GetSeq(), env, dir
	proc, err := stepexec.Launch(stepexec.Spec{
		Argv: argv, Env: env, Dir: dir, Stdout: stdout, Stderr: stderr,
		Hermetic: run.GetHermetic(), ExitCodePath: run.GetExitCodePath(), Cgroup: s.opts.Cgroup,
	})
	if err != nil {
		closeFile(outFile)
		closeFile(errFile)
		s.dropScript(script)
		return nil, err
	}
	p := &process{seq: run.GetSeq(), proc: proc, done: make(chan *steppb.Exited, 1)}
	go func() {
		end := proc.Wait()
		closeFile(outFile)
		closeFile(errFile)
		s.dropScript(script)
		ex := &steppb.Exited{Seq: p.seq, StartedUnixNano: end.Started.UnixNano(), FinishedUnixNano: end.Finished.UnixNano(),
			ExitCode: int32(end.Code), Reason: end.Reason}
		if end.Err != nil {
			ex.Error = end.Err.Error()
		}
		p.done <- ex
	}()
	return p, nil
}

// probeExec runs a sidecar's exec probe as the kubelet runs one in the
// container: its command with the sidecar's environment and working
// directory (env, dir), killed at its timeout. It runs beside the
// sidecar's process, in a goroutine of its own; its answer goes back
// through serve.
func probeExec(pe *steppb.ProbeExec, env []string, dir string) *steppb.ProbeResult {
	res := &steppb.ProbeResult{Seq: pe.GetSeq()}
	timeout := time.Duration(pe.GetTimeoutMs()) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Second // the API server's default timeoutSeconds
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), timeout, fmt.Errorf("command timed out after %v", timeout))
	defer cancel()
	out, err := stepexec.RunCommand(ctx, stepexec.Command{Argv: pe.GetCommand(), Env: env, Dir: dir})
	res.ExitCode, res.Output = int32(out.Code), out.Output
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// stop sends SIGTERM to the step's group, and SIGKILL after grace.
func (p *process) stop(grace time.Duration) { p.proc.Stop(grace) }

// kill sends SIGKILL to the step's group.
func (p *process) kill() { p.proc.Kill() }

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

// writeScript writes the script to an executable file, named by the run's
// sequence number (unique in the Pod) and the step's name, in ScriptDir;
// its #! line picks the interpreter when it runs.
func (s *server) writeScript(run *steppb.Run) (string, error) {
	if s.scriptDir == "" {
		s.scriptDir = s.opts.ScriptDir
	}
	if s.scriptDir == "" {
		d, err := os.MkdirTemp("", "pod-runner-scripts-")
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

// dropScript removes a script that ran from a private directory; in the
// task's shared /tekton/scripts it stays, as Tekton's scripts stay there
// for the Pod's life.
func (s *server) dropScript(script string) {
	if script != "" && s.scriptDir != s.opts.ScriptDir {
		os.Remove(script)
	}
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
