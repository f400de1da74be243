package controller

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/apis"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

// Metrics are the controller's own Prometheus metrics; reconcile counts,
// errors and durations are controller-runtime's
// (controller_runtime_reconcile_*), served from the same endpoint.
type Metrics struct {
	// Runs counts ended runs by status (Tekton's pipelinerun_total values:
	// success, failed, cancelled) and the condition's reason.
	Runs *prometheus.CounterVec
	// PodStart is from the run's creation to its supervisor container
	// running: scheduling, image pulls, init containers.
	PodStart prometheus.Histogram
	// StatusLag is from a task's start in the Pod, as the supervisor
	// published it, to its TaskRun's first status written.
	StatusLag prometheus.Histogram

	// started holds the runs whose pod start was observed, so that each
	// run is observed once per controller process.
	started sync.Map
}

// NewMetrics makes the collectors; Register adds them to a registry.
func NewMetrics() *Metrics {
	return &Metrics{
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podrunner_pipelineruns_total",
			Help: "PipelineRuns that ended, by status (success, failed, cancelled) and reason.",
		}, []string{"status", "reason"}),
		PodStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podrunner_pod_start_latency_seconds",
			Help:    "From a PipelineRun's creation to its Pod's supervisor container running.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 10),
		}),
		StatusLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podrunner_taskrun_status_lag_seconds",
			Help:    "From a task's start in the Pod (the supervisor's event time) to its TaskRun's status written.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
		}),
	}
}

// Register adds the collectors to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Runs, m.PodStart, m.StatusLag} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// defaultMetrics are registered in controller-runtime's registry, which
// the manager's metrics server serves.
var defaultMetrics = func() *Metrics {
	m := NewMetrics()
	if err := m.Register(ctrlmetrics.Registry); err != nil {
		panic(err)
	}
	return m
}()

func (r *Reconciler) metrics() *Metrics {
	if r.Metrics == nil {
		return defaultMetrics
	}
	return r.Metrics
}

// runEnded counts a run that has just ended with condition c.
func (m *Metrics) runEnded(pr *v1.PipelineRun, c *apis.Condition) {
	status := "failed"
	switch {
	case c.IsTrue():
		status = "success"
	case c.Reason == v1.PipelineRunReasonCancelled.String():
		status = "cancelled"
	}
	m.Runs.WithLabelValues(status, c.Reason).Inc()
	m.started.Delete(runKey(pr))
}

// podStarted observes the run's pod start latency once its supervisor
// container has started. pr is the run as read before this reconcile: a
// run already past Started was observed before (by this process or one
// before a restart) and is not observed again.
func (m *Metrics) podStarted(pr *v1.PipelineRun, pod *corev1.Pod) {
	if c := pr.Status.GetCondition(apis.ConditionSucceeded); c != nil && (!c.IsUnknown() || c.Reason != v1.PipelineRunReasonStarted.String()) {
		return
	}
	cs := containerStatus(pod, podlayout.SupervisorContainer)
	if cs == nil {
		return
	}
	var at time.Time
	switch {
	case cs.State.Running != nil:
		at = cs.State.Running.StartedAt.Time
	case cs.State.Terminated != nil:
		at = cs.State.Terminated.StartedAt.Time
	}
	if at.IsZero() || pr.CreationTimestamp.IsZero() {
		return
	}
	if _, seen := m.started.LoadOrStore(runKey(pr), struct{}{}); seen {
		return
	}
	m.PodStart.Observe(max(at.Sub(pr.CreationTimestamp.Time), 0).Seconds())
}

func runKey(pr *v1.PipelineRun) types.UID {
	if pr.UID != "" {
		return pr.UID
	}
	return types.UID(pr.Namespace + "/" + pr.Name)
}

// taskRunWritten observes the status lag of a TaskRun whose status was
// just written at now; first tells whether it had no start time before,
// so that each task is observed once.
func (m *Metrics) taskRunWritten(first bool, tr *v1.TaskRun, now time.Time) {
	if !first || tr.Status.StartTime == nil {
		return
	}
	m.StatusLag.Observe(max(now.Sub(tr.Status.StartTime.Time), 0).Seconds())
}
