// Package progress prints a run's status events as short human lines.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Printer is a supervisor.Reporter writing one line per task start, end and
// skip, and the run's end.
type Printer struct {
	mu      sync.Mutex
	w       io.Writer
	started map[string]bool
	ended   map[string]bool
}

// New prints to w.
func New(w io.Writer) *Printer {
	return &Printer{w: w, started: map[string]bool{}, ended: map[string]bool{}}
}

// Report prints what e changes, once per transition.
func (p *Printer) Report(e *planpb.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch k := e.GetKind().(type) {
	case *planpb.Event_Task:
		p.task(k.Task)
	case *planpb.Event_Skipped:
		fmt.Fprintf(p.w, "skipped   %s: %s\n", k.Skipped.GetName(), k.Skipped.GetReason())
	case *planpb.Event_Run:
		if c := k.Run.GetCondition(); c.GetStatus() != "Unknown" && k.Run.GetCompletionTime() != nil {
			d := k.Run.GetCompletionTime().AsTime().Sub(k.Run.GetStartTime().AsTime())
			fmt.Fprintf(p.w, "%-9s %s in %s: %s\n", c.GetReason(), k.Run.GetName(), round(d), c.GetMessage())
		}
	}
}

func (p *Printer) task(t *planpb.TaskStatus) {
	if ch := t.GetChild(); ch != nil {
		// A child pipeline's tasks, named CHILD.TASK.
		for _, ct := range ch.GetTasks() {
			p.task(ct)
		}
		for _, sk := range ch.GetSkipped() {
			if key := t.GetName() + "." + sk.GetName(); !p.ended[key] {
				p.ended[key] = true
				fmt.Fprintf(p.w, "skipped   %s: %s\n", key, sk.GetReason())
			}
		}
	}
	c := t.GetCondition()
	key := fmt.Sprintf("%s/%d", t.GetName(), len(t.GetRetries()))
	switch {
	case c.GetStatus() == "Unknown" && !p.started[key]:
		p.started[key] = true
		if n := len(t.GetRetries()); n > 0 {
			fmt.Fprintf(p.w, "retry %d   %s\n", n, t.GetName())
		} else {
			fmt.Fprintf(p.w, "started   %s\n", t.GetName())
		}
	case c.GetStatus() != "Unknown" && !p.ended[t.GetName()] && t.GetCompletionTime() != nil:
		p.ended[t.GetName()] = true
		d := t.GetCompletionTime().AsTime().Sub(t.GetStartTime().AsTime())
		line := fmt.Sprintf("%-9s %s (%s)", c.GetReason(), t.GetName(), round(d))
		if c.GetStatus() == "False" {
			line += ": " + c.GetMessage()
		}
		fmt.Fprintln(p.w, line)
	}
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Microsecond * 100)
}
