package controller

import (
	"context"
	"errors"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
)

// reporter is what differs between the two reconcilers of a run in one Pod:
// where an attempt's outcome is written. The PipelineRun reconciler writes
// it on the run itself; the CustomRun reconciler on the CustomRun that its
// group's run stands for.
type reporter interface {
	// cancelledBeforePod ends a run cancelled before it had a Pod.
	cancelledBeforePod(ctx context.Context) error
	// resolving reports a run waiting for its remote references.
	resolving(ctx context.Context, w *compile.ResolvingError) (ctrl.Result, error)
	// invalid ends a run that cannot start, with Tekton's reason: its
	// input is invalid, or its Pod cannot be made (ReasonPodCreationFailed).
	invalid(ctx context.Context, reason string, le *load.Error) error
	// report writes the status the Pod's supervisor published (ending the
	// attempt as end says, when set), and tells where the attempt stands.
	report(ctx context.Context, c *compile.Compiled, pod *corev1.Pod, end *ending) (attemptState, error)
}

// attemptState is where an attempt stands once its status is written.
type attemptState int

const (
	attemptRunning attemptState = iota
	// attemptEnded: the run ended with it.
	attemptEnded
	// attemptRetried: it failed and the run goes on with another attempt,
	// in a Pod of its own.
	attemptRetried
)

// runAttempt brings one attempt of pr forward in its one Pod, owned by
// owner (pr itself, or the CustomRun whose group pr is): find the Pod,
// compile (or wait for resolution), create the Pod, end it when it failed or
// the run is cancelled, and report the supervisor's status through rep.
func (r *Reconciler) runAttempt(ctx context.Context, owner client.Object, pr *v1.PipelineRun, rep reporter) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	pod, found, err := r.runPod(ctx, owner, pr)
	if err != nil {
		return ctrl.Result{}, err
	}
	if pod == nil && pr.IsCancelled() {
		// Never started: nothing to stop, and nothing to compile or
		// resolve (Tekton's reconciler cancels before it resolves).
		return ctrl.Result{}, rep.cancelledBeforePod(ctx)
	}
	compiled, err := r.compile(ctx, owner, pr, found)
	var waiting *compile.ResolvingError
	if errors.As(err, &waiting) {
		return rep.resolving(ctx, waiting)
	}
	if le, ok := asInvalid(err); ok {
		logger.Info("invalid run", "error", le.Error())
		return ctrl.Result{}, rep.invalid(ctx, invalidReason(le), le)
	}
	if err != nil {
		return ctrl.Result{}, err
	}

	if pod == nil {
		if pod, err = r.createPod(ctx, owner, pr, compiled); err != nil {
			if le, ok := asInvalid(err); ok {
				return ctrl.Result{}, rep.invalid(ctx, ReasonPodCreationFailed, le)
			}
			return ctrl.Result{}, err
		}
		logger.Info("created pod", "pod", pod.Name)
	}
	if !metav1.IsControlledBy(pod, owner) {
		// A Pod of an earlier run of the same name, still being deleted.
		return ctrl.Result{RequeueAfter: r.poll()}, nil
	}

	end := r.podFailure(ctx, pr, compiled, pod)
	if end != nil {
		logger.Info("ending the attempt", "reason", end.reason, "message", end.message)
	}
	if (pr.IsCancelled() || end != nil) && podActive(pod) {
		if err := r.stopPod(ctx, pod); err != nil {
			return ctrl.Result{}, err
		}
	}
	state, err := rep.report(ctx, compiled, pod, end)
	if err != nil {
		return ctrl.Result{}, err
	}
	if state != attemptRunning {
		r.follow.stop(pod.UID)
		r.compiled.drop(key(pr))
	}
	if state == attemptEnded {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: r.poll()}, nil
}
