package controller

import (
	"context"
	"fmt"
	"sync"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
)

// compiledRuns keeps what each running run compiled to, by name and UID:
// every event the supervisor publishes brings a reconcile, and compiling
// again would read every Pipeline and Task the run names from the API
// server each time. Before its Pod exists it also keeps what the run was
// compiled from (compiledFrom), which goes on the Pod: a restarted controller
// compiles a running run from its Pod, never from objects that may have
// changed since.
type compiledRuns struct {
	mu sync.Mutex
	m  map[types.NamespacedName]compiledRun
}

type compiledRun struct {
	uid types.UID
	cc  *compile.Compiled
	rec *compiledFrom // nil when compiled from the run's Pod
}

func (c *compiledRuns) get(pr *v1.PipelineRun) *compile.Compiled {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key(pr)]; ok && e.uid == pr.UID {
		return e.cc
	}
	return nil
}

// compiledFrom is what pr was compiled from, for its Pod, or nil.
func (c *compiledRuns) compiledFrom(pr *v1.PipelineRun) *compiledFrom {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key(pr)]; ok && e.uid == pr.UID {
		return e.rec
	}
	return nil
}

func (c *compiledRuns) put(pr *v1.PipelineRun, cc *compile.Compiled, rec *compiledFrom) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[types.NamespacedName]compiledRun{}
	}
	c.m[key(pr)] = compiledRun{uid: pr.UID, cc: cc, rec: rec}
}

// drop forgets a run that is done or deleted.
func (c *compiledRuns) drop(name types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}

func key(pr *v1.PipelineRun) types.NamespacedName {
	return types.NamespacedName{Namespace: pr.Namespace, Name: pr.Name}
}

// compile gives what pr compiled to: kept from before, read back from its
// Pod when the Pod exists (pod, nil before), or else compiled from what it
// refers to in the cluster, its remote refs answered by the cluster's
// resolvers through ResolutionRequests owned by owner (the run, or the
// CustomRun whose group it is). Invalid input is not kept: the run ends
// with it. While a resolver has not answered, the error is a
// *compile.ResolvingError.
func (r *Reconciler) compile(ctx context.Context, owner client.Object, pr *v1.PipelineRun, pod *corev1.Pod) (*compile.Compiled, error) {
	if cc := r.compiled.get(pr); cc != nil {
		return cc, nil
	}
	if pod != nil {
		rec, ok, err := compiledFromPod(pod)
		if err != nil {
			return nil, err
		}
		if ok {
			return r.compileRecorded(ctx, pr, pod, rec)
		}
		// A Pod made by a controller that kept no record: compiled from
		// the cluster, as that controller did.
	}
	req, err := r.requester(owner)
	if err != nil {
		return nil, err
	}
	opts := compile.Options{Namespace: pr.Namespace, Lookup: lookup(r.reader(), pr.Namespace), Requester: req}
	if opts.FeatureFlags, err = r.tektonConfigMap(ctx, "feature-flags"); err != nil {
		return nil, err
	}
	if opts.Defaults, err = r.tektonConfigMap(ctx, "config-defaults"); err != nil {
		return nil, err
	}
	cc, err := compile.Compile(ctx, []load.Doc{doc(load.KindPipelineRun, pr.Name, pr.DeepCopy())}, opts)
	if apiErr := req.apiError(); err != nil && apiErr != nil {
		// Not the run's fault: the reconcile is tried again.
		return nil, fmt.Errorf("compile %s/%s: resolution: %w", pr.Namespace, pr.Name, apiErr)
	}
	if err != nil {
		return nil, fmt.Errorf("compile %s/%s: %w", pr.Namespace, pr.Name, err)
	}
	rec, err := newCompiledFrom(cc.Looked(), req.answered(), opts.FeatureFlags, opts.Defaults)
	if err != nil {
		return nil, err
	}
	r.compiled.put(pr, cc, rec)
	return cc, nil
}

// compileRecorded compiles a running run from what its Pod records, with
// the Pod's own Plan: the run goes on as it began, whatever was edited or
// deleted in the cluster since, its remote refs answered as they were.
func (r *Reconciler) compileRecorded(ctx context.Context, pr *v1.PipelineRun, pod *corev1.Pod, rec *compiledFrom) (*compile.Compiled, error) {
	docs, err := rec.documents(doc(load.KindPipelineRun, pr.Name, pr.DeepCopy()))
	if err != nil {
		return nil, err
	}
	opts := compile.Options{Namespace: pr.Namespace, FeatureFlags: rec.FeatureFlags, Defaults: rec.Defaults, Requester: recordedAnswers(rec.Answers)}
	cc, err := compile.Compile(ctx, docs, opts)
	if err != nil {
		return nil, fmt.Errorf("compile %s/%s from its Pod's record: %w", pr.Namespace, pr.Name, err)
	}
	if cc.Plan, err = planOf(pod); err != nil {
		return nil, err
	}
	r.compiled.put(pr, cc, nil)
	return cc, nil
}

// DefaultTektonNamespace is where Tekton keeps its configuration.
const DefaultTektonNamespace = "tekton-pipelines"

// tektonConfigMap is the data of one of Tekton's ConfigMaps in the
// cluster, so that runs are defaulted and validated as Tekton's controller
// would there; nil when there is none (Tekton's CRDs without its
// controller: a fresh install's configuration).
func (r *Reconciler) tektonConfigMap(ctx context.Context, name string) (map[string]string, error) {
	ns := r.TektonNamespace
	if ns == "" {
		ns = DefaultTektonNamespace
	}
	cm := &corev1.ConfigMap{}
	if err := r.reader().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get configmap %s/%s: %w", ns, name, err)
	}
	if cm.Data == nil {
		return map[string]string{}, nil
	}
	return cm.Data, nil
}
