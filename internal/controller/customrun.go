package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"

	podpipeline "github.com/e7763abc/pod-runner/api/podpipeline/v1alpha1"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/pkg/kmeta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
)

// CustomRunReconciler runs the CustomRuns of PodPipelines: each attempt of
// the group as one Pod, through the PipelineRun machinery (compile, Pod,
// TaskRuns, status) applied to the PipelineRun the CustomRun stands for,
// and reports the outcome on the CustomRun as Tekton's custom task
// contract asks (docs/customruns.md).
type CustomRunReconciler struct {
	// Reconciler holds the clients and options; it is the CustomRun
	// controller's own (its log followers wake CustomRuns, its compile
	// cache holds groups), never the PipelineRun controller's.
	*Reconciler
}

// Reconcile brings one CustomRun forward.
func (c *CustomRunReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := c.reconcileCustomRun(ctx, req)
	if apierrors.IsConflict(err) {
		log.FromContext(ctx).V(1).Info("conflict, requeued", "error", err.Error())
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return res, err
}

func (c *CustomRunReconciler) reconcileCustomRun(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	run := &v1beta1.CustomRun{}
	if err := c.Client.Get(ctx, req.NamespacedName, run); err != nil {
		if apierrors.IsNotFound(err) {
			// Its first attempt's compilation (a retry's is dropped when
			// the retry ends; a compilation is only ever used for its UID).
			c.compiled.drop(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !podpipeline.IsPodPipeline(run) || run.IsDone() {
		return ctrl.Result{}, nil
	}
	logger := log.FromContext(ctx)

	spec, err := c.podPipeline(ctx, run)
	if le, ok := asInvalid(err); ok {
		logger.Info("invalid PodPipeline", "error", le.Error())
		return ctrl.Result{}, c.end(ctx, run, string(v1.PipelineRunReasonFailedValidation), le.Error())
	}
	var missing *missingPodPipeline
	if errors.As(err, &missing) {
		return ctrl.Result{}, c.end(ctx, run, string(v1.PipelineRunReasonCouldntGetPipeline), missing.Error())
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	attempt := len(run.Status.RetriesStatus)
	pr := groupRun(run, spec, attempt)
	return c.runAttempt(ctx, run, pr, customRunReporter{c, run, pr, attempt})
}

// customRunReporter writes the attempt of a PodPipeline's group on its
// CustomRun.
type customRunReporter struct {
	c       *CustomRunReconciler
	run     *v1beta1.CustomRun
	pr      *v1.PipelineRun
	attempt int
}

func (g customRunReporter) cancelledBeforePod(ctx context.Context) error {
	g.c.compiled.drop(key(g.pr))
	return g.c.end(ctx, g.run, v1beta1.CustomRunReasonCancelled.String(), cancelMessage(g.run))
}

func (g customRunReporter) resolving(ctx context.Context, w *compile.ResolvingError) (ctrl.Result, error) {
	return g.c.resolving(ctx, g.run, g.pr, w)
}

func (g customRunReporter) invalid(ctx context.Context, reason string, le *load.Error) error {
	return g.c.end(ctx, g.run, reason, g.c.locate(g.run, g.pr, le).Error())
}

// report writes the group's TaskRuns, owned by the CustomRun, and the
// CustomRun's status; an attempt that failed with retries left becomes a
// retry (the next attempt is a run of its own, in a Pod of its own).
func (g customRunReporter) report(ctx context.Context, compiled *compile.Compiled, pod *corev1.Pod, end *ending) (attemptState, error) {
	run := g.run
	owner := metav1.NewControllerRef(run, v1beta1.SchemeGroupVersion.WithKind(pipeline.CustomRunControllerName))
	next, done, err := g.c.nextStatus(ctx, g.pr, client.ObjectKeyFromObject(run), compiled, pod, end, func(tr *v1.TaskRun) {
		tr.OwnerReferences = []metav1.OwnerReference{*owner}
	})
	if err != nil {
		return attemptRunning, err
	}
	st, err := g.c.customRunStatus(run, g.pr, next, pod.Name)
	if err != nil {
		return attemptRunning, err
	}
	switch {
	case !done:
		return attemptRunning, g.c.update(ctx, run, st)
	case !run.IsCancelled() && st.GetCondition(apis.ConditionSucceeded).IsFalse() && g.attempt < run.Spec.Retries:
		log.FromContext(ctx).Info("retrying", "attempt", g.attempt+1, "retries", run.Spec.Retries)
		return attemptRetried, g.c.update(ctx, run, g.c.retry(run, st))
	}
	return attemptEnded, g.c.update(ctx, run, st)
}

// missingPodPipeline is a customRef naming no PodPipeline object.
type missingPodPipeline struct{ name, why string }

func (e *missingPodPipeline) Error() string {
	return fmt.Sprintf("PodPipeline %q not found%s", e.name, e.why)
}

// podPipeline is the PodPipeline run runs: its customSpec's spec, or the
// spec of the PodPipeline object its customRef names, read strictly (an
// unknown field is a mistake worth failing on, as Tekton's webhook fails
// on one in a Pipeline).
func (c *CustomRunReconciler) podPipeline(ctx context.Context, run *v1beta1.CustomRun) (*podpipeline.PodPipelineSpec, error) {
	var raw []byte
	doc, field := customRunDoc(run), "spec.customSpec.spec"
	if ref := run.Spec.CustomRef; ref != nil {
		switch {
		case ref.Resolver != "":
			return nil, load.Errorf(doc, "spec.customRef.resolver", "PodPipelines are not resolved remotely: name a PodPipeline in the namespace, or embed it (taskSpec)")
		case ref.Name == "":
			return nil, load.Errorf(doc, "spec.customRef.name", "names no PodPipeline: name one, or embed it (taskSpec)")
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(podpipeline.GVK)
		err := c.reader().Get(ctx, client.ObjectKey{Namespace: run.Namespace, Name: ref.Name}, u)
		switch {
		case apierrors.IsNotFound(err):
			return nil, &missingPodPipeline{name: ref.Name}
		case meta.IsNoMatchError(err):
			return nil, &missingPodPipeline{name: ref.Name, why: " (the PodPipeline CRD, config/crd, is not installed)"}
		case err != nil:
			return nil, fmt.Errorf("get PodPipeline %s/%s: %w", run.Namespace, ref.Name, err)
		}
		if raw, err = json.Marshal(u.Object["spec"]); err != nil {
			return nil, fmt.Errorf("PodPipeline %s/%s: %w", run.Namespace, ref.Name, err)
		}
		doc, field = fmt.Sprintf("cluster (PodPipeline/%s)", ref.Name), "spec"
	} else {
		raw = run.Spec.CustomSpec.Spec.Raw
	}
	spec := &podpipeline.PodPipelineSpec{}
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
		return spec, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(spec); err != nil {
		return nil, load.Errorf(doc, field, "not a PodPipeline spec (pipelineSpec or pipelineRef): %v", err)
	}
	return spec, nil
}

func customRunDoc(run *v1beta1.CustomRun) string {
	return fmt.Sprintf("cluster (CustomRun/%s)", run.Name)
}

// attemptName names the run of the group's attempt: the CustomRun's name,
// then, for its retries, with Tekton's -retryN suffix (as a TaskRun's
// retried Pods). Each attempt is a run of its own, in a Pod of its own,
// with TaskRuns of its own; the ones before stay for their logs.
func attemptName(run *v1beta1.CustomRun, attempt int) string {
	if attempt == 0 {
		return run.Name
	}
	return kmeta.ChildName(run.Name, fmt.Sprintf("-retry%d", attempt))
}

// groupRun is the PipelineRun a CustomRun of a PodPipeline stands for, as
// Tekton would make a child PipelineRun (TEP-0056, createChildPipelineRun)
// for the pipeline task: the CustomRun's labels (Tekton's parent gives it
// those of the parent run, pipeline task and memberOf) and annotations,
// those of its embedded spec's metadata, tekton.dev/customRun naming it;
// its params, workspaces, timeout (timeouts.pipeline; per attempt, as
// CustomRun timeouts are) and service account; spec.status Cancelled when
// it is cancelled; its start time and condition.
func groupRun(run *v1beta1.CustomRun, spec *podpipeline.PodPipelineSpec, attempt int) *v1.PipelineRun {
	labels, annotations := map[string]string{}, map[string]string{}
	maps.Copy(labels, run.Labels)
	maps.Copy(annotations, run.Annotations)
	if s := run.Spec.CustomSpec; s != nil {
		maps.Copy(labels, s.Metadata.Labels)
		maps.Copy(annotations, s.Metadata.Annotations)
	}
	labels[pipeline.CustomRunKey] = run.Name
	managed := ManagedBy
	pr := &v1.PipelineRun{
		TypeMeta: metav1.TypeMeta{APIVersion: v1.SchemeGroupVersion.String(), Kind: pipeline.PipelineRunControllerName},
		ObjectMeta: metav1.ObjectMeta{
			Name: attemptName(run, attempt), Namespace: run.Namespace, UID: run.UID,
			Labels: labels, Annotations: annotations, CreationTimestamp: run.CreationTimestamp,
		},
		Spec: v1.PipelineRunSpec{
			PipelineSpec:    spec.PipelineSpec,
			PipelineRef:     spec.PipelineRef,
			TaskRunTemplate: v1.PipelineTaskRunTemplate{ServiceAccountName: run.Spec.ServiceAccountName},
			ManagedBy:       &managed,
		},
	}
	// v1beta1 params and workspace bindings are v1's, field for field.
	for _, p := range run.Spec.Params {
		pr.Spec.Params = append(pr.Spec.Params, v1.Param{Name: p.Name, Value: v1.ParamValue{
			Type: v1.ParamType(p.Value.Type), StringVal: p.Value.StringVal, ArrayVal: p.Value.ArrayVal, ObjectVal: p.Value.ObjectVal}})
	}
	for _, w := range run.Spec.Workspaces {
		pr.Spec.Workspaces = append(pr.Spec.Workspaces, v1.WorkspaceBinding{
			Name: w.Name, SubPath: w.SubPath, VolumeClaimTemplate: w.VolumeClaimTemplate,
			PersistentVolumeClaim: w.PersistentVolumeClaim, EmptyDir: w.EmptyDir, ConfigMap: w.ConfigMap,
			Secret: w.Secret, Projected: w.Projected, CSI: w.CSI})
	}
	if run.Spec.Timeout != nil {
		pr.Spec.Timeouts = &v1.TimeoutFields{Pipeline: run.Spec.Timeout.DeepCopy()}
	}
	if run.IsCancelled() {
		pr.Spec.Status = v1.PipelineRunSpecStatusCancelled
	}
	pr.Status.StartTime = run.Status.StartTime.DeepCopy()
	if cond := run.Status.GetCondition(apis.ConditionSucceeded); cond != nil {
		pr.Status.SetCondition(cond.DeepCopy())
	}
	return pr
}

// locate points an error about the group's run at the CustomRun field, or
// the PodPipeline object, it comes from.
func (c *CustomRunReconciler) locate(run *v1beta1.CustomRun, pr *v1.PipelineRun, le *load.Error) *load.Error {
	out := *le
	if out.Doc != fmt.Sprintf("cluster (%s/%s)", load.KindPipelineRun, pr.Name) {
		return &out
	}
	out.Doc = customRunDoc(run)
	fields := strings.Split(out.Field, ", ")
	for i, f := range fields {
		if !within(f, "spec.pipelineSpec") && !within(f, "spec.pipelineRef") {
			continue
		}
		// A PodPipeline object holds them where a PipelineRun does.
		if ref := run.Spec.CustomRef; ref != nil {
			out.Doc = fmt.Sprintf("cluster (PodPipeline/%s)", ref.Name)
		} else {
			fields[i] = "spec.customSpec." + f
		}
	}
	out.Field = strings.Join(fields, ", ")
	out.Msg = renameRun(out.Msg, run, pr)
	return &out
}

// within tells whether field is path or a field inside it.
func within(field, path string) bool {
	return field == path || strings.HasPrefix(field, path+".") || strings.HasPrefix(field, path+"[")
}

// renameRun makes a message the engine wrote about the group's run speak
// of the CustomRun.
func renameRun(msg string, run *v1beta1.CustomRun, pr *v1.PipelineRun) string {
	return strings.ReplaceAll(msg, fmt.Sprintf("PipelineRun %q", pr.Name), fmt.Sprintf("CustomRun %q", run.Name))
}

func cancelMessage(run *v1beta1.CustomRun) string {
	if run.Spec.StatusMessage != "" {
		// Tekton's, when the parent PipelineRun was cancelled or timed out.
		return string(run.Spec.StatusMessage)
	}
	return fmt.Sprintf("CustomRun %q was cancelled", run.Name)
}

// customRunReason is the CustomRun reason for the group's run's: Tekton's
// CustomRun reasons where the contract names one (cancelled, timed out,
// succeeded), the PipelineRun's otherwise (Running, Failed, and why an
// invalid group could not start).
func customRunReason(reason string) string {
	switch reason {
	case v1.PipelineRunReasonCancelled.String():
		return v1beta1.CustomRunReasonCancelled.String()
	case v1.PipelineRunReasonTimedOut.String():
		return v1beta1.CustomRunReasonTimedOut.String()
	case v1.PipelineRunReasonSuccessful.String(), v1.PipelineRunReasonCompleted.String():
		return v1beta1.CustomRunReasonSuccessful.String()
	}
	return reason
}

// customRunStatus is run's status once the group's run has next's:
// condition, times, results (strings; arrays and objects as JSON, which
// Tekton reads an array back from), and podpipeline.GroupStatus. Retries so far are
// kept.
func (c *CustomRunReconciler) customRunStatus(run *v1beta1.CustomRun, pr, next *v1.PipelineRun, podName string) (*v1beta1.CustomRunStatus, error) {
	st := run.Status.DeepCopy()
	st.StartTime = next.Status.StartTime.DeepCopy()
	st.CompletionTime = next.Status.CompletionTime.DeepCopy()
	st.Conditions = nil
	if cond := next.Status.GetCondition(apis.ConditionSucceeded); cond != nil {
		cc := cond.DeepCopy()
		cc.Reason = customRunReason(cc.Reason)
		cc.Message = renameRun(cc.Message, run, pr)
		if cc.Reason == v1beta1.CustomRunReasonCancelled.String() {
			cc.Message = cancelMessage(run)
		}
		st.Conditions = duckv1.Conditions{*cc}
	}
	st.Results = nil
	for _, r := range next.Status.Results {
		v := r.Value.StringVal
		switch r.Value.Type {
		case v1.ParamTypeArray, v1.ParamTypeObject:
			var b []byte
			var err error
			if r.Value.Type == v1.ParamTypeArray {
				b, err = json.Marshal(r.Value.ArrayVal)
			} else {
				b, err = json.Marshal(r.Value.ObjectVal)
			}
			if err != nil {
				return nil, fmt.Errorf("result %s: %w", r.Name, err)
			}
			v = string(b)
		}
		st.Results = append(st.Results, v1beta1.CustomRunResult{Name: r.Name, Value: v})
	}
	extra, err := json.Marshal(podpipeline.GroupStatus{PodName: podName, ChildReferences: next.Status.ChildReferences, SkippedTasks: next.Status.SkippedTasks})
	if err != nil {
		return nil, fmt.Errorf("extraFields: %w", err)
	}
	st.ExtraFields = runtime.RawExtension{Raw: extra}
	return st, nil
}

// retry is run's status when an attempt that ended as failed has retries
// left: the attempt's status goes to retriesStatus and the run goes on,
// Unknown, as the contract asks (Succeeded=False only once retries are
// exhausted); the next attempt's timeout counts from now.
func (c *CustomRunReconciler) retry(run *v1beta1.CustomRun, failed *v1beta1.CustomRunStatus) *v1beta1.CustomRunStatus {
	prev := failed.DeepCopy()
	prev.RetriesStatus = nil
	now := metav1.NewTime(c.clock().Now())
	st := &v1beta1.CustomRunStatus{}
	st.ObservedGeneration = failed.ObservedGeneration
	st.RetriesStatus = append(failed.DeepCopy().RetriesStatus, *prev)
	st.StartTime = &now
	msg := ""
	if cond := failed.GetCondition(apis.ConditionSucceeded); cond != nil {
		msg = ": " + cond.Message
	}
	st.Conditions = duckv1.Conditions{{
		Type: apis.ConditionSucceeded, Status: corev1.ConditionUnknown,
		Reason:             v1beta1.CustomRunReasonRunning.String(),
		Message:            fmt.Sprintf("attempt %d of %d failed%s; retrying", len(st.RetriesStatus), run.Spec.Retries+1, msg),
		LastTransitionTime: apis.VolatileTime{Inner: now},
	}}
	return st
}

// end ends run before (or instead of) a Pod: Succeeded=False with reason.
func (c *CustomRunReconciler) end(ctx context.Context, run *v1beta1.CustomRun, reason, msg string) error {
	now := metav1.NewTime(c.clock().Now())
	st := run.Status.DeepCopy()
	if st.StartTime == nil {
		st.StartTime = &now
	}
	st.CompletionTime = &now
	st.Conditions = duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionFalse,
		Reason: reason, Message: msg, LastTransitionTime: apis.VolatileTime{Inner: now}}}
	return c.update(ctx, run, st)
}

// update writes st as run's status when it changed, and emits the Events
// of the change as the PipelineRun reconciler does.
func (c *CustomRunReconciler) update(ctx context.Context, run *v1beta1.CustomRun, st *v1beta1.CustomRunStatus) error {
	if sameStatus(&run.Status, st) {
		return nil
	}
	next := run.DeepCopy()
	next.Status = *st
	if err := c.Client.Status().Update(ctx, next); err != nil {
		return fmt.Errorf("customrun %s status: %w", run.Name, err)
	}
	after := next.Status.GetCondition(apis.ConditionSucceeded)
	if c.emitTransition(run.Status.GetCondition(apis.ConditionSucceeded), after, next) {
		log.FromContext(ctx).Info("run ended", "status", string(after.Status), "reason", after.Reason)
	}
	return nil
}

// sameStatus compares two statuses, extraFields by what they hold (the
// API server gives them back with their keys sorted).
func sameStatus(a, b *v1beta1.CustomRunStatus) bool {
	x, y := a.DeepCopy(), b.DeepCopy()
	ex, ey := x.ExtraFields, y.ExtraFields
	x.ExtraFields, y.ExtraFields = runtime.RawExtension{}, runtime.RawExtension{}
	if !equality.Semantic.DeepEqual(x, y) {
		return false
	}
	var vx, vy any
	if len(ex.Raw) > 0 {
		if json.Unmarshal(ex.Raw, &vx) != nil {
			return false
		}
	}
	if len(ey.Raw) > 0 {
		if json.Unmarshal(ey.Raw, &vy) != nil {
			return false
		}
	}
	return reflect.DeepEqual(vx, vy)
}
