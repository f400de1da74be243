package clusterbench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	tektoninformers "github.com/tektoncd/pipeline/pkg/client/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

// taskRec is one TaskRun's times on this machine's clock: when a watch
// first showed it, showed it Running (or done), showed it done, and when
// its step really started and ended (from the step's log).
type taskRec struct {
	task                string
	later               bool // it waits for another task
	seen, running, done time.Time
	stepStart, stepEnd  time.Time
}

// record is one PipelineRun: created (just before the create call), done
// (a watch first showed it Succeeded), and its tasks.
type record struct {
	created, done time.Time
	tasks         []*taskRec
}

func (r *record) total() time.Duration { return r.done.Sub(r.created) }

// firstStart is create → the earliest step's real start.
func (r *record) firstStart() time.Duration {
	first := r.tasks[0].stepStart
	for _, tr := range r.tasks[1:] {
		if tr.stepStart.Before(first) {
			first = tr.stepStart
		}
	}
	return first.Sub(r.created)
}

// lastStart is create → the latest step's real start.
func (r *record) lastStart() time.Duration {
	last := r.tasks[0].stepStart
	for _, tr := range r.tasks[1:] {
		if tr.stepStart.After(last) {
			last = tr.stepStart
		}
	}
	return last.Sub(r.created)
}

// watcher records, through informers on the namespace's PipelineRuns and
// TaskRuns, when each status change was first seen.
type watcher struct {
	ns     string
	tekton tektonclient.Interface
	kube   kubernetes.Interface
	boot   time.Time // the wall clock at uptime 0

	mu   sync.Mutex
	prs  map[string]time.Time // PipelineRun → seen done
	trs  map[string]*taskRec
	wake chan struct{}
}

func newWatcher(t *testing.T, ns string) *watcher {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{ns: ns, prs: map[string]time.Time{}, trs: map[string]*taskRec{}, wake: make(chan struct{}, 1)}
	if w.tekton, err = tektonclient.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if w.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if w.boot, err = bootTime(); err != nil {
		t.Fatal(err)
	}
	f := tektoninformers.NewSharedInformerFactoryWithOptions(w.tekton, 0, tektoninformers.WithNamespace(ns))
	onPR := func(obj any) {
		if pr, ok := obj.(*v1.PipelineRun); ok && pr.IsDone() {
			w.mu.Lock()
			if _, seen := w.prs[pr.Name]; !seen {
				w.prs[pr.Name] = time.Now()
			}
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	onTR := func(obj any) {
		tr, ok := obj.(*v1.TaskRun)
		if !ok {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		rec := w.trs[tr.Name]
		if rec == nil {
			rec = &taskRec{task: tr.Labels["tekton.dev/pipelineTask"], seen: now}
			w.trs[tr.Name] = rec
		}
		c := tr.Status.GetCondition(apis.ConditionSucceeded)
		if rec.running.IsZero() && (tr.IsDone() || (c != nil && c.Reason == string(v1.TaskRunReasonRunning))) {
			rec.running = now
		}
		if rec.done.IsZero() && tr.IsDone() {
			rec.done = now
		}
	}
	if _, err := f.Tekton().V1().PipelineRuns().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onPR, UpdateFunc: func(_, o any) { onPR(o) }}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Tekton().V1().TaskRuns().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onTR, UpdateFunc: func(_, o any) { onTR(o) }}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); f.Shutdown() })
	f.Start(stop)
	for typ, ok := range f.WaitForCacheSync(stop) {
		if !ok {
			t.Fatalf("informer of %v did not sync", typ)
		}
	}
	return w
}

// run creates pr, waits until a watch shows it done, and reads its tasks'
// real step times from their logs.
func (w *watcher) run(ctx context.Context, t *testing.T, pr *v1.PipelineRun, ours bool) *record {
	t.Helper()
	rec := &record{created: time.Now()}
	if _, err := w.tekton.TektonV1().PipelineRuns(w.ns).Create(ctx, pr, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s: %v", pr.Name, err)
	}
	deadline := time.After(5 * time.Minute)
	for {
		w.mu.Lock()
		done, ok := w.prs[pr.Name]
		w.mu.Unlock()
		if ok {
			rec.done = done
			break
		}
		select {
		case <-w.wake:
		case <-deadline:
			t.Fatalf("%s not done after 5m", pr.Name)
		}
	}
	got, err := w.tekton.TektonV1().PipelineRuns(w.ns).Get(ctx, pr.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsSuccessful() {
		t.Fatalf("%s (%s) did not succeed: %+v", pr.Name, controllerName(ours), got.Status.Conditions)
	}
	trs, err := w.tekton.TektonV1().TaskRuns(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + pr.Name})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(pr.Spec.PipelineSpec.Tasks); len(trs.Items) != want {
		t.Fatalf("%s: %d TaskRuns, want %d", pr.Name, len(trs.Items), want)
	}
	for i := range trs.Items {
		tr := &trs.Items[i]
		w.mu.Lock()
		tc := *w.trs[tr.Name]
		w.mu.Unlock()
		if tc.done.IsZero() {
			// The run was seen done before this TaskRun's last update.
			tc.done = rec.done
		}
		for _, pt := range pr.Spec.PipelineSpec.Tasks {
			tc.later = tc.later || (pt.Name == tc.task && len(pt.RunAfter) > 0)
		}
		container := "step-echo"
		if ours {
			container = podlayout.StepContainer(tc.task, "echo")
		}
		if tc.stepStart, tc.stepEnd, err = w.stepTimes(ctx, tr.Status.PodName, container); err != nil {
			t.Fatalf("%s: %v", tr.Name, err)
		}
		rec.tasks = append(rec.tasks, &tc)
	}
	return rec
}

// stepTimes reads the step's bench-start and bench-end lines (host
// uptime) and turns them into wall-clock times.
func (w *watcher) stepTimes(ctx context.Context, pod, container string) (start, end time.Time, err error) {
	rc, err := w.kube.CoreV1().Pods(w.ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Stream(ctx)
	if err != nil {
		return start, end, fmt.Errorf("log of %s -c %s: %w", pod, container, err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || (f[0] != "bench-start" && f[0] != "bench-end") {
			continue
		}
		up, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return start, end, fmt.Errorf("log of %s -c %s: %q: %w", pod, container, sc.Text(), err)
		}
		at := w.boot.Add(time.Duration(up * float64(time.Second)))
		if f[0] == "bench-start" {
			start = at
		} else {
			end = at
		}
	}
	if start.IsZero() || end.IsZero() {
		return start, end, fmt.Errorf("log of %s -c %s has no bench-start/bench-end lines", pod, container)
	}
	return start, end, sc.Err()
}

// bootTime is the wall-clock time of uptime 0, from /proc/uptime, which
// the steps read too (the cluster's node is this machine).
func bootTime() (time.Time, error) {
	var boot time.Time
	for i := 0; i < 5; i++ {
		b, err := os.ReadFile("/proc/uptime")
		now := time.Now()
		if err != nil {
			return boot, fmt.Errorf("uptime: %w", err)
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return boot, fmt.Errorf("uptime: %q", b)
		}
		up, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return boot, fmt.Errorf("uptime: %w", err)
		}
		// /proc/uptime truncates to 10 ms: the latest estimate is the best.
		if b := now.Add(-time.Duration(up * float64(time.Second))); b.After(boot) {
			boot = b
		}
		time.Sleep(3 * time.Millisecond)
	}
	return boot, nil
}

func durations(recs []*record, f func(*record) time.Duration) []time.Duration {
	var out []time.Duration
	for _, r := range recs {
		out = append(out, f(r))
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
