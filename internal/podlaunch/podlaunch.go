// Package podlaunch is the pod's launcher: the supervisor container runs each
// step in its step container, telling that container's `pod-runner step`
// what to run over a Unix socket.
package podlaunch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/internal/stepper"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

var _ supervisor.Launcher = (*Launcher)(nil)

// DefaultGrace is how long a stopped step has between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// helloTimeout bounds how long a new connection may take to say who it is.
const helloTimeout = 10 * time.Second

// Options configure a Launcher; zero values take the pod's layout.
type Options struct {
	// Socket is where the supervisor listens (podlayout.Socket). Close
	// creates stepper.DoneFile beside it.
	Socket string
	// StateDir is the supervisor's mount of the state volume
	// (podlayout.StateDir): each task's results and step directories.
	StateDir string
	// Grace is the time between SIGTERM and SIGKILL when a step is stopped
	// (DefaultGrace).
	Grace time.Duration
	// Log receives the launcher's own messages (os.Stderr).
	Log io.Writer
	// StepView is where a task's step containers see its results, steps
	// and per-step run directories (podlayout.ResultsDir, StepsDir and
	// RunStepsDir, their mounts of the task's volumes, which the supervisor
	// mounts under StateDir). Tests that run steps outside containers point
	// it at StateDir.
	StepView func(task string) StepView
	// Control receives the requests `pod-runner control` sends over the
	// socket (spec.status CancelledRunFinally, StoppedRunFinally); when
	// nil they are refused.
	Control func(steppb.Control_Action) error
}

// StepView is a task's directories as its step containers see them.
type StepView struct {
	Results, Steps string
	// Run holds each step's own directory, by index: read-only but in its
	// own step's container, as Tekton's /tekton/run.
	Run string
}

// Launcher runs steps in step containers. It implements supervisor.Launcher.
type Launcher struct {
	opts Options

	mu         sync.Mutex
	ln         net.Listener
	containers map[string]*container
	// workspaces: per task, each declared workspace's mount path.
	workspaces map[string]map[string]string
	closing    bool
	seq        uint64
	// accepting ends when the accept loop has returned; hellos counts the
	// connections accepted but not yet registered (or refused).
	accepting chan struct{}
	hellos    sync.WaitGroup
}

// container is a step container the supervisor knows of.
type container struct {
	name     string
	expected bool          // a step of the plan runs there
	ready    chan struct{} // closed when it connected
	peer     *peer
	told     bool // sent Exit
}

// New returns a Launcher; it listens from Prepare on.
func New(opts Options) *Launcher {
	if opts.Socket == "" {
		opts.Socket = podlayout.Socket
	}
	if opts.StateDir == "" {
		opts.StateDir = podlayout.StateDir
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.StepView == nil {
		opts.StepView = func(string) StepView {
			return StepView{Results: podlayout.ResultsDir, Steps: podlayout.StepsDir, Run: podlayout.RunStepsDir}
		}
	}
	return &Launcher{opts: opts, containers: map[string]*container{},
		workspaces: map[string]map[string]string{}}
}

// Prepare learns the plan's step containers and listens on the socket.
func (l *Launcher) Prepare(_ context.Context, plan *planpb.Plan) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return errors.New("launcher already prepared")
	}
	for _, t := range plan.AllTasks() {
		ws := map[string]string{}
		for _, d := range t.GetSpec().GetWorkspaces() {
			p := d.GetMountPath()
			if p == "" {
				p = podlayout.WorkspaceDir + "/" + d.GetName() // Tekton's default
			}
			ws[d.GetName()] = p
		}
		l.workspaces[t.GetName()] = ws
		for i, s := range t.GetSpec().GetSteps() {
			l.expect(podlayout.StepContainer(t.GetName(), results.StepName(s.GetName(), i)))
		}
		for i, s := range t.GetSpec().GetSidecars() {
			l.expect(podlayout.SidecarContainer(t.GetName(), results.StepName(s.GetName(), i)))
		}
	}
	// A socket left by an earlier supervisor of this pod (none with
	// restartPolicy Never, but a test may reuse a directory) would make
	// Listen fail.
	_ = os.Remove(l.opts.Socket)
	_ = os.Remove(l.doneFile())
	ln, err := net.Listen("unix", l.opts.Socket)
	if err != nil {
		return fmt.Errorf("listen for step containers: %w", err)
	}
	// A step container may run as any user (its securityContext), and
	// connecting needs write permission on the socket.
	if err := os.Chmod(l.opts.Socket, 0o777); err != nil {
		ln.Close()
		return fmt.Errorf("listen for step containers: %w", err)
	}
	l.ln = ln
	l.accepting = make(chan struct{})
	go l.accept(ln)
	return nil
}

// expect registers the container of a step or sidecar of the plan. Its
// spec sets the variables a step takes from ConfigMaps and Secrets
// (supervisor.Step.EnvRefs, EnvFrom): the kubelet resolved them, and the
// supervisor never sends them. l.mu held.
func (l *Launcher) expect(name string) {
	l.container(name).expected = true
}

func (l *Launcher) doneFile() string {
	return filepath.Join(filepath.Dir(l.opts.Socket), stepper.DoneFile)
}

// container returns the entry of a container, made on first use. l.mu held.
// connected waits for the named step or sidecar container to connect; the
// error is ctx's cause when ctx ends first.
func (l *Launcher) connected(ctx context.Context, name string) (*container, error) {
	l.mu.Lock()
	c := l.container(name)
	l.mu.Unlock()
	select {
	case <-c.ready:
		return c, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (l *Launcher) container(name string) *container {
	c, ok := l.containers[name]
	if !ok {
		c = &container{name: name, ready: make(chan struct{})}
		l.containers[name] = c
	}
	return c
}

// accept registers each step container that connects and says Hello.
func (l *Launcher) accept(ln net.Listener) {
	defer close(l.accepting)
	for {
		conn, err := ln.Accept()
		if err != nil {
			return // closed, or drained, by Wait
		}
		l.hellos.Add(1)
		go l.hello(conn)
	}
}

func (l *Launcher) hello(conn net.Conn) {
	registered := false
	defer func() {
		if !registered {
			l.hellos.Done()
		}
	}()
	r := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(helloTimeout))
	m := &steppb.StepMessage{}
	err := stepper.ReadMsg(r, m)
	if ctl := m.GetControl(); err == nil && ctl != nil {
		l.control(conn, ctl)
		return
	}
	if err != nil || m.GetHello().GetContainer() == "" {
		fmt.Fprintf(l.opts.Log, "pod-runner: a connection said no hello (%v); closing it\n", err)
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	name := m.GetHello().GetContainer()
	p := &peer{name: name, conn: conn, exited: make(chan *steppb.Exited, 4), gone: make(chan struct{})}

	l.mu.Lock()
	c := l.container(name)
	if c.peer != nil {
		l.mu.Unlock()
		fmt.Fprintf(l.opts.Log, "pod-runner: container %q connected twice; closing the second connection\n", name)
		conn.Close()
		return
	}
	if !c.expected {
		fmt.Fprintf(l.opts.Log, "pod-runner: container %q runs no step of this plan\n", name)
	}
	c.peer = p
	close(c.ready)
	if l.closing {
		l.tellExit(c)
	}
	l.mu.Unlock()
	registered = true
	l.hellos.Done()
	p.read(r)
}

// tellExit sends Exit to a connected container. l.mu held.
func (l *Launcher) tellExit(c *container) {
	if c.told || c.peer == nil {
		return
	}
	c.told = true
	if err := c.peer.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Exit{Exit: &steppb.Exit{}}}); err != nil {
		select {
		case <-c.peer.gone: // it ended on its own: nothing to tell
		default:
			fmt.Fprintf(l.opts.Log, "pod-runner: tell container %q to exit: %v\n", c.name, err)
		}
	}
}

// Close tells every connected step container to exit, and those that
// connect later too. It marks the run done (stepper.DoneFile beside the
// socket): a container that has not connected yet — its task was skipped, or
// its image is still being pulled — sees it and exits 0 without waiting for
// anyone. Close does not wait: Wait does. A supervisor that fails before or
// in Prepare calls Close too, so that no step container waits for ever.
func (l *Launcher) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return nil
	}
	l.closing = true
	for _, c := range l.containers {
		l.tellExit(c)
	}
	if err := os.WriteFile(l.doneFile(), nil, 0o644); err != nil {
		return fmt.Errorf("mark the run done: %w", err)
	}
	return nil
}

// drainQueued is how long Wait keeps accepting, once the socket's path is
// gone, the connections the kernel had already queued.
const drainQueued = 50 * time.Millisecond

// Wait, after Close, stops listening and waits until every step container
// that connected has gone (it was told to exit) or ctx ends. A container
// that dials after Wait began finds no socket, sees the done file and exits
// 0; one whose connection was already queued is accepted and told to exit,
// not reset by a closed listener (which would end it with an error).
func (l *Launcher) Wait(ctx context.Context) error {
	l.mu.Lock()
	ln, closing := l.ln, l.closing
	l.mu.Unlock()
	if ln == nil {
		return nil
	}
	if !closing {
		return errors.New("wait before close")
	}
	_ = os.Remove(l.opts.Socket)
	if ul, ok := ln.(*net.UnixListener); ok {
		_ = ul.SetDeadline(time.Now().Add(drainQueued))
	} else {
		ln.Close()
	}
	<-l.accepting
	hellos := make(chan struct{})
	go func() { l.hellos.Wait(); close(hellos) }()
	select {
	case <-hellos:
	case <-ctx.Done(): // a connection that says nothing: its peer is not waited for
	}
	l.mu.Lock()
	var peers []*peer
	for _, c := range l.containers {
		if c.peer != nil {
			peers = append(peers, c.peer)
		}
	}
	l.mu.Unlock()
	var stuck []string
	for _, p := range peers {
		select {
		case <-p.gone:
		case <-ctx.Done():
			stuck = append(stuck, p.name)
		}
	}
	ln.Close()
	if len(stuck) > 0 {
		slices.Sort(stuck)
		return fmt.Errorf("step containers %v have not exited: %w", stuck, ctx.Err())
	}
	return nil
}

// nextSeq numbers Run messages.
func (l *Launcher) nextSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return l.seq
}

// peer is the connection of one step container.
type peer struct {
	name   string
	conn   net.Conn
	wmu    sync.Mutex
	exited chan *steppb.Exited
	gone   chan struct{} // closed when the connection ended
	err    error         // why, set before gone is closed

	probeMu sync.Mutex
	probes  map[uint64]chan *steppb.ProbeResult // by ProbeExec seq
}

func (p *peer) send(m *steppb.SupervisorMessage) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return stepper.WriteMsg(p.conn, m)
}

// read delivers Exited messages until the connection ends.
func (p *peer) read(r *bufio.Reader) {
	defer close(p.gone)
	defer p.conn.Close()
	for {
		m := &steppb.StepMessage{}
		if err := stepper.ReadMsg(r, m); err != nil {
			p.err = err
			return
		}
		if ex := m.GetExited(); ex != nil {
			select {
			case p.exited <- ex:
			default: // nobody waits for that many: a stale answer
			}
		}
		if pr := m.GetProbeResult(); pr != nil {
			p.probeMu.Lock()
			if ch, ok := p.probes[pr.GetSeq()]; ok {
				ch <- pr // buffered, one answer per seq
				delete(p.probes, pr.GetSeq())
			}
			p.probeMu.Unlock()
		}
	}
}

// control hands a Control request to Options.Control and answers it.
func (l *Launcher) control(conn net.Conn, ctl *steppb.Control) {
	defer conn.Close()
	var err error
	switch {
	case l.opts.Control == nil:
		err = errors.New("this supervisor takes no control requests")
	case ctl.GetAction() == steppb.Control_ACTION_UNSPECIFIED:
		err = errors.New("control request names no action")
	default:
		err = l.opts.Control(ctl.GetAction())
	}
	reply := &steppb.ControlReply{}
	if err != nil {
		reply.Error = err.Error()
	}
	fmt.Fprintf(l.opts.Log, "pod-runner: control %s (error: %q)\n", ctl.GetAction(), reply.GetError())
	_ = conn.SetWriteDeadline(time.Now().Add(helloTimeout))
	if werr := stepper.WriteMsg(conn, &steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_ControlReply{ControlReply: reply}}); werr != nil {
		fmt.Fprintf(l.opts.Log, "pod-runner: answer control %s: %v\n", ctl.GetAction(), werr)
	}
}

// ControlSupervisor is the Options.Control of a pod whose supervisor is s:
// each action maps to the Supervisor's request of the same name.
func ControlSupervisor(s *supervisor.Supervisor) func(steppb.Control_Action) error {
	return func(a steppb.Control_Action) error {
		switch a {
		case steppb.Control_CANCEL_RUN_FINALLY:
			s.CancelRunFinally()
		case steppb.Control_STOP_RUN_FINALLY:
			s.StopRunFinally()
		default:
			return fmt.Errorf("unknown control action %v", a)
		}
		return nil
	}
}
