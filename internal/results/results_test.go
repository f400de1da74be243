package results

import (
	"reflect"
	"testing"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

func str(s string) *planpb.Value { return &planpb.Value{StringValue: s} }
func arr(a ...string) *planpb.Value {
	return &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: a}
}
func obj(m map[string]string) *planpb.Value {
	return &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: m}
}

func TestRefs(t *testing.T) {
	tests := []struct {
		in   string
		want []Ref
	}{
		{"no refs", nil},
		{"$(tasks.a.results.r)", []Ref{{"a", "r"}}},
		{"x $(tasks.a.results.r[*]) $(tasks.b.results.s[2]) $(tasks.a.results.r)", []Ref{{"a", "r"}, {"b", "s"}}},
		{"$(tasks.a.results.o.key)", []Ref{{"a", "o"}}},
		{"$(tasks.a.status) $(tasks.status) $(params.x)", nil},
		{"$(tasks.a.results)", nil},
		{"$(tasks.a.results.o.k.deeper)", nil},
		{"$(tasks.a-b.results.r-1)", []Ref{{"a-b", "r-1"}}},
	}
	for _, tt := range tests {
		if got := Refs(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Refs(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		spec    *planpb.ResultSpec
		raw     string
		want    *planpb.Value
		wantErr bool
	}{
		{"string keeps newline", &planpb.ResultSpec{Name: "r"}, "abc\n", str("abc\n"), false},
		{"string keeps JSON text", &planpb.ResultSpec{Name: "r"}, `["a"]`, str(`["a"]`), false},
		{"array", &planpb.ResultSpec{Name: "r", Type: planpb.ValueType_ARRAY}, `["a","b"]`, arr("a", "b"), false},
		{"array from non-array", &planpb.ResultSpec{Name: "r", Type: planpb.ValueType_ARRAY}, `a b`, nil, true},
		{"array of numbers is not an array of strings", &planpb.ResultSpec{Name: "r", Type: planpb.ValueType_ARRAY}, `[1,2]`, nil, true},
		{"object", &planpb.ResultSpec{Name: "r", Type: planpb.ValueType_OBJECT, Properties: []string{"url"}}, `{"url":"u","x":"y"}`, obj(map[string]string{"url": "u", "x": "y"}), false},
		{"object missing key", &planpb.ResultSpec{Name: "r", Type: planpb.ValueType_OBJECT, Properties: []string{"url", "digest"}}, `{"url":"u"}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.spec, tt.raw)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !equalValue(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func equalValue(a, b *planpb.Value) bool {
	return a.GetType() == b.GetType() && a.GetStringValue() == b.GetStringValue() &&
		reflect.DeepEqual(a.GetArrayValue(), b.GetArrayValue()) &&
		(len(a.GetObjectValue()) == 0 && len(b.GetObjectValue()) == 0 || reflect.DeepEqual(a.GetObjectValue(), b.GetObjectValue()))
}

func TestStore(t *testing.T) {
	var s Store
	if _, ok := s.Get("a", "r"); ok {
		t.Fatal("empty store has a result")
	}
	s.Set("a", []*planpb.ResultValue{{Name: "r", Value: str("v")}})
	if v, ok := s.Get("a", "r"); !ok || v.GetStringValue() != "v" {
		t.Errorf("Get = %v, %v", v, ok)
	}
	s.Set("a", nil) // a retry that produced nothing replaces the results
	if _, ok := s.Get("a", "r"); ok {
		t.Error("results not replaced")
	}
}

func TestApplyValue(t *testing.T) {
	v := NewVars()
	v.SetResult("a", "s", str("S"))
	v.SetResult("a", "arr", arr("x", "y"))
	v.SetResult("a", "o", obj(map[string]string{"k": "K"}))
	v.SetString("tasks.a.status", "Succeeded")
	tests := []struct {
		in, want *planpb.Value
	}{
		{str("$(tasks.a.results.s)"), str("S")},
		{str("pre-$(tasks.a.results.s)-$(tasks.a.status)"), str("pre-S-Succeeded")},
		{str("$(tasks.a.results.arr[*])"), arr("x", "y")},
		{str("$(tasks.a.results.arr)"), arr("x", "y")},
		{str("$(tasks.a.results.arr[1])"), str("y")},
		{str("$(tasks.a.results.o[*])"), obj(map[string]string{"k": "K"})},
		{str("$(tasks.a.results.o.k)"), str("K")},
		{str(`$(tasks.a.results["s"])`), str("S")},
		{str("$(tasks.b.results.s)"), str("$(tasks.b.results.s)")},
		{arr("1", "$(tasks.a.results.arr[*])", "$(tasks.a.results.s)"), arr("1", "x", "y", "S")},
		{obj(map[string]string{"a": "$(tasks.a.results.s)"}), obj(map[string]string{"a": "S"})},
	}
	for _, tt := range tests {
		if got := v.ApplyValue(tt.in); !equalValue(got, tt.want) {
			t.Errorf("ApplyValue(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := v.ApplyWhenInput("$(tasks.a.results.arr[*])"); got != `["x","y"]` {
		t.Errorf("ApplyWhenInput = %q", got)
	}
}

// fakePaths are the paths Tekton's pod uses.
type fakePaths struct{ bound map[string]string }

func (fakePaths) ResultsDir() string         { return "/tekton/results" }
func (fakePaths) StepDir(step string) string { return "/tekton/steps/step-" + step }
func (fakePaths) ArtifactsDir() string       { return "/tekton/artifacts" }
func (p fakePaths) Workspace(name string) (string, bool) {
	path, ok := p.bound[name]
	return path, ok
}

func TestTaskStepsMissingParam(t *testing.T) {
	spec := &planpb.TaskSpec{Params: []*planpb.ParamSpec{{Name: "p"}}, Steps: []*planpb.Step{{Name: "s", Script: "echo $(params.p)"}}}
	if _, err := TaskSteps(spec, nil, nil, fakePaths{}); err == nil {
		t.Fatal("want an error for a param with no value")
	}
}

func TestTaskStepsUnnamed(t *testing.T) {
	spec := &planpb.TaskSpec{Steps: []*planpb.Step{{Script: "cat $(steps.step-unnamed-0.exitCode.path)"}}}
	steps, err := TaskSteps(spec, nil, nil, fakePaths{})
	if err != nil {
		t.Fatal(err)
	}
	if steps[0].GetName() != "unnamed-0" || steps[0].GetScript() != "cat /tekton/steps/step-unnamed-0/exitCode" {
		t.Errorf("step = %v", steps[0])
	}
	if spec.GetSteps()[0].GetName() != "" {
		t.Error("TaskSteps changed the plan's spec")
	}
}
