// Package probe runs a sidecar's Kubernetes probes (readinessProbe,
// startupProbe) as the kubelet would, so that the supervisor starts a
// task's steps only once its sidecars are Ready, as Tekton does. It links no
// Kubernetes code: the Plan carries the probes (planpb.Probe), resolved and
// defaulted by the compiler.
//
// What it keeps of the kubelet's prober (pkg/kubelet/prober): a startup
// probe runs first, and a readiness probe only once the startup probe
// passed; neither runs before initialDelaySeconds after the container
// started, then one probe every periodSeconds, each bounded by
// timeoutSeconds; successThreshold successes in a row make the container
// Ready, failureThreshold failures in a row of a startup probe kill it. A
// readiness probe that keeps failing never kills the container: it stays
// not Ready, and Tekton's steps wait (for the task's timeout).
package probe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// The API server's defaults for a probe's fields left at zero
// (SetDefaults_Probe): the compiler applies them, and Await again for a
// Plan written by hand.
const (
	DefaultTimeout          = 1 * time.Second
	DefaultPeriod           = 10 * time.Second
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// ErrStartupFailed is the error of a startup probe that failed
// failureThreshold times in a row: the kubelet kills such a container
// (and, with a Pod's restartPolicy Never, does not start it again).
var ErrStartupFailed = errors.New("startup probe failed")

// Exec runs an exec probe's command where the sidecar runs (its container
// in pod mode, the host locally), with the sidecar's environment, and
// kills it after timeout. nil is a success (exit code 0).
type Exec func(ctx context.Context, command []string, timeout time.Duration) error

// Clock is the time a prober waits in; nil is the real one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Prober runs the probes of one sidecar.
type Prober struct {
	// Exec runs exec probes; without it an exec probe fails.
	Exec Exec
	// Host is where httpGet, tcpSocket and grpc probes without a host
	// connect. The kubelet uses the Pod's IP; the prober runs in the Pod's
	// network namespace (or on the host locally), where the loopback
	// address reaches the same sockets: DefaultHost when empty.
	Host string
	// Clock, nil: the real one.
	Clock Clock
	// Log, when set, receives a line for each failed probe whose message
	// differs from the previous one's, as the kubelet's events would.
	Log func(format string, args ...any)
}

// DefaultHost is Prober.Host when empty.
const DefaultHost = "127.0.0.1"

func (p *Prober) clock() Clock {
	if p.Clock == nil {
		return realClock{}
	}
	return p.Clock
}

// Await waits until a sidecar whose process started at started is Ready:
// its startup probe passed, then its readiness probe (either may be nil,
// and both: Ready at once). It returns nil once Ready, an error wrapping
// ErrStartupFailed when the startup probe failed failureThreshold times in
// a row (the caller ends the sidecar, as the kubelet kills its container),
// or ctx's cause when ctx ends first: a readiness probe that never passes
// waits for as long as ctx lets it.
func (p *Prober) Await(ctx context.Context, startup, readiness *planpb.Probe, started time.Time) error {
	if startup != nil {
		if err := p.run(ctx, "Startup", startup, started, true); err != nil {
			return err
		}
	}
	if readiness != nil {
		return p.run(ctx, "Readiness", readiness, started, false)
	}
	return nil
}

// run probes until successThreshold successes in a row; killing says that
// failureThreshold failures in a row end it (a startup probe).
func (p *Prober) run(ctx context.Context, kind string, pr *planpb.Probe, started time.Time, killing bool) error {
	clock := p.clock()
	s := schedule(pr)
	next := started.Add(s.initialDelay)
	successes, failures := 0, 0
	lastMsg := ""
	for {
		if err := p.sleepUntil(ctx, next); err != nil {
			return err
		}
		begun := clock.Now()
		err := p.Check(ctx, pr)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err == nil {
			failures = 0
			successes++
			if successes >= s.successThreshold {
				return nil
			}
		} else {
			successes = 0
			failures++
			if msg := err.Error(); msg != lastMsg && p.Log != nil {
				p.Log("%s probe failed: %s", kind, msg)
				lastMsg = msg
			}
			if killing && failures >= s.failureThreshold {
				return fmt.Errorf("%w %d times in a row: %w", ErrStartupFailed, failures, err)
			}
		}
		// One probe per period, from the start of the last one (the
		// kubelet's worker ticks), at once if that one took longer.
		next = begun.Add(s.period)
	}
}

func (p *Prober) sleepUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(p.clock().Now())
	if d <= 0 {
		return nil
	}
	select {
	case <-p.clock().After(d):
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// timing is a probe's schedule, zero fields defaulted.
type timing struct {
	initialDelay, timeout, period      time.Duration
	successThreshold, failureThreshold int
}

func schedule(pr *planpb.Probe) timing {
	t := timing{
		initialDelay:     time.Duration(pr.GetInitialDelaySeconds()) * time.Second,
		timeout:          time.Duration(pr.GetTimeoutSeconds()) * time.Second,
		period:           time.Duration(pr.GetPeriodSeconds()) * time.Second,
		successThreshold: int(pr.GetSuccessThreshold()),
		failureThreshold: int(pr.GetFailureThreshold()),
	}
	if t.timeout <= 0 {
		t.timeout = DefaultTimeout
	}
	if t.period <= 0 {
		t.period = DefaultPeriod
	}
	if t.successThreshold <= 0 {
		t.successThreshold = DefaultSuccessThreshold
	}
	if t.failureThreshold <= 0 {
		t.failureThreshold = DefaultFailureThreshold
	}
	return t
}

// ExecOutcome is how an exec probe's command ended, as Exec returns it: nil
// for exit code 0; else the exit code and the start of its output, which
// the kubelet's events show.
func ExecOutcome(command []string, exitCode int, runErr error, output string) error {
	out := strings.TrimSpace(output)
	if len(out) > 300 {
		out = out[:300] + "…"
	}
	if out != "" {
		out = ": " + out
	}
	switch {
	case runErr != nil:
		return fmt.Errorf("exec %q: %w%s", command, runErr, out)
	case exitCode != 0:
		return fmt.Errorf("exec %q exited with code %d%s", command, exitCode, out)
	}
	return nil
}
