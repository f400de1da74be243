// Package stepexec is what both launchers need to start a step's process as
// a container runtime and Tekton's entrypoint would: the step's environment
// laid over the base one, its own PATH, exec retried on "text file busy",
// and signal names for how it ended.
package stepexec

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MergeEnv is base overlaid with step (the step's value wins), in order.
func MergeEnv(base, step []string) []string {
	out := make([]string, 0, len(base)+len(step))
	index := map[string]int{}
	for _, kv := range append(append([]string(nil), base...), step...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// LookupEnv finds the last KEY= entry of env, as exec does.
func LookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// LookPath finds a command in the step's PATH (not ours: the step's env may
// set its own). Names with a slash are taken as they are; relative names and
// PATH entries are relative to dir when dir is set.
func LookPath(name, path, dir string) (string, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) && dir != "" {
			name = filepath.Join(dir, name)
		}
		if err := executable(name); err != nil {
			return "", fmt.Errorf("command %q: %w", name, err)
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) && dir != "" {
			d = filepath.Join(dir, d)
		}
		if p := filepath.Join(d, name); executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in PATH %q", name, path)
}

func executable(p string) error {
	info, err := os.Stat(p)
	if err != nil {
		return err
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// OpenOutput opens a stdoutConfig/stderrConfig file as Tekton's entrypoint
// does: relative to the working directory dir, parents created, appended to.
// It returns nil for no path.
func OpenOutput(path, dir string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// Start starts a command, again while exec says "text file busy": a script
// was just written, and a process forked meanwhile by another goroutine may
// still hold it open until its own exec (golang.org/issue/22315). newCmd
// makes a fresh Cmd for each try: a Cmd cannot be started twice.
func Start(newCmd func() *exec.Cmd) (*exec.Cmd, error) {
	deadline := time.Now().Add(2 * time.Second)
	for delay := time.Millisecond; ; delay *= 2 {
		cmd := newCmd()
		err := cmd.Start()
		if !errors.Is(err, syscall.ETXTBSY) || time.Now().After(deadline) {
			return cmd, err
		}
		time.Sleep(min(delay, 100*time.Millisecond))
	}
}

// SignalName is the conventional name of a signal, e.g. "SIGKILL".
func SignalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return "signal " + strconv.Itoa(int(s))
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
	syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
	syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ", syscall.SIGSYS: "SIGSYS",
}
