package facts

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	"knative.dev/pkg/kmeta"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Tekton's own functions are the oracle of the in-pod copies.

func toPlanMatrix(m *v1.Matrix) ([]*planpb.Param, []*planpb.MatrixInclude) {
	var params []*planpb.Param
	for _, p := range m.Params {
		v := &planpb.Value{StringValue: p.Value.StringVal}
		if p.Value.Type == v1.ParamTypeArray {
			v = &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: p.Value.ArrayVal}
		}
		params = append(params, &planpb.Param{Name: p.Name, Value: v})
	}
	var include []*planpb.MatrixInclude
	for _, inc := range m.Include {
		mi := &planpb.MatrixInclude{Name: inc.Name}
		for _, p := range inc.Params {
			mi.Params = append(mi.Params, &planpb.Param{Name: p.Name, Value: &planpb.Value{StringValue: p.Value.StringVal}})
		}
		include = append(include, mi)
	}
	return params, include
}

func combinationsText(ps [][]*planpb.Param) []string {
	var out []string
	for _, c := range ps {
		var kv []string
		for _, p := range c {
			kv = append(kv, p.GetName()+"="+p.GetValue().GetStringValue())
		}
		out = append(out, strings.Join(kv, ","))
	}
	return out
}

func tektonCombinationsText(ps []v1.Params) []string {
	var out []string
	for _, c := range ps {
		var kv []string
		for _, p := range c {
			kv = append(kv, p.Name+"="+p.Value.StringVal)
		}
		out = append(out, strings.Join(kv, ","))
	}
	return out
}

func arrayParam(name string, vs ...string) v1.Param {
	return v1.Param{Name: name, Value: v1.ParamValue{Type: v1.ParamTypeArray, ArrayVal: vs}}
}

func stringParam(name, v string) v1.Param {
	return v1.Param{Name: name, Value: *v1.NewStructuredValues(v)}
}

// randomMatrix draws a small matrix whose values overlap, so that include
// entries merge, contradict and add combinations.
func randomMatrix(r *rand.Rand) *v1.Matrix {
	names := []string{"a", "b", "c"}
	values := []string{"x", "y", "z"}
	m := &v1.Matrix{}
	for _, n := range names[:r.Intn(len(names)+1)] {
		var vs []string
		for range r.Intn(3) {
			vs = append(vs, values[r.Intn(len(values))])
		}
		if r.Intn(5) == 0 {
			m.Params = append(m.Params, stringParam(n, "$(tasks.t.results.r)"))
			continue
		}
		m.Params = append(m.Params, arrayParam(n, vs...))
	}
	for i := range r.Intn(4) {
		inc := v1.IncludeParams{Name: fmt.Sprint("inc", i)}
		for _, n := range append(names, "d")[:1+r.Intn(len(names)+1)] {
			if r.Intn(2) == 0 {
				inc.Params = append(inc.Params, stringParam(n, values[r.Intn(len(values))]))
			}
		}
		m.Include = append(m.Include, inc)
	}
	return m
}

func TestFanOutIsTektons(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := range 2000 {
		m := randomMatrix(r)
		if !m.HasParams() && !m.HasInclude() {
			continue
		}
		params, include := toPlanMatrix(m)
		want := tektonCombinationsText(m.DeepCopy().FanOut())
		if got := combinationsText(fanOut(params, include)); !reflect.DeepEqual(got, want) {
			t.Fatalf("matrix %d %+v: fanOut\n got %q\nwant %q", i, m, got, want)
		}
		if got, want := countCombinations(params, include), m.CountCombinations(); got != want {
			t.Fatalf("matrix %d %+v: countCombinations %d, want %d", i, m, got, want)
		}
	}
}

func TestRunNamesAreTektons(t *testing.T) {
	long := strings.Repeat("p", 40)
	for _, tc := range []struct {
		task, run string
		n         int
	}{
		{"build", "run", 1}, {"build", "run", 3}, {"build", "run", 12},
		{"build", long, 3}, {strings.Repeat("t", 25), long, 12}, {strings.Repeat("t", 40), "r", 2},
		{strings.Repeat("t", 50), long, 101}, {"x", strings.Repeat("r", 62), 2},
	} {
		want := resources.GetNamesOfTaskRuns(nil, tc.task, tc.run, tc.n)
		if got := runNames(tc.task, tc.run, tc.n); !reflect.DeepEqual(got, want) {
			t.Errorf("runNames(%q, %q, %d):\n got %q\nwant %q", tc.task, tc.run, tc.n, got, want)
		}
	}
	for _, tc := range []struct{ parent, suffix string }{
		{"run", "-a"}, {strings.Repeat("p", 60), "-task"}, {"p", strings.Repeat("-s", 40)},
		{strings.Repeat("p", 70), strings.Repeat("s", 31)}, {strings.Repeat("p", 30), strings.Repeat("-", 40)},
	} {
		if got, want := childName(tc.parent, tc.suffix), kmeta.ChildName(tc.parent, tc.suffix); got != want {
			t.Errorf("childName(%q, %q) = %q, want %q", tc.parent, tc.suffix, got, want)
		}
	}
}
