package controller

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// histogram reads a histogram's sample count and sum from the registry.
func histogram(t *testing.T, reg prometheus.Gatherer, name string) (uint64, float64) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			h := f.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s in the registry", name)
	return 0, 0
}

func registered(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	m, reg := NewMetrics(), prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestRunsByOutcome(t *testing.T) {
	running := cond(corev1.ConditionUnknown, "Running", "")
	cases := []struct {
		name                string
		before, after       *apis.Condition
		wantStatus, wantRsn string
		wantCount           float64
	}{
		{"succeeded", running, cond(corev1.ConditionTrue, "Succeeded", ""), "success", "Succeeded", 1},
		{"completed", running, cond(corev1.ConditionTrue, "Completed", ""), "success", "Completed", 1},
		{"failed", running, cond(corev1.ConditionFalse, "Failed", ""), "failed", "Failed", 1},
		{"timed out", running, cond(corev1.ConditionFalse, "PipelineRunTimeout", ""), "failed", "PipelineRunTimeout", 1},
		{"cancelled", running, cond(corev1.ConditionFalse, "Cancelled", ""), "cancelled", "Cancelled", 1},
		{"invalid at once", nil, cond(corev1.ConditionFalse, "CouldntGetPipeline", ""), "failed", "CouldntGetPipeline", 1},
		{"still running", running, cond(corev1.ConditionUnknown, "Running", "Tasks Completed: 1"), "failed", "Running", 0},
		{"written again when done", cond(corev1.ConditionTrue, "Succeeded", ""), cond(corev1.ConditionTrue, "Succeeded", "again"), "success", "Succeeded", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, reg := registered(t)
			r := &Reconciler{Metrics: m}
			cur, next := run("r", goodSpec, true), run("r", goodSpec, true)
			if tc.before != nil {
				cur.Status.SetCondition(tc.before)
			}
			next.Status.SetCondition(tc.after)
			r.transition(t.Context(), cur, next)
			// Counted first: reading a label set below creates its series.
			if n, err := testutil.GatherAndCount(reg, "podrunner_pipelineruns_total"); err != nil || float64(n) != tc.wantCount {
				t.Errorf("%d series of podrunner_pipelineruns_total (%v), want %v", n, err, tc.wantCount)
			}
			if got := testutil.ToFloat64(m.Runs.WithLabelValues(tc.wantStatus, tc.wantRsn)); got != tc.wantCount {
				t.Errorf("runs{%s,%s} = %v, want %v", tc.wantStatus, tc.wantRsn, got, tc.wantCount)
			}
		})
	}
}

// TestLatencies follows a run through the reconciler: its pod start and
// each task's status lag are observed once, also across a restart.
func TestLatencies(t *testing.T) {
	pr := run("lat", goodSpec, true)
	pr.CreationTimestamp = metav1.NewTime(t0.Add(-5 * time.Second))
	e := newEnv(t, append(defs(t), pr)...)
	m, reg := registered(t)
	e.r.Metrics = m
	e.reconcile("lat")
	if n, _ := histogram(t, reg, "podrunner_pod_start_latency_seconds"); n != 0 {
		t.Errorf("pod start observed before the supervisor runs: %d", n)
	}

	runEvent := &planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "lat", StartTime: ts(1), Condition: running}}}
	e.logs["lat"] = supervisorLog(runEvent, taskEvent("first", 2, running, 0))
	// The supervisor started at t0, 5 s after the run was created; the
	// first task's status is written 1 s after it started (t0+2s).
	e.setSupervisor("lat", corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}}, corev1.PodRunning)
	e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(3 * time.Second))
	e.reconcile("lat")
	e.reconcile("lat")
	if n, sum := histogram(t, reg, "podrunner_pod_start_latency_seconds"); n != 1 || sum != 5 {
		t.Errorf("pod start: %d samples, sum %v; want one of 5 s", n, sum)
	}
	if n, sum := histogram(t, reg, "podrunner_taskrun_status_lag_seconds"); n != 1 || sum != 1 {
		t.Errorf("status lag: %d samples, sum %v; want one of 1 s", n, sum)
	}

	// A restarted controller observes neither again; the second task,
	// started at t0+4s, is written at t0+10s.
	e.r = e.reconciler()
	e.r.Metrics = m
	e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(10 * time.Second))
	e.logs["lat"] = supervisorLog(runEvent, taskEvent("first", 2, succeeded, 3), taskEvent("second", 4, running, 0))
	e.reconcile("lat")
	if n, _ := histogram(t, reg, "podrunner_pod_start_latency_seconds"); n != 1 {
		t.Errorf("pod start observed again after a restart: %d samples", n)
	}
	if n, sum := histogram(t, reg, "podrunner_taskrun_status_lag_seconds"); n != 2 || sum != 7 {
		t.Errorf("status lag: %d samples, sum %v; want 1 s and 6 s", n, sum)
	}
	if got := testutil.ToFloat64(m.Runs.WithLabelValues("success", v1.PipelineRunReasonSuccessful.String())); got != 0 {
		t.Errorf("a running run counted as ended: %v", got)
	}
}

// TestDefaultMetricsServed: the collectors are in controller-runtime's
// registry, which the manager's metrics server serves.
func TestDefaultMetricsServed(t *testing.T) {
	defaultMetrics.Runs.WithLabelValues("success", "Succeeded")
	for _, name := range []string{"podrunner_pipelineruns_total", "podrunner_pod_start_latency_seconds", "podrunner_taskrun_status_lag_seconds"} {
		if n, err := testutil.GatherAndCount(ctrlmetrics.Registry, name); err != nil || n == 0 {
			t.Errorf("%s: %d series in controller-runtime's registry (%v)", name, n, err)
		}
	}
	if (&Reconciler{}).metrics() != defaultMetrics {
		t.Error("a Reconciler without Metrics does not use the registered ones")
	}
}
