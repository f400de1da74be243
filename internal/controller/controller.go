// Package controller reconciles the Tekton PipelineRuns delegated to
// pod-runner (spec.managedBy) by running each as one Pod and writing
// Tekton-shaped PipelineRun and TaskRun status from what the Pod publishes.
package controller

import (
	"context"
	"fmt"
	"io"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	resolutionv1beta1 "github.com/tektoncd/pipeline/pkg/apis/resolution/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"knative.dev/pkg/kmeta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podspec"
)

// ManagedBy is the spec.managedBy value of the runs this controller owns;
// Tekton's own controller skips them ("Delegating reconciliation",
// docs/pipelineruns.md).
const ManagedBy = "pod-runner.dev/controller"

// DefaultPoll is how often a running run's supervisor log is read again.
const DefaultPoll = 2 * time.Second

// LogReader reads a container's log through the API server (Pods/log).
type LogReader interface {
	Log(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error)
}

// Reconciler runs delegated PipelineRuns as one Pod each.
type Reconciler struct {
	// Client reads and writes PipelineRuns, TaskRuns and Pods (cached reads).
	Client client.Client
	// Reader reads what a run refers to (Pipelines, Tasks, StepActions,
	// ConfigMaps, Secrets) straight from the API server, so that no Secret
	// is cached; Client when nil.
	Reader client.Reader
	// Logs reads the supervisor's log.
	Logs LogReader
	// Exec runs `pod-runner control` in the supervisor's container
	// (spec.status CancelledRunFinally, StoppedRunFinally).
	Exec Executor
	// Pod are the injector's choices: the pod-runner image and how steps
	// with no command find their image's entrypoint.
	Pod podspec.Options
	// Poll is how often a running run's log is read again (DefaultPoll
	// when zero).
	Poll time.Duration
	// Clock stamps start and completion times; the real clock when nil.
	Clock clock.PassiveClock
	// UnschedulableTimeout is how long the Pod may stay unschedulable
	// before the run fails (DefaultUnschedulableTimeout when zero).
	UnschedulableTimeout time.Duration
	// TimeoutGrace is how long past timeouts.pipeline a still running Pod
	// is stopped and the run ended PipelineRunTimeout (DefaultTimeoutGrace
	// when zero).
	TimeoutGrace time.Duration
	// Recorder emits the run's Events (events.go); none when nil.
	Recorder events.EventRecorder
	// Metrics are observed as runs go (metrics.go); the registered
	// defaults when nil.
	Metrics *Metrics
	// TektonNamespace holds Tekton's feature-flags and config-defaults
	// ConfigMaps, which runs are compiled with (DefaultTektonNamespace when
	// empty; a fresh install's configuration when they are missing).
	TektonNamespace string

	// follow keeps the supervisors' logs open (follow.go); set up by
	// SetupWithManager when Logs can follow.
	follow *followers
	// compiled keeps each running run's compilation (compiled.go).
	compiled compiledRuns
}

// Managed tells whether pr is delegated to this controller.
func Managed(pr *v1.PipelineRun) bool {
	return pr.Spec.ManagedBy != nil && *pr.Spec.ManagedBy == ManagedBy
}

// PodName is the name of the Pod that runs pr: the run's name, shortened as
// podspec names it. It is deterministic, so that a restarted controller
// finds the Pod it created instead of creating a second one.
func PodName(pr *v1.PipelineRun) string { return kmeta.ChildName(pr.Name, "") }

func (r *Reconciler) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}

func (r *Reconciler) reader() client.Reader {
	if r.Reader == nil {
		return r.Client
	}
	return r.Reader
}

func (r *Reconciler) poll() time.Duration {
	if r.Poll <= 0 {
		return DefaultPoll
	}
	return r.Poll
}

// Reconcile brings one PipelineRun forward: compile it, create its Pod,
// and write the status the Pod's supervisor publishes.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if apierrors.IsConflict(err) {
		// A write based on a stale cached read: read again, without
		// reporting an error (and its stack trace) for an ordinary race.
		log.FromContext(ctx).V(1).Info("conflict, requeued", "error", err.Error())
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return res, err
}

// conflictRetry is how soon a reconcile that lost a write race runs again.
const conflictRetry = 100 * time.Millisecond

func (r *Reconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pr := &v1.PipelineRun{}
	if err := r.Client.Get(ctx, req.NamespacedName, pr); err != nil {
		if apierrors.IsNotFound(err) {
			r.compiled.drop(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !Managed(pr) || ChildRun(pr) || pr.IsDone() || pr.IsPending() {
		// Whatever ended it, nothing of the run is kept.
		r.compiled.drop(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	return r.runAttempt(ctx, pr, pr, pipelineRunReporter{r, pr})
}

// pipelineRunReporter writes a delegated PipelineRun's attempt on the run.
type pipelineRunReporter struct {
	r  *Reconciler
	pr *v1.PipelineRun
}

func (p pipelineRunReporter) cancelledBeforePod(ctx context.Context) error {
	return p.r.cancelled(ctx, p.pr, p.r.compiled.get(p.pr))
}

func (p pipelineRunReporter) resolving(ctx context.Context, w *compile.ResolvingError) (ctrl.Result, error) {
	return p.r.resolving(ctx, p.pr, w)
}

func (p pipelineRunReporter) invalid(ctx context.Context, reason string, le *load.Error) error {
	return p.r.fail(ctx, p.pr, reason, invalidMessage(le))
}

// report also delivers a graceful cancel or stop (spec.status) to the
// supervisor, before the status is read.
func (p pipelineRunReporter) report(ctx context.Context, c *compile.Compiled, pod *corev1.Pod, end *ending) (attemptState, error) {
	if action := gracefulAction(p.pr); action != "" && podActive(pod) {
		// Not fatal to the reconcile: status is still written, and the
		// request is sent again on the next one.
		if err := p.r.signal(ctx, pod, action); err != nil {
			log.FromContext(ctx).Error(err, "graceful cancel or stop not delivered yet")
		}
	}
	done, err := p.r.writeStatus(ctx, p.pr, c, pod, end)
	if err != nil {
		return attemptRunning, err
	}
	p.r.metrics().podStarted(p.pr, pod)
	if done {
		return attemptEnded, nil
	}
	return attemptRunning, nil
}

// runPod is the Pod of pr (nil when there is none) and, when owner
// controls it, the same Pod as found: a Pod of an earlier run of the same
// name is not this run's record.
func (r *Reconciler) runPod(ctx context.Context, owner client.Object, pr *v1.PipelineRun) (pod, found *corev1.Pod, err error) {
	pod = &corev1.Pod{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: pr.Namespace, Name: PodName(pr)}, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("get pod: %w", err)
	}
	if metav1.IsControlledBy(pod, owner) {
		found = pod
	}
	return pod, found, nil
}

// createPod builds the run's Pod, owned by owner (the run itself, or the
// CustomRun whose group pr is), and creates it; one that exists already is
// kept. The Pod refers to the ConfigMaps and Secrets the run uses by name,
// for the kubelet to read: the controller never reads their data (of its
// ServiceAccounts' Secrets, it reads type and annotations, as Tekton does
// for its credential initialisation).
func (r *Reconciler) createPod(ctx context.Context, owner client.Object, pr *v1.PipelineRun, c *compile.Compiled) (*corev1.Pod, error) {
	opts := r.Pod
	opts.Credentials = serviceAccountSecrets{r.reader()}
	pod, err := podspec.Pod(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	if pod.Name != PodName(pr) {
		return nil, fmt.Errorf("podspec named the pod %q, want %q", pod.Name, PodName(pr))
	}
	if rec := r.compiled.compiledFrom(pr); rec != nil {
		if err := rec.annotate(pod); err != nil {
			return nil, err
		}
	}
	if err := r.createOwned(ctx, owner, pod); err != nil {
		return nil, err
	}
	return pod, nil
}

func (r *Reconciler) createOwned(ctx context.Context, owner, obj client.Object) error {
	if err := controllerutil.SetControllerReference(owner, obj, r.Client.Scheme()); err != nil {
		return fmt.Errorf("owner reference: %w", err)
	}
	// The typed client sets the kind from the scheme; a TypeMeta left by
	// the builder is harmless but not needed.
	if err := r.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}

// podActive tells whether the Pod's containers may still run.
func podActive(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// stopPod stops a cancelled run's Pod without deleting it, so that its
// supervisor's log, with the final status, stays readable: an active
// deadline already passed makes the kubelet stop every container (SIGTERM,
// then SIGKILL after the grace period). A Pod that has not started yet has
// nothing to keep: it is deleted.
func (r *Reconciler) stopPod(ctx context.Context, pod *corev1.Pod) error {
	if pod.Status.StartTime == nil {
		if err := r.Client.Delete(ctx, pod); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete pod %s: %w", pod.Name, err)
		}
		return nil
	}
	// The deadline counts from the Pod's start; it may only be set or lowered.
	secs := int64(r.clock().Since(pod.Status.StartTime.Time).Seconds())
	if secs < 1 {
		secs = 1
	}
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil && *d <= secs {
		return nil
	}
	patch := client.MergeFrom(pod.DeepCopy())
	pod.Spec.ActiveDeadlineSeconds = &secs
	if err := r.Client.Patch(ctx, pod, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("stop pod %s: %w", pod.Name, err)
	}
	return nil
}

// fail ends a run that cannot start: Succeeded=False with Tekton's reason;
// no Pod is created.
func (r *Reconciler) fail(ctx context.Context, pr *v1.PipelineRun, reason, msg string) error {
	cur := pr
	pr = pr.DeepCopy()
	pr.Status.InitializeConditions(r.clock())
	pr.Status.MarkFailed(reason, "%s", msg)
	now := metav1.NewTime(r.clock().Now())
	pr.Status.CompletionTime = &now
	if err := r.Client.Status().Update(ctx, pr); err != nil {
		return fmt.Errorf("write failed status of %s: %w", pr.Name, err)
	}
	r.compiled.drop(key(pr))
	r.transition(ctx, cur, pr)
	return nil
}

// NewScheme is the scheme the controller's client needs: core and Tekton.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1beta1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := resolutionv1beta1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}
