package artifacts

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	taskresources "github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// files are artifacts files as steps write them: inputs and outputs,
// repeated names and values, buildOutput on one of two, digests of two
// algorithms, values with no digest.
var files = []string{
	`{"inputs":[{"name":"src","values":[{"uri":"git://a","digest":{"sha1":"1"}}]}],
	  "outputs":[{"name":"image","buildOutput":true,"values":[{"uri":"oci://i","digest":{"sha256":"2","sha1":"3"}}]}]}`,
	`{"inputs":[{"name":"src","values":[{"uri":"git://a","digest":{"sha1":"1"}},{"uri":"git://b"}]},{"name":"cfg","values":[{"uri":"file://c"}]}],
	  "outputs":[{"name":"image","values":[{"uri":"oci://j"}]},{"name":"sbom","values":[{"uri":"s"}]}]}`,
	`{"outputs":[{"name":"image","buildOutput":false,"values":[{"uri":"oci://i","digest":{"sha256":"2","sha1":"3"}}]}]}`,
	`{}`,
}

// tektonSet is how Tekton's own types read a file.
func tektonSet(t *testing.T, raw string) v1.Artifacts {
	t.Helper()
	var a v1.Artifacts
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// asTekton is a Set in Tekton's types, by way of JSON.
func asTekton(t *testing.T, s Set) v1.Artifacts {
	t.Helper()
	conv := func(list []*planpb.Artifact) []artifact {
		var out []artifact
		for _, a := range list {
			art := artifact{Name: a.GetName(), BuildOutput: a.GetBuildOutput()}
			for _, v := range a.GetValues() {
				art.Values = append(art.Values, value{Digest: v.GetDigest(), URI: v.GetUri()})
			}
			out = append(out, art)
		}
		return out
	}
	raw, err := json.Marshal(file{Inputs: conv(s.Inputs), Outputs: conv(s.Outputs)})
	if err != nil {
		t.Fatal(err)
	}
	return tektonSet(t, string(raw))
}

func byName(a v1.Artifacts) v1.Artifacts {
	cmpName := func(x, y v1.Artifact) int { return strings.Compare(x.Name, y.Name) }
	slices.SortFunc(a.Inputs, cmpName)
	slices.SortFunc(a.Outputs, cmpName)
	for _, l := range [][]v1.Artifact{a.Inputs, a.Outputs} {
		for i := range l {
			if len(l[i].Values) == 0 {
				l[i].Values = nil
			}
		}
	}
	return a
}

// TestMergeAsTekton: merging the files in every order gives what Tekton's
// Artifacts.Merge gives (its order is a map's; compared by name).
func TestMergeAsTekton(t *testing.T) {
	orders := [][]int{{0, 1, 2, 3}, {2, 1, 0, 3}, {1, 3, 0, 2}, {0, 0, 1}}
	for _, order := range orders {
		var ours Set
		var theirs v1.Artifacts
		for _, i := range order {
			s, err := Parse([]byte(files[i]))
			if err != nil {
				t.Fatal(err)
			}
			ours.Merge(s)
			other := tektonSet(t, files[i])
			theirs.Merge(&other)
		}
		if diff := cmp.Diff(byName(theirs), byName(asTekton(t, ours))); diff != "" {
			t.Errorf("merge in order %v (-Tekton +ours):\n%s", order, diff)
		}
	}
}

// TestTaskVarsAsTekton: $(tasks.T.inputs...) and outputs substituted into
// a later task's step as Tekton's PropagateArtifacts substitutes them.
func TestTaskVarsAsTekton(t *testing.T) {
	script := `echo '$(tasks.build.inputs)' '$(tasks.build.inputs.src)' '$(tasks.build.inputs.cfg)' ` +
		`'$(tasks.build.outputs)' '$(tasks.build.outputs.image)' '$(tasks.build.outputs.sbom)' '$(tasks.other.outputs.x)'`
	for i, raw := range files {
		produced := tektonSet(t, raw)
		done := &v1.TaskRun{Status: v1.TaskRunStatus{
			Status:              duckv1.Status{Conditions: duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue}}},
			TaskRunStatusFields: v1.TaskRunStatusFields{Artifacts: &produced},
		}}
		state := resources.PipelineRunState{{PipelineTask: &v1.PipelineTask{Name: "build"}, TaskRuns: []*v1.TaskRun{done}}}
		rpt := &resources.ResolvedPipelineTask{PipelineTask: &v1.PipelineTask{Name: "use"},
			ResolvedTask: &taskresources.ResolvedTask{TaskSpec: &v1.TaskSpec{Steps: []v1.Step{{Name: "s", Script: script}}}}}
		if err := resources.PropagateArtifacts(rpt, state); err != nil {
			t.Fatal(err)
		}
		want := rpt.ResolvedTask.TaskSpec.Steps[0].Script

		s, err := Parse([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		var merged Set // what the TaskRun's status holds: merged
		merged.Merge(s)
		got := script
		for name, v := range TaskVars("build", merged) {
			got = strings.ReplaceAll(got, "$("+name+")", v)
		}
		if got != want {
			t.Errorf("file %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestStepRefs: a step's $(steps.S.inputs|outputs.NAME) is the values of
// that artifact in S's file, encoded as Tekton encodes []ArtifactValue.
func TestStepRefs(t *testing.T) {
	s, err := Parse([]byte(files[1]))
	if err != nil {
		t.Fatal(err)
	}
	theirs := tektonSet(t, files[1])
	want, _ := json.Marshal(theirs.Inputs[0].Values)
	wantOut, _ := json.Marshal(theirs.Outputs[1].Values)
	got, err := ApplyStepRefs("a $(steps.p.inputs.src) b $(steps.p.outputs.sbom)", map[string]Set{"p": s})
	if err != nil || got != "a "+string(want)+" b "+string(wantOut) {
		t.Errorf("got %q, %v", got, err)
	}
	for _, text := range []string{"$(steps.q.inputs.src)", "$(steps.p.inputs.none)"} {
		if got, err := ApplyStepRefs("x "+text, map[string]Set{"p": s}); err == nil || got != "x "+text {
			t.Errorf("%s: got %q, %v; want it left as is, and an error", text, got, err)
		}
	}
	if refs := StepRefs("$(steps.a.inputs.x) $(steps.b.outputs.y) $(steps.a.outputs.z) $(steps.c.results.r)"); !slices.Equal(refs, []string{"a", "b"}) {
		t.Errorf("StepRefs: %q", refs)
	}
	if _, err := Parse([]byte("{not json")); err == nil {
		t.Error("Parse took a file that is not JSON")
	}
}
