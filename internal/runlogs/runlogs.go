// Package runlogs prints the step logs of a PipelineRun's TaskRuns, or of
// one TaskRun, in the format of `tkn pipelinerun logs` and `tkn taskrun
// logs`, each TaskRun with its own steps only. tkn shows every container of
// a TaskRun's Pod as its steps; in a pod-runner Pod, where every TaskRun's
// steps are containers of one Pod, that would show every task's output
// under every TaskRun. A TaskRun's own containers are the ones its status
// names (status.steps[].container, status.sidecars[].container).
package runlogs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/e7763abc/pod-runner/internal/loglines"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
)

// Source reads runs and container logs (the API server, in Kube).
type Source interface {
	PipelineRun(ctx context.Context, namespace, name string) (*v1.PipelineRun, error)
	TaskRun(ctx context.Context, namespace, name string) (*v1.TaskRun, error)
	// Log is a container's log from its start; with follow, it goes on
	// until the container ends or ctx is done.
	Log(ctx context.Context, namespace, pod, container string, follow bool) (io.ReadCloser, error)
}

// Options say what to print and how.
type Options struct {
	Namespace string
	// Tasks keeps the TaskRuns of these pipeline tasks only (all if empty).
	Tasks []string
	// Follow waits for the run's TaskRuns and streams their steps' output
	// as it comes, until the run is done.
	Follow bool
	// Poll is how often a followed run's status is read (250 ms).
	Poll time.Duration
	Out  io.Writer // the steps' lines
	Err  io.Writer // failures, as tkn prints them
}

// Reader prints logs from Source.
type Reader struct {
	Source Source
	Options
	mu sync.Mutex // serialises whole lines on Out and Err
}

// line is one line of output, or a step's end (eof), as tkn's Writer prints.
func (r *Reader) line(prefix, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.Out, "%s%s\n", prefix, text)
}

func (r *Reader) failure(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.Err, format+"\n", args...)
}

func (r *Reader) poll() time.Duration {
	if r.Poll > 0 {
		return r.Poll
	}
	return 250 * time.Millisecond
}

// PipelineRun prints the logs of the run's TaskRuns in the Pipeline's
// order (tasks, then finally; a matrix's TaskRuns in its order), as `tkn
// pipelinerun logs` does, prefixed "[task : step] ".
func (r *Reader) PipelineRun(ctx context.Context, name string) error {
	pr, err := r.Source.PipelineRun(ctx, r.Namespace, name)
	if err != nil {
		return err
	}
	if !r.Follow {
		runs := ordered(pr)
		if len(r.Tasks) > 0 {
			runs = slices.DeleteFunc(runs, func(c v1.ChildStatusReference) bool { return !slices.Contains(r.Tasks, c.PipelineTaskName) })
			if len(runs) == 0 {
				return fmt.Errorf("tasks %v have no TaskRun in PipelineRun %s", r.Tasks, name)
			}
		}
		for _, c := range runs {
			if err := r.taskRun(ctx, c.Name, c.PipelineTaskName, true); err != nil {
				r.failure("failed to get logs for task %s : %v", c.PipelineTaskName, err)
			}
		}
		r.runFailure(pr)
		return nil
	}
	var wg sync.WaitGroup
	seen := map[string]bool{}
	for {
		for _, c := range ordered(pr) {
			if seen[c.Name] || (len(r.Tasks) > 0 && !slices.Contains(r.Tasks, c.PipelineTaskName)) {
				continue
			}
			seen[c.Name] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.taskRun(ctx, c.Name, c.PipelineTaskName, true); err != nil {
					r.failure("failed to get logs for task %s : %v", c.PipelineTaskName, err)
				}
			}()
		}
		if pr.IsDone() {
			break
		}
		if err := sleep(ctx, r.poll()); err != nil {
			wg.Wait()
			return err
		}
		if pr, err = r.Source.PipelineRun(ctx, r.Namespace, name); err != nil {
			wg.Wait()
			return err
		}
	}
	wg.Wait()
	r.runFailure(pr)
	return nil
}

// TaskRun prints one TaskRun's logs as `tkn taskrun logs` does, prefixed
// "[step] ".
func (r *Reader) TaskRun(ctx context.Context, name string) error {
	return r.taskRun(ctx, name, "", false)
}

func (r *Reader) runFailure(pr *v1.PipelineRun) {
	if c := pr.Status.GetCondition("Succeeded"); c != nil && c.IsFalse() {
		r.failure("%s", c.Message)
	}
}

// ordered are the run's TaskRuns in its Pipeline's order, as tkn sorts
// them (SortTasksBySpecOrder); ones it cannot place keep their place in
// childReferences, after.
func ordered(pr *v1.PipelineRun) []v1.ChildStatusReference {
	var refs []v1.ChildStatusReference
	for _, c := range pr.Status.ChildReferences {
		if c.Kind == "TaskRun" || c.Kind == "" {
			refs = append(refs, c)
		}
	}
	spec := pr.Status.PipelineSpec
	if spec == nil {
		spec = pr.Spec.PipelineSpec
	}
	if spec == nil {
		return refs
	}
	rank := map[string]int{}
	for i, t := range slices.Concat(spec.Tasks, spec.Finally) {
		rank[t.Name] = i
	}
	pos := func(c v1.ChildStatusReference) int {
		if i, ok := rank[c.PipelineTaskName]; ok {
			return i
		}
		return len(rank)
	}
	slices.SortStableFunc(refs, func(a, b v1.ChildStatusReference) int { return pos(a) - pos(b) })
	return refs
}

// container is one of a TaskRun's containers, named as tkn names it.
type container struct {
	name, container string
	sidecar         bool
}

// containers are the TaskRun's step containers, then its sidecars', the
// order of a Tekton TaskRun's Pod; tkn strips "step-" from a container's
// name and keeps "sidecar-".
func containers(tr *v1.TaskRun) []container {
	var cs []container
	for _, s := range tr.Status.Steps {
		cs = append(cs, container{name: s.Name, container: s.Container})
	}
	for _, s := range tr.Status.Sidecars {
		cs = append(cs, container{name: "sidecar-" + s.Name, container: s.Container, sidecar: true})
	}
	return cs
}

// state is the container's state in the TaskRun's status.
func state(tr *v1.TaskRun, c container) (corev1.ContainerState, bool) {
	if c.sidecar {
		for _, s := range tr.Status.Sidecars {
			if s.Container == c.container {
				return corev1.ContainerState{Waiting: s.Waiting, Running: s.Running, Terminated: s.Terminated}, true
			}
		}
		return corev1.ContainerState{}, false
	}
	for _, s := range tr.Status.Steps {
		if s.Container == c.container {
			return corev1.ContainerState{Waiting: s.Waiting, Running: s.Running, Terminated: s.Terminated}, true
		}
	}
	return corev1.ContainerState{}, false
}

func started(s corev1.ContainerState) bool { return s.Running != nil || s.Terminated != nil }

// taskRun prints one TaskRun's containers; inPipeline prefixes its lines
// with the pipeline task, as tkn does under `pipelinerun logs`.
func (r *Reader) taskRun(ctx context.Context, name, task string, inPipeline bool) error {
	tr, err := r.Source.TaskRun(ctx, r.Namespace, name)
	if err != nil {
		return fmt.Errorf("unable to get TaskRun %s: %w", name, err)
	}
	if task == "" {
		task = tr.Labels["tekton.dev/pipelineTask"]
	}
	prefix := func(step string) string {
		if inPipeline {
			return fmt.Sprintf("[%s : %s] ", task, step)
		}
		return fmt.Sprintf("[%s] ", step)
	}
	if !r.Follow || tr.IsDone() {
		if c := tr.Status.GetCondition("Succeeded"); c != nil && c.IsFalse() {
			r.failure("task %s has failed: %s", taskName(task, tr), c.Message)
		}
		if tr.Status.PodName == "" {
			return fmt.Errorf("pod for taskrun %s not available yet", tr.Name)
		}
		for _, c := range containers(tr) {
			if st, _ := state(tr, c); !started(st) {
				continue
			}
			if _, err := r.copyLog(ctx, tr.Status.PodName, c.container, prefix(c.name), 0, false); err != nil {
				return err
			}
			r.line("", "")
		}
		return nil
	}
	return r.followTaskRun(ctx, tr, prefix)
}

func taskName(task string, tr *v1.TaskRun) string {
	if task != "" {
		return task
	}
	return tr.Name
}

// followTaskRun streams each container in turn, while its step runs; a
// retry runs in the same containers, so each attempt goes on from where
// the last one's output ended.
func (r *Reader) followTaskRun(ctx context.Context, tr *v1.TaskRun, prefix func(string) string) error {
	offsets := map[string]int64{}
	for attempt := 0; ; attempt++ {
		for i := 0; ; i++ {
			cs := containers(tr)
			if i >= len(cs) {
				break
			}
			c := cs[i]
			var err error
			if tr, err = r.awaitStart(ctx, tr, c); err != nil {
				return err
			}
			if st, _ := state(tr, c); !started(st) {
				continue // the TaskRun ended before this step started
			}
			if offsets[c.container], err = r.followContainer(ctx, tr, c, prefix(c.name), offsets[c.container]); err != nil {
				return err
			}
			r.line("", "")
			if tr, err = r.Source.TaskRun(ctx, r.Namespace, tr.Name); err != nil {
				return err
			}
		}
		next, err := r.awaitAttempt(ctx, tr, attempt+1)
		if err != nil || next == nil {
			return err
		}
		tr = next
	}
}

// await polls the TaskRun until ok holds for it.
func (r *Reader) await(ctx context.Context, tr *v1.TaskRun, ok func(*v1.TaskRun) bool) (*v1.TaskRun, error) {
	for !ok(tr) {
		if err := sleep(ctx, r.poll()); err != nil {
			return nil, err
		}
		next, err := r.Source.TaskRun(ctx, r.Namespace, tr.Name)
		if err != nil {
			return nil, err
		}
		tr = next
	}
	return tr, nil
}

// awaitStart is the TaskRun once container c started, or it is done.
func (r *Reader) awaitStart(ctx context.Context, tr *v1.TaskRun, c container) (*v1.TaskRun, error) {
	return r.await(ctx, tr, func(tr *v1.TaskRun) bool {
		st, _ := state(tr, c)
		return started(st) || tr.IsDone()
	})
}

// awaitAttempt is the TaskRun once its attempt n began (a retry), or nil
// once it is done without one.
func (r *Reader) awaitAttempt(ctx context.Context, tr *v1.TaskRun, n int) (*v1.TaskRun, error) {
	tr, err := r.await(ctx, tr, func(tr *v1.TaskRun) bool { return len(tr.Status.RetriesStatus) >= n || tr.IsDone() })
	if err != nil || len(tr.Status.RetriesStatus) >= n {
		return tr, err
	}
	return nil, nil
}

// followContainer prints container c's log from byte from on, as it comes,
// until its step ended in the TaskRun's status (its container serves the
// next attempt, so it runs on) and then what the log holds past what was
// printed. It returns the offset reached.
func (r *Reader) followContainer(ctx context.Context, tr *v1.TaskRun, c container, prefix string, from int64) (int64, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := r.copyLog(sctx, tr.Status.PodName, c.container, prefix, from, true)
		done <- result{n, err}
	}()
	for {
		select {
		case res := <-done:
			if res.err != nil || ctx.Err() != nil {
				return res.n, errors.Join(res.err, ctx.Err())
			}
			// The container ended: its log is whole, its last line
			// perhaps without a newline.
			return r.copyLog(ctx, tr.Status.PodName, c.container, prefix, res.n, false)
		case <-time.After(r.poll()):
		}
		next, err := r.Source.TaskRun(ctx, r.Namespace, tr.Name)
		if err != nil {
			return from, err
		}
		retried := len(next.Status.RetriesStatus) > len(tr.Status.RetriesStatus)
		if st, _ := state(next, c); st.Terminated == nil && !next.IsDone() && !retried {
			continue
		}
		// The step (or its attempt) ended: its output is all in the log. The stream may
		// still hold some of it; the rest is read whole, past what was
		// printed.
		cancel()
		res := <-done
		return r.copyLog(ctx, tr.Status.PodName, c.container, prefix, res.n, false)
	}
}

// copyLog prints the container's log past byte from, line by line, and
// returns the offset of the end of the last line printed. Following, a
// last line without its newline is left for a later read; otherwise it is
// printed.
func (r *Reader) copyLog(ctx context.Context, pod, name, prefix string, from int64, follow bool) (int64, error) {
	rc, err := r.Source.Log(ctx, r.Namespace, pod, name, follow)
	if err != nil {
		return from, fmt.Errorf("error in getting logs for container %s: %w", name, err)
	}
	defer rc.Close()
	n, err := loglines.From(rc, from, !follow, func(s string) { r.line(prefix, s) })
	if err != nil && ctx.Err() == nil {
		return n, fmt.Errorf("read logs of container %s: %w", name, err)
	}
	return n, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
