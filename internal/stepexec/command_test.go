package stepexec

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestRunCommand(t *testing.T) {
	env := []string{"PATH=" + os.Getenv("PATH"), "PROBE_VAR=from-env"}
	dir := t.TempDir()
	for _, c := range []struct {
		name       string
		argv       []string
		timeout    time.Duration
		wantCode   int
		wantOutput string // a prefix of the output
		wantErr    string
		wantLen    int // when set, the output's exact length
	}{
		{name: "success", argv: []string{"sh", "-c", "echo ok"}, wantCode: 0, wantOutput: "ok\n"},
		{name: "exit code", argv: []string{"sh", "-c", "echo no >&2; exit 3"}, wantCode: 3, wantOutput: "no\n"},
		{name: "env and dir", argv: []string{"sh", "-c", `echo "$PROBE_VAR $(pwd)"`}, wantOutput: "from-env " + dir + "\n"},
		{name: "signalled", argv: []string{"sh", "-c", "kill -TERM $$"}, wantCode: 143},
		{name: "not found", argv: []string{"no-such-probe-command"}, wantErr: `"no-such-probe-command" not found`},
		{name: "no command", wantErr: "no command"},
		{name: "output capped", argv: []string{"sh", "-c", "head -c 20000 /dev/zero"}, wantLen: MaxCommandOutput},
		{name: "timeout", argv: []string{"sh", "-c", "sleep 30 & wait"}, timeout: 200 * time.Millisecond,
			wantCode: 137, wantErr: "deadline exceeded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			if c.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.timeout)
				defer cancel()
			}
			start := time.Now()
			res, err := RunCommand(ctx, Command{Argv: c.argv, Env: env, Dir: dir})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, c.wantErr)
				}
			} else if err != nil {
				t.Fatalf("RunCommand: %v", err)
			}
			if res.Code != c.wantCode {
				t.Errorf("exit code %d, want %d", res.Code, c.wantCode)
			}
			if !strings.HasPrefix(res.Output, c.wantOutput) {
				t.Errorf("output %q, want it to start with %q", res.Output, c.wantOutput)
			}
			if c.wantLen > 0 && len(res.Output) != c.wantLen {
				t.Errorf("output of %d bytes, want %d", len(res.Output), c.wantLen)
			}
			if c.timeout > 0 && time.Since(start) > 5*time.Second {
				t.Errorf("a command past its timeout took %v to end: its group was not killed", time.Since(start))
			}
		})
	}
}

func TestRunCommandTimeoutIsCause(t *testing.T) {
	cause := errors.New("probe timed out")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 100*time.Millisecond, cause)
	defer cancel()
	_, err := RunCommand(ctx, Command{Argv: []string{"sleep", "10"}, Env: []string{"PATH=" + os.Getenv("PATH")}})
	if !errors.Is(err, cause) {
		t.Fatalf("error %v, want the context's cause", err)
	}
}
