// Package sidecar publishes a pod run's status where a controller can read it
// through the Kubernetes API alone, and reads it back: every supervisor event
// as a line of the supervisor container's log, and a compact final status as
// its termination message.
package sidecar

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// LinePrefix starts every event line in the supervisor's log; the rest of
// the line is the planpb.Event in protojson, on one line. Other lines (the
// supervisor's own messages) are left alone by Read.
const LinePrefix = "pod-runner.event/v1 "

// MaxTermination is Kubernetes' cap on a container's termination message.
const MaxTermination = 4096

// Publisher writes events as log lines. It implements supervisor.Reporter.
type Publisher struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// NewPublisher writes to w (the supervisor's stdout).
func NewPublisher(w io.Writer) *Publisher { return &Publisher{w: w} }

// Report writes one event line. A write error is kept for Err: the run goes
// on, its termination message still tells the outcome.
func (p *Publisher) Report(e *planpb.Event) {
	b, err := protojson.MarshalOptions{}.Marshal(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		line := make([]byte, 0, len(LinePrefix)+len(b)+1)
		line = append(append(append(line, LinePrefix...), b...), '\n')
		_, err = p.w.Write(line)
	}
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("publish event: %w", err)
	}
}

// Err is the first error writing an event.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Summary is the compact form of a final status that fits a termination
// message: the run's condition and times, each task's name, condition and
// times, the skipped tasks. Results, steps and params travel in the log
// lines. Messages are shortened until the whole fits MaxTermination.
func Summary(st *planpb.RunStatus) []byte {
	s := &planpb.RunStatus{Name: st.GetName(), Condition: st.GetCondition(), StartTime: st.GetStartTime(), CompletionTime: st.GetCompletionTime()}
	for _, t := range st.GetTasks() {
		s.Tasks = append(s.Tasks, &planpb.TaskStatus{Name: t.GetName(), Finally: t.GetFinally(),
			Condition: proto.Clone(t.GetCondition()).(*planpb.Condition), StartTime: t.GetStartTime(), CompletionTime: t.GetCompletionTime()})
	}
	for _, sk := range st.GetSkipped() {
		s.Skipped = append(s.Skipped, &planpb.SkippedTask{Name: sk.GetName(), Reason: sk.GetReason()})
	}
	for limit := 1024; ; limit /= 2 {
		b, _ := protojson.Marshal(s)
		if len(b) <= MaxTermination {
			return b
		}
		if limit < 8 {
			// Too many tasks even without messages: keep the run's
			// condition; the log lines have the rest.
			s.Tasks, s.Skipped = nil, nil
			b, _ = protojson.Marshal(s)
			return b
		}
		for _, t := range s.Tasks {
			if c := t.GetCondition(); c != nil {
				c.Message = truncate(c.GetMessage(), limit)
			}
		}
		s.Condition = proto.Clone(s.GetCondition()).(*planpb.Condition)
		s.Condition.Message = truncate(s.Condition.GetMessage(), 2*limit)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// WriteTermination writes the final status's Summary to path (the
// container's terminationMessagePath).
func WriteTermination(path string, st *planpb.RunStatus) error {
	if err := os.WriteFile(path, Summary(st), 0o644); err != nil {
		return fmt.Errorf("write termination message: %w", err)
	}
	return nil
}

// FailurePrefix starts the termination message of a supervisor that could
// not run the plan (bad plan, setup error, panic); the rest is plain text.
const FailurePrefix = "pod-runner supervise failed: "

// WriteFailure writes a failure as the termination message.
func WriteFailure(path, msg string) error {
	b := []byte(truncate(FailurePrefix+msg, MaxTermination-4))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write termination message: %w", err)
	}
	return nil
}

// ParseTermination reads a termination message: the summary of a run that
// ended, or the error of a supervisor that failed.
func ParseTermination(msg string) (*planpb.RunStatus, error) {
	if text, ok := strings.CutPrefix(msg, FailurePrefix); ok {
		return nil, errors.New(text)
	}
	st := &planpb.RunStatus{}
	if err := protojson.Unmarshal([]byte(msg), st); err != nil {
		return nil, fmt.Errorf("termination message is neither a status nor a failure: %w", err)
	}
	return st, nil
}

// maxDetail bounds what TerminationDetail gives of a log's tail.
const maxDetail = 1024

// TerminationDetail is what a supervisor's termination message tells of a
// run it did not finish, for a person: the failure it wrote, or, when the
// kubelet fell back to its log's tail (it was killed), the last lines
// that are not status events; empty for a final status or nothing to say.
func TerminationDetail(msg string) string {
	if text, ok := strings.CutPrefix(msg, FailurePrefix); ok {
		return text
	}
	if _, err := ParseTermination(msg); err == nil {
		return ""
	}
	var keep []string
	for i, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		event := strings.Contains(line, "event/v1 {") || strings.Contains(line, `{"time":`) ||
			// The tail's first line may be an event cut anywhere.
			(i == 0 && strings.ContainsAny(line, "{}"))
		if line != "" && !event {
			keep = append(keep, line)
		}
	}
	out := strings.Join(keep, "\n")
	if len(out) > maxDetail {
		out = "…" + out[len(out)-maxDetail:]
	}
	return out
}

// Stream is the run's status folded from a supervisor's events as they are
// read: the last run-level status, each task's latest status and the
// skipped tasks. It keeps nothing else, so a follower's memory is linear
// in the run's tasks, whatever the number of events.
type Stream struct {
	// Events is how many events were read.
	Events int
	// Final is the run's final status (from the last event, which carries
	// results), or nil when the log ends before it: the supervisor is still
	// running, or died.
	Final *planpb.RunStatus

	run     *planpb.RunStatus // the last run event's own fields
	tasks   map[string]*planpb.TaskStatus
	order   []string // tasks in the order first seen
	skipped map[string]bool
	skips   []*planpb.SkippedTask
}

// maxLine bounds one log line: an event carries a task's results.
const maxLine = 64 << 20

// Read reads a supervisor's log (kubectl logs, podman logs), keeps the event
// lines and skips everything else.
func Read(r io.Reader) (*Stream, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	s := &Stream{}
	for n := 1; sc.Scan(); n++ {
		if _, err := s.Add(sc.Text()); err != nil {
			return s, fmt.Errorf("log line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("read log: %w", err)
	}
	return s, nil
}

// Add reads one log line into the stream, for a reader that follows the log
// as it is written. It reports whether the line was an event.
func (s *Stream) Add(line string) (bool, error) {
	e, ok, err := ParseLine(line)
	if ok {
		s.Fold(e)
	}
	return ok, err
}

// ParseLine reads one log line: the event it carries, if it is an event
// line (ok).
func ParseLine(line string) (e *planpb.Event, ok bool, err error) {
	// A log reader may prefix each line with a timestamp
	// (kubectl logs --timestamps): find the prefix anywhere.
	i := strings.Index(line, LinePrefix)
	if i < 0 {
		return nil, false, nil
	}
	e = &planpb.Event{}
	if err := protojson.Unmarshal([]byte(line[i+len(LinePrefix):]), e); err != nil {
		return nil, false, fmt.Errorf("event: %w", err)
	}
	return e, true, nil
}

// Fold lays one event over the status so far. A run event carries the
// run's own fields and, at a checkpoint or the end, every task's status.
func (s *Stream) Fold(e *planpb.Event) {
	s.Events++
	switch k := e.GetKind().(type) {
	case *planpb.Event_Run:
		run := proto.Clone(k.Run).(*planpb.RunStatus)
		for _, t := range run.GetTasks() {
			s.task(t)
		}
		for _, sk := range run.GetSkipped() {
			s.skip(sk)
		}
		run.Tasks, run.Skipped = nil, nil
		s.run = run
		if run.GetCompletionTime() != nil {
			s.Final = k.Run
		}
	case *planpb.Event_Task:
		s.task(k.Task)
	case *planpb.Event_Skipped:
		s.skip(k.Skipped)
	}
}

func (s *Stream) task(t *planpb.TaskStatus) {
	if s.tasks == nil {
		s.tasks = map[string]*planpb.TaskStatus{}
	}
	if _, ok := s.tasks[t.GetName()]; !ok {
		s.order = append(s.order, t.GetName())
	}
	s.tasks[t.GetName()] = t
}

func (s *Stream) skip(sk *planpb.SkippedTask) {
	if s.skipped == nil {
		s.skipped = map[string]bool{}
	}
	if !s.skipped[sk.GetName()] {
		s.skipped[sk.GetName()] = true
		s.skips = append(s.skips, sk)
	}
}

// Current is the latest status the events tell: the last run status, with
// each task's latest status and every skipped task. It is the final status
// when the run ended, and what is known when it did not.
func (s *Stream) Current() *planpb.RunStatus {
	if s.Final != nil {
		return s.Final
	}
	if s.run == nil && len(s.skips) == 0 {
		return nil
	}
	st := &planpb.RunStatus{}
	if s.run != nil {
		st = proto.Clone(s.run).(*planpb.RunStatus)
	}
	st.Skipped = append([]*planpb.SkippedTask(nil), s.skips...)
	for _, name := range s.order {
		st.Tasks = append(st.Tasks, s.tasks[name])
	}
	return st
}
