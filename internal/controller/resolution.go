package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	resolutionv1beta1 "github.com/tektoncd/pipeline/pkg/apis/resolution/v1beta1"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resource"
	"github.com/tektoncd/pipeline/pkg/resolution/common"
	resolutionresource "github.com/tektoncd/pipeline/pkg/resolution/resource"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/e7763abc/pod-runner/internal/compile"
)

// resolving brings forward a run whose resolvers have not all answered
// yet: Running, with Tekton's reason (ResolvingPipelineRef or
// ResolvingTaskRef) and message, and no Pod; a new reconcile comes when a
// ResolutionRequest it owns changes, or after the poll (cancelled
// meanwhile, Reconcile ends it before compiling). Past its timeout it ends
// PipelineRunTimeout with Tekton's message: a resolver that never answers
// ends the run, no Pod made (Tekton's controller ends it the same way,
// though only at twice the timeout, HasTimedOutForALongTime).
func (r *Reconciler) resolving(ctx context.Context, pr *v1.PipelineRun, w *compile.ResolvingError) (ctrl.Result, error) {
	next := pr.DeepCopy()
	next.Status.InitializeConditions(r.clock())
	if next.HasTimedOut(ctx, r.clock()) {
		next.SetTimeoutCondition(ctx)
		setCompletion(next, r.clock().Now())
		if err := r.updatePipelineRun(ctx, pr, next); err != nil {
			return ctrl.Result{}, err
		}
		r.compiled.drop(key(pr))
		return ctrl.Result{}, nil
	}
	log.FromContext(ctx).V(1).Info("resolving", "waiting", w.Refs)
	next.Status.MarkRunning(w.Reason, "PipelineRun %s/%s awaiting remote resource", pr.Namespace, pr.Name)
	if err := r.updatePipelineRun(ctx, pr, next); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.untilTimeout(ctx, next)}, nil
}

// resolving is the CustomRun's part of Reconciler.resolving: Running
// with the group's reason, or timed out (CustomRunTimedOut).
func (c *CustomRunReconciler) resolving(ctx context.Context, run *v1beta1.CustomRun, pr *v1.PipelineRun, w *compile.ResolvingError) (ctrl.Result, error) {
	now := metav1.NewTime(c.clock().Now())
	st := run.Status.DeepCopy()
	if st.StartTime == nil {
		st.StartTime = &now
	}
	pr.Status.StartTime = st.StartTime.DeepCopy()
	if pr.HasTimedOut(ctx, c.clock()) {
		timedOut := pr.DeepCopy()
		timedOut.SetTimeoutCondition(ctx)
		msg := renameRun(timedOut.Status.GetCondition(apis.ConditionSucceeded).Message, run, pr)
		return ctrl.Result{}, c.end(ctx, run, v1beta1.CustomRunReasonTimedOut.String(), msg)
	}
	cond := apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionUnknown, Reason: w.Reason,
		Message: fmt.Sprintf("CustomRun %s/%s awaiting remote resource", run.Namespace, run.Name), LastTransitionTime: apis.VolatileTime{Inner: now}}
	if cur := st.GetCondition(apis.ConditionSucceeded); cur != nil && cur.Status == cond.Status && cur.Reason == cond.Reason && cur.Message == cond.Message {
		cond.LastTransitionTime = cur.LastTransitionTime
	}
	st.Conditions = duckv1.Conditions{cond}
	if err := c.update(ctx, run, st); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: c.untilTimeout(ctx, pr)}, nil
}

// untilTimeout is when to look at a waiting run again: after the poll, or
// as its timeout passes if that is sooner.
func (r *Reconciler) untilTimeout(ctx context.Context, pr *v1.PipelineRun) time.Duration {
	wait := r.poll()
	if timeout := pr.PipelineTimeout(ctx); timeout != config.NoTimeoutDuration && pr.Status.StartTime != nil {
		if left := timeout - r.clock().Since(pr.Status.StartTime.Time) + time.Millisecond; left < wait {
			wait = max(left, time.Millisecond)
		}
	}
	return wait
}

// clusterRequester asks the cluster's resolvers (Tekton's resolvers
// deployment, or any other) for a run's remote refs through
// ResolutionRequests, as Tekton's CRDRequester does: the same deterministic
// names (Tekton's request builder makes them before Submit), labels and
// spec, and the same answers. One difference: the run owns its requests
// without being their controller. Tekton's controller enqueues the
// controller owner of every ResolutionRequest it sees and reconciles it
// without looking at spec.managedBy, so a controller reference would hand
// the delegated run to Tekton.
//
// Every answer is kept (answers) for the run's Pod record, so that a
// restarted controller compiles the run from what it was resolved to,
// never resolving anew.
type clusterRequester struct {
	client client.Client
	owner  metav1.OwnerReference

	mu      sync.Mutex // Tekton resolves a Task's StepActions in parallel
	answers []recordedAnswer
	// failed is the first of the API server's own errors: Tekton's code
	// makes any Submit error the run's failure, but these are worth a
	// retry (Reconciler.compile returns it instead).
	failed error
}

var _ resource.Requester = (*clusterRequester)(nil)

// requester is the clusterRequester for a run owned by owner (the
// PipelineRun, or the CustomRun whose group it is).
func (r *Reconciler) requester(owner client.Object) (*clusterRequester, error) {
	gvk, err := apiutil.GVKForObject(owner, r.Client.Scheme())
	if err != nil {
		return nil, fmt.Errorf("owner of resolution requests: %w", err)
	}
	ref := metav1.NewControllerRef(owner, gvk)
	ref.Controller = nil
	// Blocking the owner's deletion would need its finalizers' update
	// permission, and a run is never kept for a request.
	ref.BlockOwnerDeletion = nil
	return &clusterRequester{client: r.Client, owner: *ref}, nil
}

// Submit creates the request when there is none and reports it in
// progress; answers once the resolver has: the data, or Tekton's
// ResolutionFailed error with the message of the resolver (or of Tekton's
// controller, which fails a request nobody answers in time).
func (c *clusterRequester) Submit(ctx context.Context, resolver resource.ResolverName, req resource.Request) (resource.ResolvedResource, error) {
	p := req.ResolverPayload()
	rr := &resolutionv1beta1.ResolutionRequest{}
	err := c.client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.Name}, rr)
	switch {
	case apierrors.IsNotFound(err):
		return nil, c.create(ctx, resolver, p)
	case err != nil:
		return nil, c.fail(fmt.Errorf("get ResolutionRequest %s/%s: %w", p.Namespace, p.Name, err))
	case !c.owns(rr):
		// A request of an earlier run of the same name (names come from
		// the run's name and the ref): its answer is not this run's.
		// The garbage collector deletes it, then this run asks anew.
		return nil, common.ErrRequestInProgress
	}
	// The resolver's data is its answer (IsResolved), whether or not
	// Tekton's controller, whose ResolutionRequest reconciler turns it into
	// Succeeded=True, has seen it yet: one hop less, and no need of that
	// controller where only Tekton's resolvers run.
	if cond := rr.Status.GetCondition(apis.ConditionSucceeded); !rr.IsResolved() {
		if cond.IsFalse() {
			return nil, common.NewError(common.ReasonResolutionFailed, errors.New(cond.GetMessage()))
		}
		return nil, common.ErrRequestInProgress
	}
	res := resolutionresource.CrdIntoResource(rr)
	data, err := res.Data()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.answers = append(c.answers, recordedAnswer{Name: p.Name, Content: data, Meta: res.Annotations(), Source: res.RefSource()})
	c.mu.Unlock()
	return res, nil
}

// create makes the ResolutionRequest Tekton's CRDRequester would, owned
// as clusterRequester says; one made meanwhile (a cache behind) is fine.
func (c *clusterRequester) create(ctx context.Context, resolver resource.ResolverName, p resource.ResolverPayload) error {
	spec := p.ResolutionSpec
	if spec == nil {
		spec = &resolutionv1beta1.ResolutionRequestSpec{}
	}
	rr := resolutionresource.CreateResolutionRequest(ctx, resolver, p.Name, p.Namespace, spec.Params, c.owner)
	rr.Spec.URL = spec.URL
	if err := c.client.Create(ctx, rr); err != nil && !apierrors.IsAlreadyExists(err) {
		return c.fail(fmt.Errorf("create ResolutionRequest %s/%s: %w", p.Namespace, p.Name, err))
	}
	return common.ErrRequestInProgress
}

// owns tells whether rr is this run's request.
func (c *clusterRequester) owns(rr *resolutionv1beta1.ResolutionRequest) bool {
	for _, o := range rr.OwnerReferences {
		if o.UID == c.owner.UID {
			return true
		}
	}
	return false
}

// fail keeps err as the API server's (failed) and returns it.
func (c *clusterRequester) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed == nil {
		c.failed = err
	}
	return err
}

// apiError is the API server's error Submit met, if any.
func (c *clusterRequester) apiError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// answered are the answers so far, one per request.
func (c *clusterRequester) answered() []recordedAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []recordedAnswer
	seen := map[string]bool{}
	for _, a := range c.answers {
		if !seen[a.Name] {
			seen[a.Name] = true
			out = append(out, a)
		}
	}
	return out
}

// recordedAnswer is one resolver answer in a run's Pod record.
type recordedAnswer struct {
	// Name is the ResolutionRequest's (deterministic: the run and the
	// ref's resolver and params make it).
	Name    string            `json:"name"`
	Content []byte            `json:"data"`
	Meta    map[string]string `json:"annotations,omitempty"`
	Source  *v1.RefSource     `json:"refSource,omitempty"`
}

// recordedAnswers answers a restarted controller's compile of a running
// run from its Pod record; a request the record has no answer for is an
// error, never a new request.
type recordedAnswers []recordedAnswer

func (a recordedAnswers) Submit(_ context.Context, _ resource.ResolverName, req resource.Request) (resource.ResolvedResource, error) {
	name := req.ResolverPayload().Name
	for i := range a {
		if a[i].Name == name {
			return &a[i], nil
		}
	}
	return nil, fmt.Errorf("the run's Pod record has no answer for the ResolutionRequest %s", name)
}

func (a *recordedAnswer) Data() ([]byte, error)          { return a.Content, nil }
func (a *recordedAnswer) Annotations() map[string]string { return a.Meta }
func (a *recordedAnswer) RefSource() *v1.RefSource       { return a.Source.DeepCopy() }
