// Package podmanrun runs a compiled run's Pod under `podman kube play` and
// follows it as `pod-runner run` follows host processes: the supervisor's
// status events become the same progress lines and final status, each
// step container's output is printed with its [task/step] prefix. So a run
// can use its steps' real images on a machine without a cluster.
package podmanrun

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/loglines"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Options say how to run the Pod.
type Options struct {
	// Podman is the podman command ("podman"); its configuration comes from
	// the environment (CONTAINERS_CONF, …), as podman's own.
	Podman string
	// Reporter hears every status event the supervisor publishes.
	Reporter supervisor.Reporter
	// Output receives the steps' lines, prefixed; and podman's own.
	Output io.Writer
	// Keep leaves the Pod and its volumes after the run.
	Keep bool
	// StopGrace is how long a cancelled run's containers get after SIGTERM
	// (10 s).
	StopGrace time.Duration
}

// Run plays the Pod (with the ConfigMaps and Secrets it needs, in objects)
// and follows it to its end; ctx's end cancels the run as a Pod's deletion
// does (SIGTERM to its containers). It returns the final status the
// supervisor published.
func Run(ctx context.Context, pod *corev1.Pod, objects []any, plan *planpb.Plan, opts Options) (*planpb.RunStatus, error) {
	if opts.Podman == "" {
		opts.Podman = "podman"
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 10 * time.Second
	}
	pod = pod.DeepCopy()
	SplitSubPaths(pod)
	docs, err := documents(pod, objects)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pod-runner-podman-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(file, docs, 0o600); err != nil {
		return nil, err
	}
	// podman kube play builds an image from a directory of the working
	// directory named after it: run podman where there is none.
	r := &runner{opts: opts, pod: pod, prefixes: prefixes(plan), dir: dir}
	if out, err := r.podman(context.Background(), "kube", "play", file); err != nil {
		r.remove(file)
		return nil, fmt.Errorf("podman kube play: %w\n%s", err, out)
	}
	if !opts.Keep {
		defer r.remove(file)
	}
	return r.follow(ctx)
}

type runner struct {
	opts     Options
	pod      *corev1.Pod
	prefixes map[string]string // container → "[task/step] "
	dir      string            // podman's working directory
	outMu    sync.Mutex
}

func (r *runner) podman(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, r.opts.Podman, args...)
	cmd.Dir = r.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// container is podman's name for one of the Pod's containers.
func (r *runner) container(name string) string { return r.pod.Name + "-" + name }

// follow streams every step container's log and the supervisor's, until
// the supervisor's ends; then it waits (briefly) for the steps' to end.
func (r *runner) follow(ctx context.Context) (*planpb.RunStatus, error) {
	var steps sync.WaitGroup
	for _, c := range r.pod.Spec.Containers {
		if c.Name == podlayout.SupervisorContainer {
			continue
		}
		steps.Add(1)
		go func() {
			defer steps.Done()
			r.copyLines(c.Name)
		}()
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// As the Pod's deletion: the supervisor cancels the run
			// and publishes it; the steps leave it to the supervisor.
			_, _ = r.podman(context.Background(), "pod", "stop", "-t", fmt.Sprint(int(r.opts.StopGrace.Seconds())), r.pod.Name)
		case <-stopped:
		}
	}()
	st, err := r.supervisor()
	close(stopped)
	done := make(chan struct{})
	go func() { steps.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.opts.StopGrace + 5*time.Second):
	}
	return st, err
}

// supervisor follows the supervisor's log: events go to the Reporter, its
// other lines to Output.
func (r *runner) supervisor() (*planpb.RunStatus, error) {
	cmd := exec.Command(r.opts.Podman, "logs", "-f", r.container(podlayout.SupervisorContainer))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("podman logs: %w", err)
	}
	stream := &sidecar.Stream{}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var bad error
	for sc.Scan() {
		line := sc.Text()
		e, ok, err := sidecar.ParseLine(line)
		switch {
		case err != nil && bad == nil:
			bad = err
		case ok:
			stream.Fold(e)
			if r.opts.Reporter != nil {
				r.opts.Reporter.Report(e)
			}
		default:
			r.print("[pod-runner] ", line)
		}
	}
	waitErr := cmd.Wait()
	if st := stream.Final; st != nil {
		return st, nil
	}
	return nil, fmt.Errorf("the supervisor ended without a final status (podman logs: %v): %w", waitErr, errors.Join(bad, sc.Err()))
}

// copyLines prints one step container's log as it is written. `podman
// logs -f` of a container that has not started yet ends at once, so it is
// started again, past what was printed, until the container has exited.
func (r *runner) copyLines(container string) {
	prefix := r.prefixes[container]
	if prefix == "" {
		prefix = "[" + container + "] "
	}
	var printed int64
	for {
		exited := r.exited(container)
		n, err := r.copyFrom(container, prefix, printed, !exited)
		printed = n
		if exited {
			if err != nil {
				r.print(prefix, fmt.Sprintf("(podman logs: %v)", err))
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited tells whether podman reports the container exited (or gone).
func (r *runner) exited(container string) bool {
	out, err := r.podman(context.Background(), "inspect", "--format", "{{.State.Status}}", r.container(container))
	return err != nil || strings.TrimSpace(out) == "exited" || strings.TrimSpace(out) == "stopped"
}

// copyFrom prints the container's log past byte from, line by line, and
// returns the offset after the last line printed; a last line without its
// newline is printed only when not following.
func (r *runner) copyFrom(container, prefix string, from int64, follow bool) (int64, error) {
	args := []string{"logs", r.container(container)}
	if follow {
		args = []string{"logs", "-f", r.container(container)}
	}
	cmd := exec.Command(r.opts.Podman, args...)
	cmd.Dir = r.dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		return from, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return from, err
	}
	n, err := loglines.From(out, from, !follow, func(s string) { r.print(prefix, s) })
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	return n, err
}

func (r *runner) print(prefix, line string) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.opts.Output, "%s%s\n", prefix, line)
}

// remove deletes the Pod, its containers and the volumes kube play made
// for it (podman 4.3's kube down leaves them).
func (r *runner) remove(file string) {
	_, _ = r.podman(context.Background(), "kube", "down", file)
	var names []string
	for _, v := range r.pod.Spec.Volumes {
		switch {
		case v.EmptyDir != nil:
			names = append(names, v.Name)
		case v.ConfigMap != nil:
			names = append(names, v.ConfigMap.Name)
		}
	}
	if len(names) > 0 {
		_, _ = r.podman(context.Background(), append([]string{"volume", "rm", "-f"}, names...)...)
	}
}

// prefixes are the [task/step] prefixes of the Plan's containers, as the
// host-process launcher prints them.
func prefixes(plan *planpb.Plan) map[string]string {
	m := map[string]string{}
	for _, t := range plan.AllTasks() {
		for _, s := range t.GetSpec().GetSteps() {
			m[podlayout.StepContainer(t.GetName(), s.GetName())] = "[" + t.GetName() + "/" + s.GetName() + "] "
		}
		for _, s := range t.GetSpec().GetSidecars() {
			m[podlayout.SidecarContainer(t.GetName(), s.GetName())] = "[" + t.GetName() + "/sidecar-" + s.GetName() + "] "
		}
	}
	return m
}

// documents is the multi-document YAML podman 4.3 reads (it reads no v1
// List): the objects, then the Pod.
func documents(pod *corev1.Pod, objects []any) ([]byte, error) {
	var out bytes.Buffer
	for _, o := range append(objects, pod) {
		y, err := yaml.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("encode %T: %w", o, err)
		}
		out.WriteString("---\n")
		out.Write(y)
	}
	return out.Bytes(), nil
}
