package podspec

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// shared are the resources the Pod requests once, at the DAG's peak: a
// step's request of them moves to the supervisor container. Other resources
// (GPUs and other extended resources, hugepages) must have requests equal to
// limits, cannot be overcommitted, and stay on their step containers.
var shared = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}

func isShared(n corev1.ResourceName) bool {
	for _, s := range shared {
		if s == n {
			return true
		}
	}
	return false
}

// amount is a quantity in the unit the antichain search adds up:
// millicores for CPU, bytes (or units) otherwise.
func amount(n corev1.ResourceName, q resource.Quantity) int64 {
	if n == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

func quantity(n corev1.ResourceName, v int64) resource.Quantity {
	if n == corev1.ResourceCPU {
		return *resource.NewMilliQuantity(v, resource.DecimalSI)
	}
	return *resource.NewQuantity(v, resource.BinarySI)
}

// stepRequest is what a step asks of resource n: its request, or its limit
// when it gives only a limit (Kubernetes defaults the request to the limit).
func stepRequest(s *planpb.Step, n corev1.ResourceName) (int64, error) {
	raw, ok := s.GetRequests()[string(n)]
	if !ok {
		raw, ok = s.GetLimits()[string(n)]
	}
	if !ok {
		return 0, nil
	}
	q, err := resource.ParseQuantity(raw)
	if err != nil {
		return 0, fmt.Errorf("step %q: %s %q: %w", s.GetName(), n, raw, err)
	}
	return amount(n, q), nil
}

// taskRequest is what t asks of n at its busiest: the most any one step
// asks (steps run one after another) plus what its sidecars ask (they run
// beside every step).
func taskRequest(t *planpb.Task, n corev1.ResourceName) (int64, error) {
	var most, sidecars int64
	for _, s := range t.GetSpec().GetSteps() {
		v, err := stepRequest(s, n)
		if err != nil {
			return 0, fmt.Errorf("task %q: %w", t.GetName(), err)
		}
		most = max(most, v)
	}
	for _, s := range t.GetSpec().GetSidecars() {
		v, err := stepRequest(s, n)
		if err != nil {
			return 0, fmt.Errorf("task %q: sidecar: %w", t.GetName(), err)
		}
		sidecars += v
	}
	return most + sidecars, nil
}

// Peak is what the run asks of each shared resource at its busiest: per
// task the largest request of its steps, and for the run the heaviest set of
// tasks that can run at once — an antichain of the DAG, tasks neither of
// which waits for the other, even transitively — or of the finally tasks,
// which run after the DAG. Resources no step asks for are left out.
func Peak(plan *planpb.Plan) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for _, n := range shared {
		dag, err := groupPeak(plan.GetTasks(), n)
		if err != nil {
			return nil, err
		}
		fin, err := groupPeak(plan.GetFinally(), n)
		if err != nil {
			return nil, err
		}
		if p := max(dag, fin); p > 0 {
			out[n] = quantity(n, p)
		}
	}
	return out, nil
}

// groupPeak is the maximum-weight antichain of tasks under their run_after
// order (dependencies outside the group are done before it starts).
func groupPeak(tasks []*planpb.Task, n corev1.ResourceName) (int64, error) {
	index := map[string]int{}
	for i, t := range tasks {
		index[t.GetName()] = i
	}
	w := make([]int64, len(tasks))
	deps := make([][]int, len(tasks))
	for i, t := range tasks {
		var err error
		if c := t.GetChild(); c != nil {
			// A child pipeline at its busiest: its DAG or its finally.
			w[i], err = childPeak(c, n)
		} else {
			w[i], err = taskRequest(t, n)
		}
		if err != nil {
			return 0, err
		}
		for _, d := range t.GetRunAfter() {
			if j, ok := index[d]; ok {
				deps[i] = append(deps[i], j)
			}
		}
	}
	total, _ := MaxAntichain(w, deps)
	return total, nil
}

func childPeak(c *planpb.ChildPipeline, n corev1.ResourceName) (int64, error) {
	dag, err := groupPeak(c.GetTasks(), n)
	if err != nil {
		return 0, err
	}
	fin, err := groupPeak(c.GetFinally(), n)
	return max(dag, fin), err
}

// MaxAntichain is the heaviest set of nodes no two of which are ordered,
// in the partial order a DAG generates (deps[i] lists the nodes i waits
// for), with its weight. Weights are non-negative.
//
// By Dilworth's theorem in its weighted form, the heaviest antichain weighs
// as much as the lightest cover of the nodes by chains in which node i
// appears w[i] times; that cover is sum(w) minus a maximum flow in the
// bipartite network source→out(i) (capacity w[i]), out(i)→in(j) for every
// i before j (transitively; unbounded), in(j)→sink (capacity w[j]). Nodes
// whose out side the source still reaches after the flow, and whose in side
// it does not, form the antichain.
func MaxAntichain(w []int64, deps [][]int) (int64, []int) {
	n := len(w)
	before := closure(n, deps)
	var sum int64
	for _, x := range w {
		sum += x
	}
	inf := sum + 1
	g := newFlow(2*n + 2)
	src, sink := 2*n, 2*n+1
	for i := 0; i < n; i++ {
		g.add(src, i, w[i])
		g.add(n+i, sink, w[i])
		for j := 0; j < n; j++ {
			if before[i][j] {
				g.add(i, n+j, inf)
			}
		}
	}
	flow := g.maxFlow(src, sink)
	reach := g.reachable(src)
	var set []int
	for i := 0; i < n; i++ {
		if reach[i] && !reach[n+i] && w[i] > 0 {
			set = append(set, i)
		}
	}
	return sum - flow, set
}

// closure reports before[i][j]: j waits for i, directly or not.
func closure(n int, deps [][]int) [][]bool {
	before := make([][]bool, n)
	for i := range before {
		before[i] = make([]bool, n)
	}
	// after[j] is filled depth first: i before j if i is a dep of j or
	// before one of j's deps.
	done := make([]bool, n)
	var visit func(j int)
	visit = func(j int) {
		if done[j] {
			return
		}
		done[j] = true
		for _, d := range deps[j] {
			visit(d)
			before[d][j] = true
			for i := 0; i < n; i++ {
				if before[i][d] {
					before[i][j] = true
				}
			}
		}
	}
	for j := 0; j < n; j++ {
		visit(j)
	}
	return before
}

// flow is a max-flow network (Dinic's algorithm).
type flow struct {
	head  []int
	to    []int
	next  []int
	cap   []int64
	level []int
	iter  []int
}

func newFlow(n int) *flow {
	f := &flow{head: make([]int, n), level: make([]int, n), iter: make([]int, n)}
	for i := range f.head {
		f.head[i] = -1
	}
	return f
}

func (f *flow) add(u, v int, c int64) {
	f.to = append(f.to, v, u)
	f.cap = append(f.cap, c, 0)
	f.next = append(f.next, f.head[u], f.head[v])
	f.head[u] = len(f.to) - 2
	f.head[v] = len(f.to) - 1
}

func (f *flow) bfs(s int) {
	for i := range f.level {
		f.level[i] = -1
	}
	f.level[s] = 0
	queue := []int{s}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for e := f.head[u]; e >= 0; e = f.next[e] {
			if f.cap[e] > 0 && f.level[f.to[e]] < 0 {
				f.level[f.to[e]] = f.level[u] + 1
				queue = append(queue, f.to[e])
			}
		}
	}
}

func (f *flow) dfs(u, t int, pushed int64) int64 {
	if u == t {
		return pushed
	}
	for ; f.iter[u] >= 0; f.iter[u] = f.next[f.iter[u]] {
		e := f.iter[u]
		v := f.to[e]
		if f.cap[e] > 0 && f.level[v] == f.level[u]+1 {
			if d := f.dfs(v, t, min(pushed, f.cap[e])); d > 0 {
				f.cap[e] -= d
				f.cap[e^1] += d
				return d
			}
		}
	}
	return 0
}

func (f *flow) maxFlow(s, t int) int64 {
	var total int64
	for {
		f.bfs(s)
		if f.level[t] < 0 {
			return total
		}
		copy(f.iter, f.head)
		for {
			d := f.dfs(s, t, 1<<62)
			if d == 0 {
				break
			}
			total += d
		}
	}
}

// reachable marks the nodes s reaches in the residual network.
func (f *flow) reachable(s int) []bool {
	f.bfs(s)
	r := make([]bool, len(f.level))
	for i, l := range f.level {
		r[i] = l >= 0
	}
	return r
}
