package stepper

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/syncbuf"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

// fakeSupervisor is the supervisor's end of the socket.
type fakeSupervisor struct {
	t    *testing.T
	ln   net.Listener
	conn net.Conn
	r    *bufio.Reader
}

func listen(t *testing.T, socket string) *fakeSupervisor {
	t.Helper()
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &fakeSupervisor{t: t, ln: ln}
}

// accept takes the step's connection and returns its Hello.
func (f *fakeSupervisor) accept() *steppb.Hello {
	f.t.Helper()
	conn, err := f.ln.Accept()
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	f.conn, f.r = conn, bufio.NewReader(conn)
	m := f.read()
	if m.GetHello() == nil {
		f.t.Fatalf("first message %v, want Hello", m)
	}
	return m.GetHello()
}

// acceptControl takes a Control request on a new connection, answers it
// and returns its action.
func (f *fakeSupervisor) acceptControl() steppb.Control_Action {
	f.t.Helper()
	if ul, ok := f.ln.(*net.UnixListener); ok {
		_ = ul.SetDeadline(time.Now().Add(10 * time.Second))
	}
	conn, err := f.ln.Accept()
	if err != nil {
		f.t.Fatalf("accept the control connection: %v", err)
	}
	defer conn.Close()
	m := &steppb.StepMessage{}
	if err := ReadMsg(bufio.NewReader(conn), m); err != nil || m.GetControl() == nil {
		f.t.Fatalf("control message %v: %v", m, err)
	}
	if err := WriteMsg(conn, &steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_ControlReply{ControlReply: &steppb.ControlReply{}}}); err != nil {
		f.t.Fatal(err)
	}
	return m.GetControl().GetAction()
}

func (f *fakeSupervisor) read() *steppb.StepMessage {
	f.t.Helper()
	_ = f.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	m := &steppb.StepMessage{}
	if err := ReadMsg(f.r, m); err != nil {
		f.t.Fatalf("read from step: %v", err)
	}
	return m
}

func (f *fakeSupervisor) send(m *steppb.SupervisorMessage) {
	f.t.Helper()
	if err := WriteMsg(f.conn, m); err != nil {
		f.t.Fatalf("send: %v", err)
	}
}

func (f *fakeSupervisor) run(r *steppb.Run) *steppb.Exited {
	f.t.Helper()
	f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Run{Run: r}})
	m := f.read()
	if m.GetExited().GetSeq() != r.GetSeq() {
		f.t.Fatalf("answer %v, want Exited seq %d", m, r.GetSeq())
	}
	return m.GetExited()
}

// started runs a stepper against a socket in a fresh dir; the returned
// channel receives Run's result.
type started struct {
	dir       string
	socket    string
	stdout    *syncbuf.Buffer
	stderr    *syncbuf.Buffer
	signals   chan os.Signal
	result    chan error
	cancelRun context.CancelFunc
}

func start(t *testing.T, listenFirst bool) (*started, *fakeSupervisor) {
	t.Helper()
	dir := t.TempDir()
	s := &started{dir: dir, socket: filepath.Join(dir, "run", "supervisor.sock"), stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{},
		signals: make(chan os.Signal, 1), result: make(chan error, 1)}
	if err := os.MkdirAll(filepath.Dir(s.socket), 0o755); err != nil {
		t.Fatal(err)
	}
	var f *fakeSupervisor
	if listenFirst {
		f = listen(t, s.socket)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancelRun = cancel
	opts := Options{Socket: s.socket, Container: "build-compile", Stdout: s.stdout, Stderr: s.stderr, Log: s.stderr,
		ScriptDir: filepath.Join(dir, "tmp"), WorkspaceDir: filepath.Join(dir, "workspace"), Cgroup: filepath.Join(dir, "cgroup"),
		Signals: s.signals, Env: []string{"PATH=/usr/bin:/bin", "KEEP=container", "OVER=container"}}
	for _, d := range []string{opts.ScriptDir, opts.WorkspaceDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	go func() { s.result <- Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.result:
		case <-time.After(10 * time.Second):
			t.Error("stepper did not end")
		}
	})
	return s, f
}

func (s *started) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.result:
		s.result <- err // for the cleanup
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("stepper did not return")
		return nil
	}
}

func TestWaitsForSocketThenSaysHello(t *testing.T) {
	s, _ := start(t, false)
	time.Sleep(50 * time.Millisecond) // it is waiting on inotify now
	f := listen(t, s.socket)
	if h := f.accept(); h.GetContainer() != "build-compile" || h.GetPid() != int32(os.Getpid()) {
		t.Errorf("hello = %v", h)
	}
}

func TestRuns(t *testing.T) {
	for _, tc := range []struct {
		name       string
		run        *steppb.Run
		wantCode   int32
		wantErr    string
		wantOut    string
		wantReason string
	}{
		{name: "script with shebang and args", run: &steppb.Run{Script: "#!/bin/sh\necho \"$1-$2 $KEEP $OVER $NEW\"\nexit 3\n", Args: []string{"a", "b"},
			Env: []string{"OVER=step", "NEW=new"}}, wantCode: 3, wantOut: "a-b container step new\n"},
		{name: "command from the step's PATH", run: &steppb.Run{Command: []string{"sh", "-c"}, Args: []string{"echo hi; pwd"}, WorkingDir: "sub/dir"},
			wantOut: "hi\n{{workspace}}/sub/dir\n"},
		{name: "absolute working dir is created", run: &steppb.Run{Command: []string{"pwd"}, WorkingDir: "{{dir}}/abs"}, wantOut: "{{dir}}/abs\n"},
		{name: "command not found", run: &steppb.Run{Command: []string{"no-such-command"}}, wantCode: 1, wantErr: `command "no-such-command" not found`},
		{name: "no command", run: &steppb.Run{}, wantCode: 1, wantErr: "no command and no script"},
		{name: "killed by a signal", run: &steppb.Run{Script: "#!/bin/sh\nkill -9 $$\n"}, wantCode: 137, wantReason: "SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := start(t, true)
			f.accept()
			subst := strings.NewReplacer("{{dir}}", s.dir, "{{workspace}}", filepath.Join(s.dir, "workspace"))
			tc.run.Seq = 7
			tc.run.WorkingDir = subst.Replace(tc.run.WorkingDir)
			tc.run.ExitCodePath = filepath.Join(s.dir, "steps", "step-x", "exitCode")
			ex := f.run(tc.run)
			if ex.GetExitCode() != tc.wantCode || !strings.Contains(ex.GetError(), tc.wantErr) || (tc.wantErr == "") != (ex.GetError() == "") || ex.GetReason() != tc.wantReason {
				t.Errorf("exited = %v, want code %d, error %q, reason %q", ex, tc.wantCode, tc.wantErr, tc.wantReason)
			}
			if got, want := s.stdout.String(), subst.Replace(tc.wantOut); got != want {
				t.Errorf("stdout = %q, want %q", got, want)
			}
			if tc.wantErr == "" {
				if ex.GetStartedUnixNano() == 0 || ex.GetFinishedUnixNano() < ex.GetStartedUnixNano() {
					t.Errorf("times %d..%d", ex.GetStartedUnixNano(), ex.GetFinishedUnixNano())
				}
				code, err := os.ReadFile(tc.run.ExitCodePath)
				if err != nil || string(code) != strconv.Itoa(int(tc.wantCode)) {
					t.Errorf("exitCode file = %q, %v; want %d", code, err, tc.wantCode)
				}
			}
		})
	}
}

// TestScriptInSharedDir: a script is written straight into ScriptDir (the
// task's /tekton/scripts, which its other containers see), named by its
// sequence number and step, and left there when the container ends.
func TestScriptInSharedDir(t *testing.T) {
	s, f := start(t, true)
	f.accept()
	run := &steppb.Run{Seq: 4, Name: "build", Script: "#!/bin/sh\nls \"$0\"\n",
		ExitCodePath: filepath.Join(s.dir, "steps", "step-build", "exitCode")}
	if ex := f.run(run); ex.GetExitCode() != 0 || ex.GetError() != "" {
		t.Fatalf("exited = %v", ex)
	}
	want := filepath.Join(s.dir, "tmp", "script-4-build")
	if got := strings.TrimSpace(s.stdout.String()); got != want {
		t.Errorf("the script ran as %q, want %q", got, want)
	}
	s.cancelRun()
	_ = s.wait(t)
	if _, err := os.Stat(want); err != nil {
		t.Errorf("the script is gone when the container ends: %v", err)
	}
}

func TestStdoutConfigAndStderr(t *testing.T) {
	s, f := start(t, true)
	f.accept()
	out, errp := filepath.Join(s.dir, "out", "stdout.txt"), "rel/stderr.txt"
	ex := f.run(&steppb.Run{Seq: 1, Script: "#!/bin/sh\necho to-out\necho to-err >&2\n", StdoutPath: out, StderrPath: errp, WorkingDir: s.dir})
	if ex.GetExitCode() != 0 || ex.GetError() != "" {
		t.Fatalf("exited %v", ex)
	}
	for path, want := range map[string]string{out: "to-out\n", filepath.Join(s.dir, errp): "to-err\n"} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	if s.stdout.String() != "to-out\n" || !strings.Contains(s.stderr.String(), "to-err\n") {
		t.Errorf("container output %q / %q", s.stdout.String(), s.stderr.String())
	}
	// A second step reuses the connection: the retry path.
	if ex := f.run(&steppb.Run{Seq: 2, Command: []string{"true"}}); ex.GetExitCode() != 0 {
		t.Errorf("second run %v", ex)
	}
}

func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name       string
		script     string
		wantCode   int32
		wantReason string
	}{
		{name: "SIGTERM ends it", script: "#!/bin/sh\necho ready\nsleep 30\n", wantCode: 143, wantReason: "SIGTERM"},
		{name: "SIGKILL after grace", script: "#!/bin/sh\ntrap '' TERM\necho ready\nwhile :; do sleep 0.05; done\n", wantCode: 137, wantReason: "SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := start(t, true)
			f.accept()
			f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Run{Run: &steppb.Run{Seq: 4, Script: tc.script}}})
			waitFor(t, func() bool { return strings.Contains(s.stdout.String(), "ready") })
			begin := time.Now()
			f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Stop{Stop: &steppb.Stop{Seq: 3, GraceMs: 10}}}) // another seq: ignored
			f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Stop{Stop: &steppb.Stop{Seq: 4, GraceMs: 300}}})
			ex := f.read().GetExited()
			if ex.GetSeq() != 4 || ex.GetExitCode() != tc.wantCode || ex.GetReason() != tc.wantReason {
				t.Errorf("exited %v, want code %d reason %s", ex, tc.wantCode, tc.wantReason)
			}
			if d := time.Since(begin); d > 3*time.Second {
				t.Errorf("stop took %v", d)
			}
		})
	}
}

// TestSignalLeftToSupervisor: the container's SIGTERM (the kubelet stops
// all of the Pod's containers at once) does not end the running step: the
// supervisor hears it too and decides, here with a Stop.
func TestSignalLeftToSupervisor(t *testing.T) {
	s, f := start(t, true)
	f.accept()
	f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Run{Run: &steppb.Run{Seq: 1,
		Script: "#!/bin/sh\ntrap 'echo got-term; exit 5' TERM\necho ready\nwhile :; do sleep 0.05; done\n"}}})
	waitFor(t, func() bool { return strings.Contains(s.stdout.String(), "ready") })
	s.signals <- syscall.SIGTERM
	// The supervisor is told on a connection of its own, as `pod-runner
	// control` tells it, once however many signals come.
	if a := f.acceptControl(); a != steppb.Control_TERMINATE {
		t.Fatalf("control %v, want TERMINATE", a)
	}
	s.signals <- syscall.SIGTERM
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(s.stdout.String(), "got-term") {
		t.Fatal("the step heard the container's SIGTERM before the supervisor decided")
	}
	if tl, ok := f.ln.(*net.UnixListener); ok {
		_ = tl.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if c, err := f.ln.Accept(); err == nil {
			c.Close()
			t.Fatal("a second SIGTERM told the supervisor again")
		}
	}
	f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Stop{Stop: &steppb.Stop{Seq: 1, GraceMs: 5000}}})
	if ex := f.read().GetExited(); ex.GetExitCode() != 5 || !strings.Contains(s.stdout.String(), "got-term") {
		t.Errorf("exited %v, output %q", ex, s.stdout.String())
	}
}

func TestExitAndConnectionLoss(t *testing.T) {
	t.Run("exit", func(t *testing.T) {
		s, f := start(t, true)
		f.accept()
		f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Exit{Exit: &steppb.Exit{}}})
		if err := s.wait(t); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
	t.Run("connection closed while a step runs", func(t *testing.T) {
		s, f := start(t, true)
		f.accept()
		pidFile := filepath.Join(s.dir, "pid")
		f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Run{Run: &steppb.Run{Seq: 1,
			Script: "#!/bin/sh\necho $$ > " + pidFile + "\nsleep 30\n"}}})
		waitFor(t, func() bool { b, _ := os.ReadFile(pidFile); return len(b) > 0 })
		f.conn.Close()
		err := s.wait(t)
		if err == nil || !strings.Contains(err.Error(), "connection closed while a step ran") {
			t.Errorf("Run = %v", err)
		}
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("step process %d still there: %v", pid, err)
		}
	})
	t.Run("connection closed while idle", func(t *testing.T) {
		s, f := start(t, true)
		f.accept()
		f.conn.Close()
		if err := s.wait(t); err == nil || !strings.Contains(err.Error(), "before it said exit") {
			t.Errorf("Run = %v", err)
		}
	})
	t.Run("supervisor done before connecting", func(t *testing.T) {
		s, _ := start(t, false)
		time.Sleep(20 * time.Millisecond)
		if err := os.WriteFile(filepath.Join(filepath.Dir(s.socket), DoneFile), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.wait(t); !errors.Is(err, ErrSupervisorDone) {
			t.Errorf("Run = %v, want ErrSupervisorDone", err)
		}
	})
	t.Run("signal before the supervisor answers", func(t *testing.T) {
		s, _ := start(t, false)
		s.signals <- syscall.SIGTERM
		if err := s.wait(t); err == nil || !strings.Contains(err.Error(), "before the supervisor answered") {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestOOMReason(t *testing.T) {
	s, f := start(t, true)
	f.accept()
	events := filepath.Join(s.dir, "cgroup", "memory.events")
	if err := os.MkdirAll(filepath.Dir(events), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(events, []byte("low 0\noom 1\noom_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The "kernel" counts one more OOM kill while the step runs.
	ex := f.run(&steppb.Run{Seq: 1, Script: "#!/bin/sh\nprintf 'oom 2\\noom_kill 2\\n' > " + events + "\nkill -9 $$\n"})
	if ex.GetReason() != "OOMKilled" || ex.GetExitCode() != 137 {
		t.Errorf("exited %v, want OOMKilled 137", ex)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
