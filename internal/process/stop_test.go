package process

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/internal/syncbuf"
	"github.com/e7763abc/pod-runner/internal/testenv"
)

const testGrace = 400 * time.Millisecond

func TestStopOnCancel(t *testing.T) {
	cases := []struct {
		name   string
		body   string // must touch "$READY" once its traps are set
		code   int
		reason string
		killed bool // stopped by SIGKILL after the grace period
	}{
		{name: "traps SIGTERM and exits", body: `trap 'echo bye; exit 0' TERM; touch "$READY"; sleep 60 & wait`, code: 0},
		{name: "default SIGTERM", body: `touch "$READY"; sleep 60`, code: 143, reason: "SIGTERM"},
		{name: "ignores SIGTERM", body: `trap '' TERM; touch "$READY"; sleep 60`, code: 137, reason: "SIGKILL", killed: true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			log := &syncbuf.Buffer{}
			l := newPrepared(t, Options{Grace: testGrace, Log: log})
			att := startTask(t, l, "t", nil)
			ready := filepath.Join(t.TempDir(), "ready")
			s := script("t", "s"+strconv.Itoa(i), c.body)
			s.Env = []string{"READY=" + ready}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan supervisor.StepExit, 1)
			go func() { done <- att.RunStep(ctx, s) }()
			waitReady(t, ready, done)
			stopped := time.Now()
			cancel()
			var e supervisor.StepExit
			select {
			case e = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("RunStep did not return after cancel")
			}
			took := time.Since(stopped)
			if e.Err != nil || e.ExitCode != c.code || e.Reason != c.reason {
				t.Errorf("exit = %d %q %v, want %d %q", e.ExitCode, e.Reason, e.Err, c.code, c.reason)
			}
			if c.killed && took < testGrace {
				t.Errorf("killed after %v, before the grace period %v", took, testGrace)
			}
			if !c.killed && took >= testGrace {
				t.Errorf("took %v to stop, want it before the grace period %v", took, testGrace)
			}
			if c.code == 0 && !strings.Contains(log.String(), "[t/s0] bye\n") {
				t.Errorf("trap output missing from log %q", log.String())
			}
		})
	}
}

// A step's background processes must not keep RunStep waiting for output
// pipes: those in its process group end with it (as in a container), and
// one that left the group is cut off after drainDelay.
func TestBackgroundChildrenDoNotHang(t *testing.T) {
	cases := []struct {
		name  string
		body  string // writes the background pid to "$PIDFILE"
		needs string
		// escaped: the child left the group, so RunStep waits drainDelay
		// for the pipes; otherwise it must not wait that long.
		escaped bool
	}{
		{name: "same group", body: `sleep 60 & echo $! > "$PIDFILE"; echo started`},
		{
			name:    "own session",
			body:    `setsid sh -c 'echo $$ > "$PIDFILE"; exec sleep 60' & while [ ! -s "$PIDFILE" ]; do sleep 0.01; done; echo started`,
			needs:   "setsid",
			escaped: true,
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needs != "" {
				testenv.Require(t, c.needs, testenv.Command(c.needs, "a Debian package"))
			}
			log := &syncbuf.Buffer{}
			l := newPrepared(t, Options{Grace: testGrace, Log: log})
			att := startTask(t, l, "t", nil)
			pidFile := filepath.Join(t.TempDir(), "pid")
			s := script("t", "s"+strconv.Itoa(i), c.body)
			s.Env = []string{"PIDFILE=" + pidFile}
			begin := time.Now()
			e := runStep(t, att, s)
			took := time.Since(begin)
			pid, err := strconv.Atoi(strings.TrimSpace(readString(t, pidFile)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			if e.Err != nil || e.ExitCode != 0 {
				t.Errorf("exit = %d, %v", e.ExitCode, e.Err)
			}
			if c.escaped && (took < drainDelay || took > drainDelay+5*time.Second) {
				t.Errorf("RunStep took %v, want about drainDelay %v", took, drainDelay)
			}
			if !c.escaped && took >= drainDelay {
				t.Errorf("RunStep took %v, want less than drainDelay %v", took, drainDelay)
			}
			if !strings.Contains(log.String(), "] started\n") {
				t.Errorf("output lost: %q", log.String())
			}
		})
	}
}

func TestSameGroupChildIsKilled(t *testing.T) {
	l := newPrepared(t, Options{Grace: testGrace})
	att := startTask(t, l, "t", nil)
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := script("t", "s", `sleep 60 >/dev/null 2>&1 & echo $! > "$PIDFILE"`)
	s.Env = []string{"PIDFILE=" + pidFile}
	if e := runStep(t, att, s); e.Err != nil || e.ExitCode != 0 {
		t.Fatalf("exit = %d, %v", e.ExitCode, e.Err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(readString(t, pidFile)))
	if err != nil {
		t.Fatal(err)
	}
	// The child is killed but, orphaned, reaped by init: wait for it to go.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background child %d still running after its step ended", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
