package controller

import (
	"context"
	"fmt"
	"sync"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/e7763abc/pod-runner/internal/compile"
)

// compiledRuns keeps what each running run compiled to, by name and UID:
// every event the supervisor publishes brings a reconcile, and compiling
// again would read every Pipeline and Task the run names from the API
// server each time. It also keeps a run's definitions as they were when its
// Pod was made, as Tekton keeps the spec it resolved first. A restarted
// controller compiles once more.
type compiledRuns struct {
	mu sync.Mutex
	m  map[types.NamespacedName]compiledRun
}

type compiledRun struct {
	uid types.UID
	cc  *compile.Compiled
}

func (c *compiledRuns) get(pr *v1.PipelineRun) *compile.Compiled {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key(pr)]; ok && e.uid == pr.UID {
		return e.cc
	}
	return nil
}

func (c *compiledRuns) put(pr *v1.PipelineRun, cc *compile.Compiled) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[types.NamespacedName]compiledRun{}
	}
	c.m[key(pr)] = compiledRun{uid: pr.UID, cc: cc}
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

// compile resolves what pr refers to and compiles it, or gives what it
// compiled to before. Invalid input is not kept: the run ends with it.
func (r *Reconciler) compile(ctx context.Context, pr *v1.PipelineRun) (*compile.Compiled, error) {
	if cc := r.compiled.get(pr); cc != nil {
		return cc, nil
	}
	docs, err := gather(ctx, r.reader(), pr)
	if err != nil {
		return nil, err
	}
	cc, err := compile.Compile(ctx, docs, compile.Options{Namespace: pr.Namespace})
	if err != nil {
		return nil, fmt.Errorf("compile %s/%s: %w", pr.Namespace, pr.Name, err)
	}
	r.compiled.put(pr, cc)
	return cc, nil
}
