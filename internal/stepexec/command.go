package stepexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
)

// MaxCommandOutput is how much of a probe command's output RunCommand keeps:
// the kubelet keeps 10 KiB of an exec probe's output.
const MaxCommandOutput = 10 << 10

// Command is a short command run to its end, such as an exec probe: argv
// looked up in env's PATH, not through a shell.
type Command struct {
	Argv []string
	Env  []string
	Dir  string
}

// CommandResult is how a Command ended.
type CommandResult struct {
	// Code is the exit code; 128+N for signal N.
	Code int
	// Output is the start of stdout and stderr, interleaved.
	Output string
}

// RunCommand runs c in its own process group and waits for its end. When
// ctx ends first the whole group is killed and the error is ctx's cause: a
// probe past its timeout is a failed probe, whatever it would have said.
func RunCommand(ctx context.Context, c Command) (CommandResult, error) {
	if len(c.Argv) == 0 {
		return CommandResult{}, errors.New("no command")
	}
	path, _ := LookupEnv(c.Env, "PATH")
	bin, err := LookPath(c.Argv[0], path, c.Dir)
	if err != nil {
		return CommandResult{}, err
	}
	out := &limitedBuffer{max: MaxCommandOutput}
	cmd, err := Start(func() *exec.Cmd {
		return &exec.Cmd{
			Path: bin, Args: c.Argv, Env: c.Env, Dir: c.Dir, Stdout: out, Stderr: out,
			SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
			WaitDelay:   WaitDelay,
		}
	})
	if err != nil {
		return CommandResult{}, fmt.Errorf("start %s: %w", c.Argv[0], err)
	}
	pgid := cmd.Process.Pid
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var waitErr error
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-waited
		return CommandResult{Code: 128 + int(syscall.SIGKILL), Output: out.String()}, fmt.Errorf("%s: %w", c.Argv[0], context.Cause(ctx))
	}
	// What the command left running in its group ends with it, as an exec
	// session's processes end with the session.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	res := CommandResult{Output: out.String()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Code = 128 + int(ws.Signal())
	} else {
		res.Code = cmd.ProcessState.ExitCode()
	}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) && !errors.Is(waitErr, exec.ErrWaitDelay) {
		return res, fmt.Errorf("wait for %s: %w", c.Argv[0], waitErr)
	}
	return res, nil
}

// limitedBuffer keeps the first max bytes written to it and drops the rest
// (without failing the writer, which would end the command with SIGPIPE).
type limitedBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
