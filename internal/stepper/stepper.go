// Package stepper is `pod-runner step`, the entrypoint of every step
// container: it connects to the supervisor's socket, runs each step it is
// sent, reports how it ended, and exits when told.
package stepper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/e7763abc/pod-runner/internal/credsinit"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

// Options configure Run. Zero values take the pod's layout (podlayout).
type Options struct {
	// Socket is the supervisor's socket (podlayout.Socket).
	Socket string
	// Container is this container's name, sent in Hello
	// (env podlayout.EnvContainer).
	Container string
	// Stdout and Stderr receive the steps' output: the container's own
	// (os.Stdout, os.Stderr), so `kubectl logs` shows the step.
	Stdout, Stderr io.Writer
	// Log receives this program's own messages (os.Stderr).
	Log io.Writer
	// ScriptDir is where scripts are written: the task's /tekton/scripts
	// (podlayout.ScriptsDir), which its containers share as Tekton's do,
	// when the container has it; else a private directory made on first
	// use under os.TempDir().
	ScriptDir string
	// WorkspaceDir is what a relative working directory is relative to
	// (podlayout.WorkspaceDir), as Tekton's working-dir initializer does.
	WorkspaceDir string
	// Cgroup is the container's cgroup directory, read to tell an OOM kill
	// ("/sys/fs/cgroup").
	Cgroup string
	// Signals delivers the container's signals (SIGTERM from the kubelet).
	// Before the supervisor answers, one ends Run; after, the supervisor,
	// which hears it too, decides (a running step is not signalled).
	Signals <-chan os.Signal
	// Env is the environment a step's own is laid over (os.Environ()
	// without POD_RUNNER_* variables).
	Env []string
	// Creds are Tekton's entrypoint credential flags, without their dash
	// ("basic-git=SECRET=URL"): before each step its credentials are
	// written into CredsDir (credsinit.Dir when empty) and its HOME.
	Creds    []string
	CredsDir string
}

func (o *Options) defaults() {
	if o.Socket == "" {
		o.Socket = podlayout.Socket
	}
	if o.Container == "" {
		o.Container = os.Getenv(podlayout.EnvContainer)
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.ScriptDir == "" {
		if info, err := os.Stat(podlayout.ScriptsDir); err == nil && info.IsDir() {
			o.ScriptDir = podlayout.ScriptsDir
		}
	}
	if o.WorkspaceDir == "" {
		o.WorkspaceDir = podlayout.WorkspaceDir
	}
	if o.Cgroup == "" {
		o.Cgroup = "/sys/fs/cgroup"
	}
	if o.Env == nil {
		o.Env = ownEnv()
	}
	if o.CredsDir == "" {
		o.CredsDir = credsinit.Dir
	}
}

// ErrSupervisorDone is returned when the supervisor had already finished
// before this container connected: there is nothing to run.
var ErrSupervisorDone = errors.New("the supervisor has finished: nothing to run")

// refusedFor bounds how long a socket that refuses connections is retried:
// the supervisor binds before it listens, a few microseconds apart, while a
// stale socket (its supervisor died) refuses for ever.
const refusedFor = 2 * time.Second

// Run waits for the supervisor's socket, says Hello, and serves Run requests
// one at a time until told to Exit (nil) or the connection closes (an
// error; the running step is killed first). ErrSupervisorDone means the
// supervisor ended before this container connected.
func Run(ctx context.Context, opts Options) error {
	opts.defaults()
	if opts.Container == "" {
		return fmt.Errorf("no container name: %s is not set", podlayout.EnvContainer)
	}
	conn, err := waitSocket(ctx, opts.Socket, opts.Signals)
	if err != nil {
		return err
	}
	defer conn.Close()
	s := &server{opts: opts, conn: conn, probes: make(chan *steppb.ProbeResult), quit: make(chan struct{})}
	defer s.cleanup()
	return s.serve(ctx)
}

// waitSocket connects to the socket once it exists, woken by inotify on its
// directory rather than by polling.
func waitSocket(ctx context.Context, socket string, signals <-chan os.Signal) (net.Conn, error) {
	dir := filepath.Dir(socket)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return nil, fmt.Errorf("watch %s for the supervisor's socket: %w", dir, err)
	}
	var refusedSince time.Time
	for {
		if _, err := os.Stat(filepath.Join(dir, DoneFile)); err == nil {
			return nil, ErrSupervisorDone
		}
		conn, err := net.Dial("unix", socket)
		if err == nil {
			return conn, nil
		}
		var retry <-chan time.Time
		switch {
		case errors.Is(err, syscall.ENOENT):
			refusedSince = time.Time{}
		case errors.Is(err, syscall.ECONNREFUSED):
			if refusedSince.IsZero() {
				refusedSince = time.Now()
			} else if time.Since(refusedSince) > refusedFor {
				return nil, fmt.Errorf("supervisor socket %s refuses connections (its supervisor is gone): %w", socket, err)
			}
			retry = time.After(20 * time.Millisecond)
		default:
			return nil, fmt.Errorf("connect to the supervisor at %s: %w", socket, err)
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			return nil, fmt.Errorf("watch %s: %w", dir, err)
		case <-retry:
		case sig := <-signals:
			return nil, fmt.Errorf("%v before the supervisor answered", sig)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// server is one connection to the supervisor.
type server struct {
	opts      Options
	conn      net.Conn
	scriptDir string // private directory of scripts, made on first use
	cur       *process
	told      bool // the supervisor was told the Pod is stopping
	// probes receives the answers of the exec probes running beside the
	// sidecar (ProbeExec); probing counts them, since no orphan may be
	// reaped while one runs.
	probes  chan *steppb.ProbeResult
	probing int
	quit    chan struct{} // closed when serve returns
	// last is the environment and working directory of the last Run, which
	// an exec probe runs with, as the kubelet runs it in the container.
	lastSeq uint64
	lastEnv []string
	lastDir string
}

// tellTerminating tells the supervisor the kubelet is stopping the Pod.
func (s *server) tellTerminating(ctx context.Context) {
	if err := Control(ctx, s.opts.Socket, steppb.Control_TERMINATE); err != nil {
		fmt.Fprintf(s.opts.Log, "pod-runner step: tell the supervisor the Pod is stopping: %v\n", err)
	}
}

func (s *server) send(m *steppb.StepMessage) error {
	if err := WriteMsg(s.conn, m); err != nil {
		return fmt.Errorf("write to the supervisor: %w", err)
	}
	return nil
}

func (s *server) serve(ctx context.Context) error {
	defer close(s.quit)
	hello := &steppb.Hello{Container: s.opts.Container, Pid: int32(os.Getpid())}
	if err := s.send(&steppb.StepMessage{Kind: &steppb.StepMessage_Hello{Hello: hello}}); err != nil {
		return err
	}
	msgs := make(chan *steppb.SupervisorMessage)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReader(s.conn)
		for {
			m := &steppb.SupervisorMessage{}
			if err := ReadMsg(r, m); err != nil {
				readErr <- err
				return
			}
			msgs <- m
		}
	}()
	for {
		var done <-chan *steppb.Exited
		if s.cur != nil {
			done = s.cur.done
		}
		select {
		case m := <-msgs:
			if exit, err := s.handle(m); exit || err != nil {
				return err
			}
		case ex := <-done:
			s.cur = nil
			if s.probing == 0 {
				reapOrphans()
			}
			if err := s.send(&steppb.StepMessage{Kind: &steppb.StepMessage_Exited{Exited: ex}}); err != nil {
				return err
			}
		case res := <-s.probes:
			s.probing--
			if err := s.send(&steppb.StepMessage{Kind: &steppb.StepMessage_ProbeResult{ProbeResult: res}}); err != nil {
				return err
			}
		case err := <-readErr:
			if s.cur != nil {
				s.cur.kill()
				<-s.cur.done
				return fmt.Errorf("the supervisor's connection closed while a step ran (%v): step killed", err)
			}
			return fmt.Errorf("the supervisor's connection closed before it said exit (%v)", err)
		case sig := <-s.opts.Signals:
			// The kubelet is stopping the Pod (a deadline, its deletion,
			// an eviction). The supervisor decides what that means for
			// the run: it stops this step (Stop) or the run (Exit).
			// Ending the step here first would make it a failed task,
			// and start finally after a cancel. A supervisor in a
			// regular container hears the SIGTERM too; one running as a
			// native sidecar hears the kubelet only once every step
			// container ended, so it is told (TERMINATE), once. If the
			// supervisor is gone its connection closes and the step is
			// killed; if it never acts, the kubelet's SIGKILL ends the
			// container after its grace period.
			fmt.Fprintf(s.opts.Log, "pod-runner step: %v: leaving the running step to the supervisor\n", sig)
			if !s.told {
				s.told = true
				go s.tellTerminating(ctx)
			}
		case <-ctx.Done():
			if s.cur != nil {
				s.cur.kill()
				<-s.cur.done
			}
			return ctx.Err()
		}
	}
}

// handle acts on one message; exit is true on Exit.
func (s *server) handle(m *steppb.SupervisorMessage) (exit bool, err error) {
	switch k := m.GetKind().(type) {
	case *steppb.SupervisorMessage_Run:
		if s.cur != nil {
			ex := &steppb.Exited{Seq: k.Run.GetSeq(), ExitCode: 1, Error: fmt.Sprintf("step %d still runs", s.cur.seq)}
			return false, s.send(&steppb.StepMessage{Kind: &steppb.StepMessage_Exited{Exited: ex}})
		}
		p, err := s.start(k.Run)
		if err != nil {
			ex := &steppb.Exited{Seq: k.Run.GetSeq(), ExitCode: 1, Error: err.Error()}
			return false, s.send(&steppb.StepMessage{Kind: &steppb.StepMessage_Exited{Exited: ex}})
		}
		s.cur = p
	case *steppb.SupervisorMessage_ProbeExec:
		env, dir := s.opts.Env, ""
		if seq := k.ProbeExec.GetRunSeq(); seq != 0 && seq == s.lastSeq {
			env, dir = s.lastEnv, s.lastDir
		}
		s.probing++
		go func() {
			res := probeExec(k.ProbeExec, env, dir)
			select {
			case s.probes <- res:
			case <-s.quit: // serve has returned: nobody to tell
			}
		}()
	case *steppb.SupervisorMessage_Stop:
		if s.cur != nil && s.cur.seq == k.Stop.GetSeq() {
			s.cur.stop(time.Duration(k.Stop.GetGraceMs()) * time.Millisecond)
		}
	case *steppb.SupervisorMessage_Exit:
		if s.cur != nil {
			s.cur.kill()
			<-s.cur.done
		}
		return true, nil
	default:
		fmt.Fprintf(s.opts.Log, "pod-runner step: ignoring unknown message %T\n", k)
	}
	return false, nil
}

// cleanup removes the private script directory this container made; a
// shared ScriptDir is the task's, and is left as it is.
func (s *server) cleanup() {
	if s.scriptDir != "" && s.scriptDir != s.opts.ScriptDir {
		os.RemoveAll(s.scriptDir)
	}
}

// reapOrphans collects the step's children that outlived it: in a container
// this program is PID 1, and the killed process group's orphans become its
// children. Only between steps, when no exec.Cmd waits for its own child.
func reapOrphans() {
	if os.Getpid() != 1 {
		return
	}
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
