package probe

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// skipClock is a fake clock whose every wait ends at once, moving its time
// on by the wait: a schedule of minutes runs in microseconds, and what it
// waited is exact.
type skipClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *skipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *skipClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *skipClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func execProbe(p *planpb.Probe, command ...string) *planpb.Probe {
	p.Action = &planpb.Probe_Exec{Exec: &planpb.ExecAction{Command: command}}
	return p
}

// TestAwaitSchedule runs Await against scripted exec outcomes: when each
// probe runs (seconds after the sidecar started), and how Await ends.
func TestAwaitSchedule(t *testing.T) {
	errProbe := errors.New("not yet")
	errGaveUp := errors.New("test gave up")
	for _, c := range []struct {
		name               string
		startup, readiness *planpb.Probe
		// outcomes of successive exec probes, by command: "s" startup,
		// "r" readiness; true is a success. Past the end: failure.
		outcomes map[string][]bool
		took     time.Duration // each probe's duration
		wantAt   []string      // probe command @ seconds after the start
		wantErr  error
	}{
		{
			name:      "no probe: ready at once",
			readiness: nil, startup: nil,
			wantAt: nil,
		},
		{
			name:      "readiness defaults: a probe at once, then every 10 s",
			readiness: execProbe(&planpb.Probe{}, "r"),
			outcomes:  map[string][]bool{"r": {false, false, true}},
			wantAt:    []string{"r@0", "r@10", "r@20"},
		},
		{
			name:      "initial delay and period",
			readiness: execProbe(&planpb.Probe{InitialDelaySeconds: 5, PeriodSeconds: 2}, "r"),
			outcomes:  map[string][]bool{"r": {false, true}},
			wantAt:    []string{"r@5", "r@7"},
		},
		{
			name:      "the period counts from each probe's start",
			readiness: execProbe(&planpb.Probe{PeriodSeconds: 3}, "r"),
			outcomes:  map[string][]bool{"r": {false, true}},
			took:      time.Second,
			wantAt:    []string{"r@0", "r@3"},
		},
		{
			name:      "a probe longer than the period: the next one at once",
			readiness: execProbe(&planpb.Probe{PeriodSeconds: 1}, "r"),
			outcomes:  map[string][]bool{"r": {false, true}},
			took:      2 * time.Second,
			wantAt:    []string{"r@0", "r@2"},
		},
		{
			name:      "successThreshold: successes in a row",
			readiness: execProbe(&planpb.Probe{PeriodSeconds: 1, SuccessThreshold: 2}, "r"),
			outcomes:  map[string][]bool{"r": {true, false, true, true}},
			wantAt:    []string{"r@0", "r@1", "r@2", "r@3"},
		},
		{
			name:      "a failing readiness probe never gives up, whatever its failureThreshold",
			readiness: execProbe(&planpb.Probe{PeriodSeconds: 1, FailureThreshold: 1}, "r"),
			outcomes:  map[string][]bool{"r": {false, false, false, false}},
			wantAt:    []string{"r@0", "r@1", "r@2", "r@3", "r@4"},
			wantErr:   errGaveUp, // the context the test ends after five probes
		},
		{
			name:    "startup failureThreshold: failures in a row",
			startup: execProbe(&planpb.Probe{PeriodSeconds: 1, FailureThreshold: 3}, "s"),
			// A success ends the startup probe at once, so only failures
			// count here.
			outcomes: map[string][]bool{"s": {false, false, false}},
			wantAt:   []string{"s@0", "s@1", "s@2"},
			wantErr:  ErrStartupFailed,
		},
		{
			name:     "startup default failureThreshold is 3",
			startup:  execProbe(&planpb.Probe{PeriodSeconds: 1}, "s"),
			outcomes: map[string][]bool{},
			wantAt:   []string{"s@0", "s@1", "s@2"},
			wantErr:  ErrStartupFailed,
		},
		{
			name:      "readiness starts once startup passed, its delay from the container's start",
			startup:   execProbe(&planpb.Probe{PeriodSeconds: 4, FailureThreshold: 5}, "s"),
			readiness: execProbe(&planpb.Probe{InitialDelaySeconds: 2, PeriodSeconds: 3}, "r"),
			outcomes:  map[string][]bool{"s": {false, true}, "r": {false, true}},
			wantAt:    []string{"s@0", "s@4", "r@4", "r@7"},
		},
		{
			name:      "readiness delay not over when startup passed",
			startup:   execProbe(&planpb.Probe{PeriodSeconds: 1}, "s"),
			readiness: execProbe(&planpb.Probe{InitialDelaySeconds: 6}, "r"),
			outcomes:  map[string][]bool{"s": {true}, "r": {true}},
			wantAt:    []string{"s@0", "r@6"},
		},
		{
			name:      "a failed startup probe runs no readiness probe",
			startup:   execProbe(&planpb.Probe{PeriodSeconds: 1, FailureThreshold: 1}, "s"),
			readiness: execProbe(&planpb.Probe{}, "r"),
			outcomes:  map[string][]bool{"r": {true}},
			wantAt:    []string{"s@0"},
			wantErr:   ErrStartupFailed,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := &skipClock{now: start}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			var at []string
			next := map[string]int{}
			p := &Prober{Clock: clock, Exec: func(_ context.Context, command []string, timeout time.Duration) error {
				if timeout != DefaultTimeout {
					t.Errorf("exec timeout %v, want the default %v", timeout, DefaultTimeout)
				}
				name := command[0]
				at = append(at, name+"@"+strconv.Itoa(int(clock.Now().Sub(start)/time.Second)))
				clock.advance(c.took)
				if len(at) >= 5 {
					cancel(errGaveUp)
				}
				i := next[name]
				next[name]++
				if i < len(c.outcomes[name]) && c.outcomes[name][i] {
					return nil
				}
				return errProbe
			}}
			err := p.Await(ctx, c.startup, c.readiness, start)
			if !slices.Equal(at, c.wantAt) {
				t.Errorf("probes ran at %v, want %v", at, c.wantAt)
			}
			switch {
			case c.wantErr == nil && err != nil:
				t.Errorf("Await: %v, want Ready", err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Errorf("Await: %v, want %v", err, c.wantErr)
			}
			if errors.Is(err, ErrStartupFailed) && !errors.Is(err, errProbe) {
				t.Errorf("a failed startup probe's error %v does not say why the probe failed", err)
			}
		})
	}
}

// TestAwaitRealTime: the real clock waits the delay, and a context that
// ends while Await sleeps ends it with its cause.
func TestAwaitRealTime(t *testing.T) {
	var ran []time.Duration
	start := time.Now()
	p := &Prober{Exec: func(context.Context, []string, time.Duration) error {
		ran = append(ran, time.Since(start))
		return errors.New("never ready")
	}}
	cause := errors.New("task timeout")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 1500*time.Millisecond, cause)
	defer cancel()
	err := p.Await(ctx, nil, execProbe(&planpb.Probe{InitialDelaySeconds: 1}, "x"), start)
	if !errors.Is(err, cause) {
		t.Fatalf("Await: %v, want the context's cause", err)
	}
	if len(ran) != 1 || ran[0] < time.Second {
		t.Errorf("probes ran at %v, want one, after the 1 s initial delay", ran)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Await returned %v after the context ended at 1.5 s", took)
	}
}

func TestLogOnChange(t *testing.T) {
	var lines []string
	results := []error{errors.New("a"), errors.New("a"), errors.New("b"), nil}
	i := 0
	p := &Prober{Clock: &skipClock{}, Log: func(format string, args ...any) {
		lines = append(lines, format+":"+args[0].(string)+":"+args[1].(string))
	}, Exec: func(context.Context, []string, time.Duration) error {
		err := results[i]
		i++
		return err
	}}
	if err := p.Await(context.Background(), nil, execProbe(&planpb.Probe{}, "x"), time.Time{}); err != nil {
		t.Fatalf("Await: %v", err)
	}
	want := []string{"%s probe failed: %s:Readiness:a", "%s probe failed: %s:Readiness:b"}
	if !slices.Equal(lines, want) {
		t.Errorf("logged %q, want %q", lines, want)
	}
}
