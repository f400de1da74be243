// Package supervisor runs a Plan: it starts the tasks that internal/facts
// decides may start, runs their steps through a Launcher with their retries,
// timeouts and cancellation, and reports Tekton-shaped status as it goes.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/e7763abc/pod-runner/internal/facts"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Why a task's context was cancelled.
var (
	errCancelled       = errors.New("run cancelled")
	errPipelineTimeout = errors.New("pipeline timeout reached")
	errTasksTimeout    = errors.New("tasks timeout reached")
	errFinallyTimeout  = errors.New("finally timeout reached")
	errTaskTimeout     = errors.New("task timeout reached")
	errStepTimeout     = errors.New("step timeout reached")
)

// Supervisor runs one Plan.
type Supervisor struct {
	Plan     *planpb.Plan
	Launcher Launcher
	// Reporter, if set, receives every status change.
	Reporter Reporter
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu        sync.Mutex // serializes reports
	results   *results.Store
	artifacts taskArtifacts // of the tasks that ended

	// Requests from outside (CancelRunFinally, StopRunFinally), in order;
	// wake holds a token while some are pending.
	ctlMu    sync.Mutex
	controls []control
	wakeOnce sync.Once
	wake     chan struct{}
}

// control is a request from outside while the run goes.
type control int

const (
	ctlCancelRunFinally control = iota + 1
	ctlStopRunFinally
)

// CancelRunFinally asks the run to cancel its running tasks and run finally
// (spec.status: CancelledRunFinally). It never blocks and is safe to call
// from any goroutine at any time: a request made before Run starts applies
// from its start, one made after Run returned does nothing.
func (s *Supervisor) CancelRunFinally() { s.request(ctlCancelRunFinally) }

// StopRunFinally asks the run to start no new task and run finally once the
// running ones end (spec.status: StoppedRunFinally). Like CancelRunFinally,
// it never blocks.
func (s *Supervisor) StopRunFinally() { s.request(ctlStopRunFinally) }

func (s *Supervisor) wakeChan() chan struct{} {
	s.wakeOnce.Do(func() { s.wake = make(chan struct{}, 1) })
	return s.wake
}

func (s *Supervisor) request(c control) {
	s.ctlMu.Lock()
	s.controls = append(s.controls, c)
	s.ctlMu.Unlock()
	select {
	case s.wakeChan() <- struct{}{}:
	default: // a token is already there
	}
}

// takeControls returns the pending requests and forgets them.
func (s *Supervisor) takeControls() []control {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	cs := s.controls
	s.controls = nil
	return cs
}

func (s *Supervisor) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// taskEnd is a task's final status, sent by its goroutine.
type taskEnd struct {
	status             *planpb.TaskStatus
	ok                 bool
	cancelled, timeout bool
}

// runningTask is a task goroutine and how to stop it.
type runningTask struct {
	final  bool
	cancel context.CancelCauseFunc
}

// Run executes the plan. Cancelling ctx cancels the run (spec.status:
// Cancelled): running steps are stopped and the status says Cancelled. The
// returned status is final; the error is set only when the run could not be
// attempted at all (invalid plan, volumes could not be prepared).
func (s *Supervisor) Run(ctx context.Context) (*planpb.RunStatus, error) {
	if v := s.Plan.GetVersion(); v != planpb.Version {
		return nil, fmt.Errorf("plan version %d is not supported (want %d)", v, planpb.Version)
	}
	s.results = &results.Store{}
	f, err := facts.New(s.Plan, s.results)
	if err != nil {
		return nil, err
	}
	start := s.now()
	status := &planpb.RunStatus{Name: s.Plan.GetName(), StartTime: timestamppb.New(start)}
	if err := s.Launcher.Prepare(ctx, s.Plan); err != nil {
		return nil, fmt.Errorf("prepare volumes: %w", err)
	}

	r := &run{s: s, facts: f, status: status, start: start,
		ends: make(chan taskEnd), running: map[string]*runningTask{}, taskStatus: map[string]*planpb.TaskStatus{}}
	r.loop(ctx)
	return r.finish(), nil
}

// run is the state of one Run call, owned by its loop goroutine.
type run struct {
	s          *Supervisor
	facts      *facts.Facts
	status     *planpb.RunStatus
	start      time.Time
	ends       chan taskEnd
	running    map[string]*runningTask
	taskStatus map[string]*planpb.TaskStatus
	wg         sync.WaitGroup
	// checkpointed is when a run event last carried every task's status.
	checkpointed time.Time
}

// checkpointEvery is how often at most a run event carries every task's
// status and the skipped tasks (a checkpoint); the others carry the run's
// own fields, the tasks' changes travelling in their own events. So the
// status stream grows linearly with the tasks, not with their square,
// and a reader that starts late still gets the whole status soon.
const checkpointEvery = 10 * time.Second

func (r *run) loop(ctx context.Context) {
	t := r.s.Plan.GetTimeouts()
	pipelineTimer := timer(t.GetPipeline())
	tasksTimer := timer(t.GetTasks())
	var finallyTimer <-chan time.Time
	finallyArmed := false
	cancelled := ctx.Done()
	wake := r.s.wakeChan()
	r.report(&planpb.Event{Kind: &planpb.Event_Run{Run: r.snapshot()}})
	lastCond := r.facts.Condition()
	for {
		// Requests made before Run or since the last round apply before
		// anything else is decided.
		controlled := r.applyControls()
		d := r.facts.Next()
		for _, sk := range d.Skipped {
			r.report(&planpb.Event{Kind: &planpb.Event_Skipped{Skipped: sk}})
		}
		for _, ready := range d.Start {
			r.startTask(ready)
		}
		if r.facts.FinallyStarted() && !finallyArmed {
			finallyArmed = true
			finallyTimer = timer(t.GetFinally())
		}
		// Report the run when something happened to it, its condition included
		// (a cancel or a timeout changes only that).
		cond := r.facts.Condition()
		if controlled || len(d.Start) > 0 || len(d.Skipped) > 0 || !proto.Equal(cond, lastCond) {
			lastCond = cond
			r.report(&planpb.Event{Kind: &planpb.Event_Run{Run: r.runEvent()}})
		}
		if r.facts.Done() {
			return
		}
		select {
		case end := <-r.ends:
			r.ended(end)
		case <-cancelled:
			cancelled = nil
			r.facts.Cancel()
			r.stopTasks(func(*runningTask) bool { return true }, errCancelled)
		case <-pipelineTimer:
			pipelineTimer = nil
			r.facts.PipelineTimedOut()
			r.stopTasks(func(*runningTask) bool { return true }, errPipelineTimeout)
		case <-tasksTimer:
			tasksTimer = nil
			r.facts.TasksTimedOut()
			r.stopTasks(func(rt *runningTask) bool { return !rt.final }, errTasksTimeout)
		case <-finallyTimer:
			finallyTimer = nil
			r.facts.FinallyTimedOut()
			r.stopTasks(func(rt *runningTask) bool { return rt.final }, errFinallyTimeout)
		case <-wake:
		}
	}
}

// applyControls applies the pending requests from outside, and tells
// whether there were any.
func (r *run) applyControls() bool {
	cs := r.s.takeControls()
	for _, c := range cs {
		switch c {
		case ctlCancelRunFinally:
			r.facts.CancelRunFinally()
			r.stopTasks(func(rt *runningTask) bool { return !rt.final }, errCancelled)
		case ctlStopRunFinally:
			r.facts.StopRunFinally()
		}
	}
	return len(cs) > 0
}

// timer fires after d, or never when d is unset or zero (no timeout).
func timer(d interface{ AsDuration() time.Duration }) <-chan time.Time {
	if d == nil {
		return nil
	}
	dur := d.AsDuration()
	if dur <= 0 {
		return nil
	}
	return time.After(dur)
}

func (r *run) startTask(ready *facts.Ready) {
	ctx, cancel := context.WithCancelCause(context.Background())
	r.running[ready.Task.GetName()] = &runningTask{final: ready.Final, cancel: cancel}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.ends <- r.s.runTask(ctx, ready)
	}()
}

func (r *run) ended(end taskEnd) {
	name := end.status.GetName()
	if rt := r.running[name]; rt != nil {
		rt.cancel(nil)
		delete(r.running, name)
	}
	r.taskStatus[name] = end.status
	reason := end.status.GetCondition().GetReason()
	r.facts.Finished(name, end.ok, reason, end.cancelled, end.timeout)
}

// stopTasks cancels the running tasks that match, with a cause that becomes
// their TaskRun reason.
func (r *run) stopTasks(match func(*runningTask) bool, cause error) {
	for _, rt := range r.running {
		if match(rt) {
			rt.cancel(cause)
		}
	}
}

func (r *run) report(e *planpb.Event) {
	if r.s.Reporter == nil {
		return
	}
	e.Time = timestamppb.New(r.s.now())
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.Reporter.Report(e)
}

// runEvent is the run's status for a run event: the whole of it at a
// checkpoint, else without the tasks and skipped tasks, which their own
// events carry.
func (r *run) runEvent() *planpb.RunStatus {
	if now := r.s.now(); now.Sub(r.checkpointed) >= checkpointEvery {
		r.checkpointed = now
		return r.snapshot()
	}
	st := proto.Clone(r.status).(*planpb.RunStatus)
	st.Condition = r.facts.Condition()
	st.Tasks, st.Skipped = nil, nil
	return st
}

// snapshot is the run's status now.
func (r *run) snapshot() *planpb.RunStatus {
	st := proto.Clone(r.status).(*planpb.RunStatus)
	st.Condition = r.facts.Condition()
	st.Tasks = nil
	for _, t := range r.facts.PlanTasks() {
		if ts := r.taskStatus[t.GetName()]; ts != nil {
			st.Tasks = append(st.Tasks, ts)
		}
	}
	st.Skipped = r.facts.Skipped()
	return st
}

func (r *run) finish() *planpb.RunStatus {
	r.wg.Wait()
	if err := r.s.Launcher.Close(); err != nil {
		// Leftover temporary files do not change the run's outcome.
		_ = err
	}
	st := r.snapshot()
	now := r.s.now()
	st.Condition.LastTransitionTime = timestamppb.New(now)
	st.CompletionTime = timestamppb.New(now)
	if r.s.Plan.GetKind() == planpb.RunKind_TASK_RUN && len(st.Tasks) == 1 {
		st.Condition = st.Tasks[0].GetCondition()
	} else {
		st.Results = r.facts.Results()
	}
	r.report(&planpb.Event{Kind: &planpb.Event_Run{Run: st}})
	return st
}
