package runlogs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
)

// fakeSource holds runs and container logs a test changes as it goes.
type fakeSource struct {
	mu   sync.Mutex
	prs  map[string]*v1.PipelineRun
	trs  map[string]*v1.TaskRun
	logs map[string]*fakeLog // by container
}

type fakeLog struct {
	data    []byte
	ended   bool
	changed chan struct{}
}

func newSource() *fakeSource {
	return &fakeSource{prs: map[string]*v1.PipelineRun{}, trs: map[string]*v1.TaskRun{}, logs: map[string]*fakeLog{}}
}

func (f *fakeSource) PipelineRun(_ context.Context, _, name string) (*v1.PipelineRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pr, ok := f.prs[name]; ok {
		return pr.DeepCopy(), nil
	}
	return nil, fmt.Errorf("pipelinerun %s not found", name)
}

func (f *fakeSource) TaskRun(_ context.Context, _, name string) (*v1.TaskRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if tr, ok := f.trs[name]; ok {
		return tr.DeepCopy(), nil
	}
	return nil, fmt.Errorf("taskrun %s not found", name)
}

func (f *fakeSource) log(c string) *fakeLog {
	l, ok := f.logs[c]
	if !ok {
		l = &fakeLog{changed: make(chan struct{})}
		f.logs[c] = l
	}
	return l
}

// write appends to container c's log.
func (f *fakeSource) write(c, s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log(c)
	l.data = append(l.data, s...)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (f *fakeSource) taskRun(name string, change func(*v1.TaskRun)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f.trs[name])
}

func (f *fakeSource) Log(ctx context.Context, _, pod, c string, follow bool) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pod != "the-pod" {
		return nil, fmt.Errorf("pod %s not found", pod)
	}
	l := f.log(c)
	if !follow {
		return io.NopCloser(bytes.NewReader(append([]byte{}, l.data...))), nil
	}
	pr, pw := io.Pipe()
	go func() {
		off := 0
		for {
			f.mu.Lock()
			chunk, ended, changed := append([]byte{}, l.data[off:]...), l.ended, l.changed
			f.mu.Unlock()
			off += len(chunk)
			if len(chunk) > 0 {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
				continue
			}
			if ended {
				pw.Close()
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			}
		}
	}()
	return pr, nil
}

func succeeded(status corev1.ConditionStatus, msg string) duckv1.Status {
	return duckv1.Status{Conditions: duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: status, Message: msg}}}
}

func taskRun(name, task string, steps ...v1.StepState) *v1.TaskRun {
	tr := &v1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tekton.dev/pipelineTask": task}}}
	tr.Status.PodName = "the-pod"
	tr.Status.Steps = steps
	tr.Status.Status = succeeded(corev1.ConditionTrue, "")
	return tr
}

func step(name, container string, st corev1.ContainerState) v1.StepState {
	return v1.StepState{Name: name, Container: container, ContainerState: st}
}

var done = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}

// A finished run's logs: TaskRuns in the Pipeline's order whatever order
// childReferences has (matrix TaskRuns in theirs), each with its own
// containers only, steps that never started left out, sidecars after the
// steps as "sidecar-NAME", an empty line after each container, and the
// failures on Err as tkn words them.
func TestPipelineRunLogs(t *testing.T) {
	src := newSource()
	pr := &v1.PipelineRun{ObjectMeta: metav1.ObjectMeta{Name: "pr"}}
	pr.Status.PipelineSpec = &v1.PipelineSpec{Tasks: []v1.PipelineTask{{Name: "build"}, {Name: "test"}}, Finally: []v1.PipelineTask{{Name: "report"}}}
	pr.Status.ChildReferences = []v1.ChildStatusReference{
		{TypeMeta: kind("TaskRun"), Name: "pr-report", PipelineTaskName: "report"},
		{TypeMeta: kind("TaskRun"), Name: "pr-test-0", PipelineTaskName: "test"},
		{TypeMeta: kind("TaskRun"), Name: "pr-test-1", PipelineTaskName: "test"},
		{TypeMeta: kind("TaskRun"), Name: "pr-build", PipelineTaskName: "build"},
		{TypeMeta: kind("CustomRun"), Name: "pr-custom", PipelineTaskName: "custom"},
	}
	pr.Status.Status = succeeded(corev1.ConditionFalse, "Tasks Completed: 3 (Failed: 1, Cancelled 0), Skipped: 0")
	src.prs["pr"] = pr
	build := taskRun("pr-build", "build", step("compile", "build-compile", done), step("never", "build-never", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{}}))
	build.Status.Sidecars = []v1.SidecarState{{Name: "db", Container: "build-sidecar-db", ContainerState: done}}
	src.trs["pr-build"] = build
	src.trs["pr-test-0"] = taskRun("pr-test-0", "test", step("unit", "test-0-unit", done))
	failed := taskRun("pr-test-1", "test", step("unit", "test-1-unit", done))
	failed.Status.Status = succeeded(corev1.ConditionFalse, `"step-unit" exited with code 1`)
	src.trs["pr-test-1"] = failed
	src.trs["pr-report"] = taskRun("pr-report", "report", step("say", "report-say", done))
	for c, s := range map[string]string{"build-compile": "compiling\ndone\n", "build-never": "", "build-sidecar-db": "db up\n",
		"test-0-unit": "ok 0\n", "test-1-unit": "FAIL 1", "report-say": "bye\n"} {
		src.write(c, s)
	}

	var out, errs strings.Builder
	r := &Reader{Source: src, Options: Options{Out: &out, Err: &errs}}
	if err := r.PipelineRun(context.Background(), "pr"); err != nil {
		t.Fatal(err)
	}
	want := "[build : compile] compiling\n[build : compile] done\n\n[build : sidecar-db] db up\n\n" +
		"[test : unit] ok 0\n\n[test : unit] FAIL 1\n\n[report : say] bye\n\n"
	if out.String() != want {
		t.Errorf("out:\n%s\nwant:\n%s", out.String(), want)
	}
	wantErr := "task test has failed: \"step-unit\" exited with code 1\nTasks Completed: 3 (Failed: 1, Cancelled 0), Skipped: 0\n"
	if errs.String() != wantErr {
		t.Errorf("err:\n%s\nwant:\n%s", errs.String(), wantErr)
	}

	out.Reset()
	errs.Reset()
	r.Tasks = []string{"report"}
	if err := r.PipelineRun(context.Background(), "pr"); err != nil || out.String() != "[report : say] bye\n\n" {
		t.Errorf("--task report: %q, %v", out.String(), err)
	}
	r.Tasks = []string{"nope"}
	if err := r.PipelineRun(context.Background(), "pr"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("--task nope: %v", err)
	}

	out.Reset()
	errs.Reset()
	r.Tasks = nil
	if err := r.TaskRun(context.Background(), "pr-build"); err != nil {
		t.Fatal(err)
	}
	if want := "[compile] compiling\n[compile] done\n\n[sidecar-db] db up\n\n"; out.String() != want {
		t.Errorf("taskrun logs:\n%s\nwant:\n%s", out.String(), want)
	}
	if err := r.TaskRun(context.Background(), "missing"); err == nil {
		t.Error("no error for a missing TaskRun")
	}
}

func kind(k string) runtime.TypeMeta { return runtime.TypeMeta{APIVersion: "tekton.dev/v1", Kind: k} }

// Following: a step's lines come as they are written, the next step waits
// for it to start, a step's container keeps running after its step ended
// (it serves a retry), and a retry's output goes on from where the first
// attempt's ended: each line once, in order.
func TestFollowTaskRun(t *testing.T) {
	src := newSource()
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	waitingState := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{}}
	tr := taskRun("tr", "t", step("one", "t-one", running), step("two", "t-two", waitingState))
	tr.Status.Status = succeeded(corev1.ConditionUnknown, "")
	src.trs["tr"] = tr
	src.write("t-one", "first\n")

	out := &syncWriter{}
	r := &Reader{Source: src, Options: Options{Follow: true, Poll: 5 * time.Millisecond, Out: out, Err: io.Discard}}
	errc := make(chan error, 1)
	go func() { errc <- r.TaskRun(context.Background(), "tr") }()

	out.await(t, "[one] first\n")
	src.write("t-one", "sec")
	time.Sleep(30 * time.Millisecond)
	if strings.Contains(out.String(), "sec") {
		t.Fatalf("a line without its newline was printed while following: %q", out.String())
	}
	src.write("t-one", "ond\n")
	out.await(t, "[one] second\n")
	src.write("t-one", "tail without newline")
	src.taskRun("tr", func(tr *v1.TaskRun) {
		tr.Status.Steps[0].ContainerState = done
		tr.Status.Steps[1].ContainerState = running
	})
	out.await(t, "[one] tail without newline\n\n")
	src.write("t-two", "two says\n")
	out.await(t, "[two] two says\n")

	// A retry: the first attempt ends, the containers run again.
	src.taskRun("tr", func(tr *v1.TaskRun) {
		tr.Status.RetriesStatus = []v1.TaskRunStatus{{}}
		tr.Status.Steps[0].ContainerState = running
		tr.Status.Steps[1].ContainerState = waitingState
	})
	out.await(t, "[two] two says\n\n")
	src.write("t-one", "retry one\n")
	out.await(t, "[one] retry one\n")
	src.write("t-two", "retry two\n")
	src.taskRun("tr", func(tr *v1.TaskRun) {
		tr.Status.Steps[0].ContainerState = done
		tr.Status.Steps[1].ContainerState = done
		tr.Status.Status = succeeded(corev1.ConditionTrue, "")
	})
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("follow did not end with the TaskRun; output so far:\n%s", out.String())
	}
	want := "[one] first\n[one] second\n[one] tail without newline\n\n[two] two says\n\n[one] retry one\n\n[two] retry two\n\n"
	if out.String() != want {
		t.Errorf("followed:\n%s\nwant:\n%s", out.String(), want)
	}
}

// Following a PipelineRun picks up TaskRuns as they are created and ends
// when the run is done.
func TestFollowPipelineRun(t *testing.T) {
	src := newSource()
	pr := &v1.PipelineRun{ObjectMeta: metav1.ObjectMeta{Name: "pr"}}
	pr.Status.Status = succeeded(corev1.ConditionUnknown, "")
	src.prs["pr"] = pr
	out := &syncWriter{}
	r := &Reader{Source: src, Options: Options{Follow: true, Poll: 5 * time.Millisecond, Out: out, Err: io.Discard}}
	errc := make(chan error, 1)
	go func() { errc <- r.PipelineRun(context.Background(), "pr") }()
	time.Sleep(20 * time.Millisecond)

	src.write("a-s", "from a\n")
	src.mu.Lock()
	src.trs["pr-a"] = taskRun("pr-a", "a", step("s", "a-s", done))
	src.prs["pr"].Status.ChildReferences = []v1.ChildStatusReference{{TypeMeta: kind("TaskRun"), Name: "pr-a", PipelineTaskName: "a"}}
	src.mu.Unlock()
	out.await(t, "[a : s] from a\n\n")
	src.mu.Lock()
	src.prs["pr"].Status.Status = succeeded(corev1.ConditionTrue, "")
	src.mu.Unlock()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end with the run")
	}
	if out.String() != "[a : s] from a\n\n" {
		t.Errorf("followed %q", out.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// await waits until the output ends with suffix.
func (w *syncWriter) await(t *testing.T, suffix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasSuffix(w.String(), suffix) {
		if time.Now().After(deadline) {
			t.Fatalf("output does not end with %q:\n%s", suffix, w.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}
