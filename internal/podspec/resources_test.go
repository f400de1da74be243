package podspec

import (
	"math/rand"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// task is a plan task whose steps ask for the given cpu and memory
// requests (and limits, where the request is "").
func task(name string, after []string, steps ...[4]string) *planpb.Task {
	t := &planpb.Task{Name: name, RunAfter: after, Spec: &planpb.TaskSpec{}}
	for _, s := range steps {
		st := &planpb.Step{Name: "s", Requests: map[string]string{}, Limits: map[string]string{}}
		set := func(m map[string]string, k, v string) {
			if v != "" {
				m[k] = v
			}
		}
		set(st.Requests, "cpu", s[0])
		set(st.Requests, "memory", s[1])
		set(st.Limits, "cpu", s[2])
		set(st.Limits, "memory", s[3])
		t.Spec.Steps = append(t.Spec.Steps, st)
	}
	return t
}

func TestPeak(t *testing.T) {
	req := func(cpu, mem string) [4]string { return [4]string{cpu, mem, "", ""} }
	tests := []struct {
		name    string
		plan    *planpb.Plan
		cpu     string // "" means no request
		memory  string
		storage string
	}{
		{
			name: "chain: the heaviest task",
			plan: &planpb.Plan{Tasks: []*planpb.Task{
				task("a", nil, req("1", "1Gi")),
				task("b", []string{"a"}, req("2", "512Mi")),
				task("c", []string{"b"}, req("500m", "2Gi")),
			}},
			cpu: "2", memory: "2Gi",
		},
		{
			name: "steps of a task run one after another",
			plan: &planpb.Plan{Tasks: []*planpb.Task{
				task("a", nil, req("1", "1Gi"), req("3", "100Mi"), req("2", "3Gi")),
			}},
			cpu: "3", memory: "3Gi",
		},
		{
			name: "sidecars run beside every step of their task",
			plan: &planpb.Plan{Tasks: []*planpb.Task{
				func() *planpb.Task {
					t := task("a", nil, req("1", "1Gi"), req("2", "100Mi"))
					t.Spec.Sidecars = task("", nil, req("500m", "256Mi"), [4]string{"", "", "250m", ""}).Spec.Steps
					return t
				}(),
				task("b", []string{"a"}, req("2", "1Gi")),
			}},
			cpu: "2750m", memory: "1280Mi",
		},
		{
			name: "fan-out and fan-in: the parallel middle",
			plan: &planpb.Plan{Tasks: []*planpb.Task{
				task("start", nil, req("4", "4Gi")),
				task("x", []string{"start"}, req("1", "1Gi")),
				task("y", []string{"start"}, req("1", "1Gi")),
				task("z", []string{"start"}, req("1500m", "1Gi")),
				task("end", []string{"x", "y", "z"}, req("1", "1Gi")),
			}},
			cpu: "4", memory: "4Gi",
		},
		{
			name: "fan-out heavier than its ends",
			plan: &planpb.Plan{Tasks: []*planpb.Task{
				task("start", nil, req("1", "1Gi")),
				task("x", []string{"start"}, req("1", "1Gi")),
				task("y", []string{"start"}, req("1", "1Gi")),
				task("z", []string{"start"}, req("1500m", "1Gi")),
				task("end", []string{"x", "y", "z"}, req("1", "1Gi")),
			}},
			cpu: "3500m", memory: "3Gi",
		},
		{
			// a→b, c alone: {b, c} and {a, c} can run together, not {a, b}.
			name: "two branches of different lengths",
			plan: &planpb.Plan{Tasks: []*planpb.Task{
				task("a", nil, req("1", "100Mi")),
				task("b", []string{"a"}, req("3", "100Mi")),
				task("c", nil, req("2", "1Gi")),
			}},
			cpu: "5", memory: "1124Mi",
		},
		{
			name: "transitive order: a before c through b",
			plan: &planpb.Plan{Tasks: []*planpb.Task{
				task("a", nil, req("2", "")),
				task("b", []string{"a"}, req("1", "")),
				task("c", []string{"b"}, req("2", "")),
				task("d", []string{"a"}, req("1", "")),
			}},
			cpu: "3",
		},
		{
			name: "finally after the DAG: the larger of the two peaks",
			plan: &planpb.Plan{
				Tasks: []*planpb.Task{task("a", nil, req("1", "1Gi")), task("b", nil, req("1", "1Gi"))},
				Finally: []*planpb.Task{
					task("f1", nil, req("2", "100Mi")),
					task("f2", nil, req("1", "100Mi")),
				},
			},
			cpu: "3", memory: "2Gi",
		},
		{
			name: "a limit alone counts as the request",
			plan: &planpb.Plan{Tasks: []*planpb.Task{
				task("a", nil, [4]string{"", "", "2", "1Gi"}),
				task("b", nil, [4]string{"100m", "", "2", "1Gi"}),
			}},
			cpu: "2100m", memory: "2Gi",
		},
		{
			// The README's example.
			name: "README: fetch, then build, lint and test at once, then publish; finally notify",
			plan: &planpb.Plan{
				Tasks: []*planpb.Task{
					task("fetch", nil, req("1", "512Mi")),
					task("build", []string{"fetch"}, req("2", "2Gi")),
					task("lint", []string{"fetch"}, req("1", "1Gi")),
					task("test", []string{"fetch"}, req("500m", "256Mi"), req("1500m", "3Gi")),
					task("publish", []string{"build", "lint", "test"}, req("500m", "256Mi")),
				},
				Finally: []*planpb.Task{task("notify", nil, req("100m", "64Mi"))},
			},
			cpu: "4500m", memory: "6Gi",
		},
		{
			name: "no requests: none",
			plan: &planpb.Plan{Tasks: []*planpb.Task{task("a", nil, req("", ""))}},
		},
		{
			name: "ephemeral storage too",
			plan: &planpb.Plan{Tasks: []*planpb.Task{{Name: "a", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{
				{Requests: map[string]string{"ephemeral-storage": "1Gi", "nvidia.com/gpu": "1"}},
			}}}}},
			storage: "1Gi",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Peak(tt.plan)
			if err != nil {
				t.Fatal(err)
			}
			for n, want := range map[corev1.ResourceName]string{corev1.ResourceCPU: tt.cpu, corev1.ResourceMemory: tt.memory, corev1.ResourceEphemeralStorage: tt.storage} {
				q, ok := got[n]
				if want == "" {
					if ok {
						t.Errorf("%s = %s, want none", n, q.String())
					}
					continue
				}
				if !ok || q.Cmp(resource.MustParse(want)) != 0 {
					t.Errorf("%s = %s, want %s", n, q.String(), want)
				}
			}
			if len(got) > 3 {
				t.Errorf("unexpected resources in %v", got)
			}
		})
	}
}

func TestPeakBadQuantity(t *testing.T) {
	plan := &planpb.Plan{Tasks: []*planpb.Task{task("a", nil, [4]string{"lots", "", "", ""})}}
	if _, err := Peak(plan); err == nil {
		t.Fatal("no error for an unparseable quantity")
	}
}

// bruteForce is the heaviest antichain found by trying every subset.
func bruteForce(w []int64, deps [][]int) int64 {
	n := len(w)
	before := closure(n, deps)
	var best int64
	for mask := 0; mask < 1<<n; mask++ {
		var sum int64
		ok := true
		for i := 0; i < n && ok; i++ {
			if mask&(1<<i) == 0 {
				continue
			}
			sum += w[i]
			for j := 0; j < n; j++ {
				if mask&(1<<j) != 0 && before[i][j] {
					ok = false
					break
				}
			}
		}
		if ok {
			best = max(best, sum)
		}
	}
	return best
}

// closureByPaths is the order by walking every path, independent of closure.
func closureByPaths(n int, deps [][]int) [][]bool {
	before := make([][]bool, n)
	for j := 0; j < n; j++ {
		before[j] = make([]bool, n)
	}
	for j := 0; j < n; j++ {
		stack := append([]int{}, deps[j]...)
		seen := map[int]bool{}
		for len(stack) > 0 {
			d := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[d] {
				continue
			}
			seen[d] = true
			before[d][j] = true
			stack = append(stack, deps[d]...)
		}
	}
	return before
}

func TestMaxAntichainRandomDAGs(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 2000; iter++ {
		n := 1 + rng.Intn(12)
		density := rng.Float64()
		w := make([]int64, n)
		deps := make([][]int, n)
		for i := 0; i < n; i++ {
			w[i] = int64(rng.Intn(5000))
			if rng.Intn(8) == 0 {
				w[i] = 0
			}
			// Edges only from lower to higher index: a DAG; shuffled names
			// do not matter to the order.
			for j := 0; j < i; j++ {
				if rng.Float64() < density*0.5 {
					deps[i] = append(deps[i], j)
				}
			}
		}
		got, set := MaxAntichain(w, deps)
		if want := bruteForce(w, deps); got != want {
			t.Fatalf("iteration %d: w=%v deps=%v: got %d, brute force %d", iter, w, deps, got, want)
		}
		// The set returned is an antichain of that weight.
		before := closureByPaths(n, deps)
		var sum int64
		for _, i := range set {
			sum += w[i]
			for _, j := range set {
				if before[i][j] {
					t.Fatalf("iteration %d: set %v holds %d before %d", iter, set, i, j)
				}
			}
		}
		if sum != got {
			t.Fatalf("iteration %d: set %v weighs %d, want %d", iter, set, sum, got)
		}
		// closure agrees with walking every path.
		c := closure(n, deps)
		for i := range c {
			for j := range c[i] {
				if c[i][j] != before[i][j] {
					t.Fatalf("iteration %d: closure[%d][%d] = %v", iter, i, j, c[i][j])
				}
			}
		}
	}
}

func TestMaxAntichainLarge(t *testing.T) {
	// 200 tasks in 20 layers of 10, each depending on the whole layer before:
	// the peak is the heaviest layer.
	var w []int64
	var deps [][]int
	var want int64
	for layer := 0; layer < 20; layer++ {
		var sum int64
		for k := 0; k < 10; k++ {
			v := int64((layer*7 + k*13) % 100)
			w = append(w, v)
			sum += v
			var d []int
			if layer > 0 {
				for p := 0; p < 10; p++ {
					d = append(d, (layer-1)*10+p)
				}
			}
			deps = append(deps, d)
		}
		want = max(want, sum)
	}
	if got, _ := MaxAntichain(w, deps); got != want {
		t.Errorf("got %d, want %d", got, want)
	}
}
